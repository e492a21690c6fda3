//! The health gate's check command, played by the fake kernel.

use super::*;

/// The image's check command: it runs once containerd's gate allows, is
/// run again a second after each failure, and the version is good once it
/// exits 0; if it never does, the gate fails naming it and its exit.
#[test]
fn the_health_command_must_exit_0_within_the_timeout() {
    // (exits of the runs, the verdict), containerd being pid 100.
    let cases: [(&[Exit], bool, &str); 4] = [
        (&[Exit::Exited(0)], true, ""),
        (&[Exit::Exited(3), Exit::Exited(0)], true, ""),
        (
            &[Exit::Exited(3); 30],
            false,
            "health command /bin/check -q exited with status 3",
        ),
        (
            &[Exit::Signaled(Signal::SIGSEGV); 30],
            false,
            "health command /bin/check -q was killed by signal SIGSEGV",
        ),
    ];
    for (exits, passes, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let part = partition_with_v1(dir.path());
        let k = ready_fake();
        let env = env(&k, dir.path());
        // Each run takes 0.5 s; the next starts 1 s after (RETRY).
        let mut ticks: Vec<Tick> = (101..)
            .zip(exits)
            .enumerate()
            .map(|(i, (pid, e))| Tick::exit(secs(if i == 0 { 0.5 } else { 1.5 }), Pid(pid), *e))
            .collect();
        ticks.push(Tick::signal(secs(60.0), Signal::SIGTERM));
        k.script(ticks);
        let cfg = health::Config {
            timeout: 20,
            grace: 5,
            sockets: Vec::new(),
            command: Some(vec!["/bin/check".into(), "-q".into()]),
        };
        let mut sup =
            Supervisor::new(&env, vec![containerd(None)], "v1".into()).with_health(cfg, true);
        let action = sup.run();
        let b = Metadata::load(&part.metadata()).unwrap().versions["v1"]
            .boot
            .clone();
        let runs = spawns(&k)
            .iter()
            .filter(|c| *c == "spawn /bin/check -q")
            .count();
        assert_eq!(b.good, passes, "{exits:?}");
        if passes {
            assert_eq!(action, PowerAction::PowerOff, "{exits:?}");
            assert_eq!(runs, exits.len(), "{exits:?}: not run again once passed");
        } else {
            assert_eq!(action, PowerAction::Reboot, "{exits:?}");
            assert!(
                runs >= 10,
                "{exits:?}: retried until the timeout, ran {runs}"
            );
            let why = b.last_failure.unwrap();
            assert!(why.contains(want), "{exits:?}: {why}");
        }
    }
}

/// A check command given by a relative path can never pass: the gate
/// fails saying what was expected, it is not skipped.
#[test]
fn a_relative_health_command_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let part = partition_with_v1(dir.path());
    let k = ready_fake();
    let env = env(&k, dir.path());
    k.script([Tick::signal(secs(60.0), Signal::SIGTERM)]);
    let cfg = health::Config {
        timeout: 10,
        grace: 2,
        sockets: Vec::new(),
        command: Some(vec!["check".into()]),
    };
    let mut sup = Supervisor::new(&env, vec![containerd(None)], "v1".into()).with_health(cfg, true);
    assert_eq!(sup.run(), PowerAction::Reboot);
    let why = Metadata::load(&part.metadata()).unwrap().versions["v1"]
        .boot
        .last_failure
        .clone()
        .unwrap();
    assert!(why.contains("absolute path"), "{why}");
    assert_eq!(spawns(&k), ["spawn /usr/bin/containerd"]);
}
