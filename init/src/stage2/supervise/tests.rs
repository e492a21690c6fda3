//! The supervisor's decisions (start order, restarts, back-off, stopping)
//! with the fake kernel: its clock moves only when the supervisor waits, so
//! a minute of back-off takes no time.

use std::path::Path;

use super::*;
use crate::env::Paths;
use crate::kernel::fake::{Fake, Tick};
use crate::stage2::health;
use crate::stage2::services::{containerd, parse, CONTAINERD_SOCKET};
use terra_layout::{Metadata, Partition};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn spec(name: &str, json: &str) -> Spec {
    parse(name, json).unwrap()
}

/// A fake whose containerd socket answers, and an Env on it.
fn ready_fake() -> Fake {
    let mut k = Fake::default();
    k.listening.insert(CONTAINERD_SOCKET.into());
    k
}

fn env<'k>(k: &'k Fake, partition: &Path) -> Env<'k> {
    let paths = Paths {
        partition: partition.to_path_buf(),
        ..Paths::default()
    };
    Env::new(paths, k, k.epoch)
}

fn spawns(k: &Fake) -> Vec<String> {
    k.calls()
        .into_iter()
        .filter(|c| c.starts_with("spawn"))
        .collect()
}

/// A partition holding version v1, not yet good.
fn partition_with_v1(dir: &Path) -> Partition {
    let part = Partition::new(dir);
    std::fs::create_dir_all(dir.join("ov")).unwrap();
    let mut meta = Metadata::default();
    let rec = crate::stage2::health::tests::record(Some(2));
    meta.versions.insert("v1".into(), rec);
    meta.store(&part.metadata()).unwrap();
    part
}

#[test]
fn logrus_timestamps_are_dropped() {
    assert_eq!(
        tidy(r#"time="2026-11-29T19:00:00Z" level=info msg="starting containerd""#),
        r#"level=info msg="starting containerd""#
    );
    assert_eq!(tidy("plain line"), "plain line");
    assert_eq!(tidy("time=\"unterminated"), "time=\"unterminated");
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let k = Fake::default();
    let env = env(&k, Path::new("/nonexistent"));
    let mut sup = Supervisor::new(
        &env,
        vec![spec("x", r#"{"argv":["/bin/true"]}"#)],
        "v".into(),
    );
    let s = &mut sup.services[0];
    let delays: Vec<u128> = (0..10).map(|_| s.bump_backoff().as_millis()).collect();
    assert_eq!(&delays[..4], &[500, 1000, 2000, 4000]);
    assert_eq!(delays[9], 60_000);
}

#[test]
fn restart_policies() {
    let k = Fake::default();
    let env = env(&k, Path::new("/nonexistent"));
    let mut sup = Supervisor::new(
        &env,
        vec![
            spec("a", r#"{"argv":["/a"],"restart":"never"}"#),
            spec("b", r#"{"argv":["/b"],"restart":"on-failure"}"#),
            spec("c", r#"{"argv":["/c"],"restart":"on-failure"}"#),
            spec("d", r#"{"argv":["/d"]}"#),
        ],
        "v".into(),
    );
    for (i, s) in sup.services.iter_mut().enumerate() {
        s.state = State::Running {
            pid: Pid(100 + i as i32),
            since: k.epoch,
        };
    }
    sup.ended(Pid(100), Exit::Exited(1));
    sup.ended(Pid(101), Exit::Exited(0));
    sup.ended(Pid(102), Exit::Signaled(Signal::SIGKILL));
    sup.ended(Pid(103), Exit::Exited(0));
    sup.ended(Pid(999), Exit::Exited(0)); // an orphan: nothing changes
    let states: Vec<State> = sup.services.iter().map(|s| s.state).collect();
    assert_eq!(states[0], State::Done);
    assert_eq!(states[1], State::Done);
    assert_eq!(states[2], State::Backoff(k.epoch + secs(0.5)));
    assert_eq!(states[3], State::Backoff(k.epoch + secs(0.5)));
}

#[test]
fn a_program_that_cannot_start_is_an_error_naming_it_and_waits_for_a_restart() {
    let k = Fake::failing(&["spawn /nonexistent/bin/x"]);
    let env = env(&k, Path::new("/nonexistent"));
    let gone = spec("gone", r#"{"argv":["/nonexistent/bin/x"]}"#);
    let err = spawn(&env, &gone.name, &gone.argv, &gone.env).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/bin/x"), "{err}");
    let mut sup = Supervisor::new(&env, vec![gone], "v".into());
    sup.start(0);
    assert_eq!(sup.services[0].state, State::Backoff(k.epoch + secs(0.5)));
    let mut never = spec(
        "never",
        r#"{"argv":["/nonexistent/bin/x"],"restart":"never"}"#,
    );
    never.after.clear();
    let mut sup = Supervisor::new(&env, vec![never], "v".into());
    sup.start(0);
    assert_eq!(sup.services[0].state, State::Done);
}

/// containerd dies twice quickly (back-off 0.5 s, then 1 s), then after a
/// healthy run (back-off starts over at 0.5 s); SIGTERM ends the loop.
#[test]
fn restarts_with_backoff_that_starts_over_after_a_healthy_run() {
    let dir = tempfile::tempdir().unwrap();
    let k = ready_fake();
    let env = env(&k, dir.path());
    // Each tick's time counts from the one before.
    k.script([
        Tick::exit(secs(1.0), Pid(100), Exit::Signaled(Signal::SIGKILL)),
        // Restarted at 1.5 s; dies at 3 s.
        Tick::exit(secs(2.0), Pid(101), Exit::Signaled(Signal::SIGKILL)),
        // Restarted at 4 s; dies at 44 s, after a healthy 40 s.
        Tick::exit(secs(41.0), Pid(102), Exit::Exited(1)),
        // Restarted at 44.5 s; SIGTERM at 45 s.
        Tick::signal(secs(1.0), Signal::SIGTERM),
    ]);
    let mut sup = Supervisor::new(&env, vec![containerd(None)], "v1".into());
    assert_eq!(sup.run(), PowerAction::PowerOff);
    assert_eq!(spawns(&k), vec!["spawn /usr/bin/containerd"; 4]);
    assert_eq!(
        sup.services[0].state,
        State::Running {
            pid: Pid(103),
            since: k.epoch + secs(44.5)
        }
    );
    assert_eq!(sup.services[0].starts, 4);
    assert_eq!(k.elapsed(), secs(45.0));
}

#[test]
fn dependents_start_once_what_they_wait_for_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let k = ready_fake();
    let env = env(&k, dir.path());
    let specs = vec![
        containerd(None),
        // b waits for containerd (the default); its own socket never answers,
        // so c, which waits for b, never starts.
        spec("b", r#"{"argv":["/b"],"ready":{"socket":"/run/b.sock"}}"#),
        spec("c", r#"{"argv":["/c"],"after":["b"]}"#),
    ];
    k.script([Tick::signal(secs(0.2), Signal::SIGINT)]);
    let mut sup = Supervisor::new(&env, specs, "v1".into());
    assert_eq!(sup.run(), PowerAction::Reboot);
    assert_eq!(spawns(&k), ["spawn /usr/bin/containerd", "spawn /b"]);
    assert_eq!(sup.services[2].state, State::Waiting);
}

/// A service that serves on a TCP port only (the node exporter) is ready
/// once the port answers, not when it starts; each readiness is recorded
/// for `terra metrics` in /run/terra/ready/NAME.json.
#[test]
fn a_tcp_ready_check_waits_for_the_port_and_readiness_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let specs = || {
        vec![
            containerd(None),
            spec(
                "exporter",
                r#"{"argv":["/exp"],"ready":{"tcp":"127.0.0.1:9100"}}"#,
            ),
            spec("scraper", r#"{"argv":["/s"],"after":["exporter"]}"#),
        ]
    };
    let writes = |k: &Fake| -> Vec<String> {
        k.calls()
            .into_iter()
            .filter(|c| c.starts_with("write "))
            .collect()
    };
    // The port never answers: what waits for the exporter never starts.
    let k = ready_fake();
    let e = env(&k, dir.path());
    k.script([Tick::signal(secs(0.2), Signal::SIGINT)]);
    Supervisor::new(&e, specs(), "v1".into()).run();
    assert_eq!(spawns(&k), ["spawn /usr/bin/containerd", "spawn /exp"]);
    assert_eq!(writes(&k).len(), 1, "{:?}", writes(&k));
    assert!(writes(&k)[0].starts_with("write /run/terra/ready/containerd.json {"));
    // It answers: ready, recorded, and its dependent starts.
    let mut k = ready_fake();
    k.listening_tcp.insert(([127, 0, 0, 1], 9100).into());
    let e = env(&k, dir.path());
    k.script([Tick::signal(secs(0.2), Signal::SIGINT)]);
    Supervisor::new(&e, specs(), "v1".into()).run();
    assert_eq!(
        spawns(&k),
        ["spawn /usr/bin/containerd", "spawn /exp", "spawn /s"]
    );
    let w = writes(&k);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[1].starts_with("write /run/terra/ready/exporter.json {"),
        "{w:?}"
    );
    let json = w[1].split_once(".json ").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["service"], "exporter");
    assert_eq!(v["ready_uptime_s"], 2.0);
    assert_eq!(v["start_to_ready_ms"], 0);
    assert!(
        w[2].starts_with("write /run/terra/ready/scraper.json {"),
        "{w:?}"
    );
}

#[test]
fn containerd_ready_marks_the_booted_version_good_once() {
    let dir = tempfile::tempdir().unwrap();
    let part = partition_with_v1(dir.path());
    let k = ready_fake();
    let env = env(&k, dir.path());
    // Ready at once, dies at 1 s, ready again at 1.5 s, then stays up past
    // the gate's grace period (10 s) until SIGTERM at 14 s.
    k.script([
        Tick::exit(secs(1.0), Pid(100), Exit::Exited(2)),
        Tick::signal(secs(13.0), Signal::SIGTERM),
    ]);
    let mut sup = Supervisor::new(&env, vec![containerd(None)], "v1".into());
    sup.run();
    let meta = Metadata::load(&part.metadata()).unwrap();
    assert!(meta.versions["v1"].boot.good);
    assert_eq!(meta.versions["v1"].boot.tries_left, Some(2));
    assert!(sup.boot_marked);
    // Ready again after the restart: not written a second time.
    let written = std::fs::metadata(part.metadata())
        .unwrap()
        .modified()
        .unwrap();
    sup.check_ready();
    let again = std::fs::metadata(part.metadata())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(written, again);
}

#[test]
fn a_version_is_not_marked_good_while_containerd_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let part = partition_with_v1(dir.path());
    let k = Fake::default();
    let env = env(&k, dir.path());
    k.script([Tick::signal(secs(1.0), Signal::SIGTERM)]);
    let mut sup = Supervisor::new(&env, vec![containerd(None)], "v1".into());
    sup.run();
    let meta = Metadata::load(&part.metadata()).unwrap();
    assert!(!meta.versions["v1"].boot.good);
}

/// containerd never answers (a broken config): on a trial boot the gate
/// fails at its timeout, the reason is recorded, and the supervisor asks
/// for a reboot; the version is not marked good.
#[test]
fn a_trial_whose_containerd_never_answers_reboots_with_the_reason_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let part = partition_with_v1(dir.path());
    let k = Fake::default();
    let env = env(&k, dir.path());
    // containerd crash-loops until the timeout.
    k.script([
        Tick::exit(secs(5.0), Pid(100), Exit::Exited(1)),
        Tick::exit(secs(5.0), Pid(101), Exit::Exited(1)),
        Tick::signal(secs(60.0), Signal::SIGTERM),
    ]);
    let cfg = health::Config {
        timeout: 30,
        grace: 5,
        sockets: Vec::new(),
        command: None,
    };
    let mut sup = Supervisor::new(&env, vec![containerd(None)], "v1".into()).with_health(cfg, true);
    assert_eq!(sup.run(), PowerAction::Reboot);
    assert_eq!(k.elapsed(), secs(30.0), "decided at the timeout");
    let b = Metadata::load(&part.metadata()).unwrap().versions["v1"]
        .boot
        .clone();
    assert!(!b.good);
    assert_eq!(
        b.last_failure.as_deref(),
        Some("health gate: not healthy 30 s after start: containerd not ready (started 3 times)")
    );
    assert_eq!(
        b.tries_left,
        Some(2),
        "stage 1 counts the tries, not stage 2"
    );
}

/// Not on trial (a good version, or a last resort): a failed gate is
/// logged and the system stays up; no reboot loop.
#[test]
fn a_failed_gate_off_trial_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let part = partition_with_v1(dir.path());
    let k = Fake::default();
    let env = env(&k, dir.path());
    k.script([Tick::signal(secs(100.0), Signal::SIGTERM)]);
    let cfg = health::Config {
        timeout: 30,
        grace: 5,
        sockets: Vec::new(),
        command: None,
    };
    let mut sup =
        Supervisor::new(&env, vec![containerd(None)], "v1".into()).with_health(cfg, false);
    assert_eq!(sup.run(), PowerAction::PowerOff);
    assert_eq!(k.elapsed(), secs(100.0));
    let b = Metadata::load(&part.metadata()).unwrap().versions["v1"]
        .boot
        .clone();
    assert!(!b.good);
    assert_eq!(b.last_failure, None);
}

/// A required service that crashes at start keeps the gate shut; one that
/// is not required does not; an extra socket must answer too.
#[test]
fn required_services_and_sockets_are_gated_others_are_not() {
    for (required, socket, passes) in [
        (false, None, true),
        (true, None, false),
        (false, Some("/run/ok.sock"), true),
        (false, Some("/run/none.sock"), false),
    ] {
        let case = format!("required {required}, socket {socket:?}");
        let dir = tempfile::tempdir().unwrap();
        let part = partition_with_v1(dir.path());
        let mut k = ready_fake();
        k.listening.insert("/run/ok.sock".into());
        let env = env(&k, dir.path());
        let crash = spec(
            "crash",
            &format!(r#"{{"argv":["/bin/crash"],"required":{required}}}"#),
        );
        // containerd is pid 100; "crash" starts as 101 and dies at once,
        // every time (back-off 0.5, 1, 2, 4, 8, 16 s).
        let gaps = [0.1, 0.6, 1.1, 2.1, 4.1, 8.1];
        let mut ticks: Vec<Tick> = (101..)
            .zip(gaps)
            .map(|(pid, gap)| Tick::exit(secs(gap), Pid(pid), Exit::Exited(1)))
            .collect();
        ticks.push(Tick::signal(secs(60.0), Signal::SIGTERM));
        k.script(ticks);
        let cfg = health::Config {
            timeout: 30,
            grace: 5,
            sockets: socket.map(|s| vec![s.into()]).unwrap_or_default(),
            command: None,
        };
        let mut sup = Supervisor::new(&env, vec![containerd(None), crash], "v1".into())
            .with_health(cfg, true);
        let action = sup.run();
        let b = Metadata::load(&part.metadata()).unwrap().versions["v1"]
            .boot
            .clone();
        assert_eq!(b.good, passes, "{case}");
        if passes {
            assert_eq!(action, PowerAction::PowerOff, "{case}");
        } else {
            assert_eq!(action, PowerAction::Reboot, "{case}");
            let why = b.last_failure.unwrap();
            let want = if required {
                "crash not ready (started"
            } else {
                "/run/none.sock does not answer"
            };
            assert!(why.contains(want), "{case}: {why}");
        }
    }
}

/// The whole end, in order: services stopped dependents first (each its
/// process group), then everything left, sync, unmounts, read-only, reboot.
#[test]
fn shuts_down_dependents_first_then_the_rest_then_the_disks() {
    let dir = tempfile::tempdir().unwrap();
    let mut k = ready_fake();
    // b ignores SIGTERM: it gets SIGKILL once its stop_timeout has passed.
    k.stubborn.insert(Pid(101));
    let paths = Paths {
        partition: dir.path().join("partition"),
        mountinfo: dir.path().join("mountinfo"),
        ..Paths::default()
    };
    let part = paths.partition.display().to_string();
    std::fs::write(
        &paths.mountinfo,
        format!(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 8:1 / {part} rw - ext4 /dev/vda rw\n\
             3 1 8:1 /vlc /var/lib/containerd rw - ext4 /dev/vda rw\n"
        ),
    )
    .unwrap();
    let env = Env::new(paths, &k, k.epoch);
    k.adopt(Pid(500)); // an orphan that is nobody's service
    k.script([Tick::signal(secs(1.0), Signal::SIGTERM)]);
    let specs = vec![
        containerd(None),
        spec("b", r#"{"argv":["/b"],"stop_timeout":3}"#),
        spec("c", r#"{"argv":["/c"],"after":["b"]}"#),
    ];
    let mut sup = Supervisor::new(&env, specs, "v1".into());
    let action = sup.run();
    sup.stop_all();
    let stopped_at = k.elapsed();
    crate::stage2::shutdown::power_down(&env, action);
    // The readiness records (tested above) are not part of the order.
    let calls: Vec<String> = k
        .calls()
        .into_iter()
        .filter(|c| !c.contains("/run/terra/ready"))
        .collect();
    assert_eq!(
        calls,
        [
            "spawn /usr/bin/containerd",
            "spawn /b",
            "spawn /c",
            "kill -SIGTERM -102",
            "kill -SIGTERM -101",
            "kill -SIGKILL -101",
            "kill -SIGTERM -100",
            "kill -SIGTERM -1",
            "sync",
            "umount /var/lib/containerd",
            "mount -o remount,ro /",
            &format!("mount -o remount,ro {part}"),
            "sync",
            "reboot PowerOff",
        ]
    );
    // b had its 3 s before SIGKILL, on the fake clock.
    assert!(stopped_at >= secs(4.0), "{stopped_at:?}");
    assert!(sup.services.iter().all(|s| s.state == State::Done));
    assert!(k.alive().is_empty());
}

mod health_command;
