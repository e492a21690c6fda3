//! QEMU tier, with Terra's real OS image and nobody at the console: a new
//! version that cannot reach a healthy system is abandoned for the last good
//! one within its tries, and the machine then stays on the good version,
//! with the reason in the records and in `terra list`; a good new version
//! becomes good and stays the default.
//!
//! Each disk holds v1 (good, the fallback) and v2, made pending with two
//! tries the way `terra default v2 --tries 2` does (`Metadata::activate`).
//! A broken v2 gets one more layer on top of the image (a crashing required
//! service, a broken containerd config) and a short health gate. QEMU runs
//! with `-no-reboot`, so each boot is one QEMU run on the same disk; a boot
//! that passes its gate is ended in order with ctrl-alt-del.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use terra_layout::boot_state::Status;
use terra_layout::Metadata;
use terra_layout::Partition;
use terra_qemu::qmp::Qmp;
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::initramfs::Flavor;
use terra_tests::osimage::{self, records, replay_and_check, CutInstants};
use terra_tests::partition::fake_chain_id;

/// From QEMU's start to the gate's verdict (a 20 s gate in the broken
/// versions, 2 s of grace in the image), with room for a loaded machine.
const BOOT: Duration = Duration::from_secs(300);
/// The broken versions' gate: short, so a failing trial costs little time.
const SHORT_GATE: &str = r#"{"timeout": 20, "grace": 2}"#;

/// Files of an extra top layer for v2 (path in the root, contents).
type Files = &'static [(&'static str, &'static str)];

/// Lays out v1 (good, default) and v2 (with `extra` on top, if any), makes
/// v2 pending with 2 tries, lets `edit` change the tree, and makes the disk.
fn disk(s: &Scenario, extra: Option<Files>, edit: impl FnOnce(&Path)) -> Result<PathBuf> {
    let root = osimage::partition_tree(&s.path("tree"), osimage::os_image()?, &["v1", "v2"])?;
    let part = Partition::new(&root);
    let mut meta = Metadata::load(&part.metadata())?;
    meta.versions.get_mut("v1").context("v1")?.boot.good = true;
    if let Some(files) = extra {
        let rel = terra_layout::partition::layer_snapshot(&fake_chain_id("never-bricked"));
        let dir = part.resolve(&rel)?;
        for (path, text) in files {
            let file = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().context("parent")?)?;
            std::fs::write(&file, text)?;
        }
        meta.versions
            .get_mut("v2")
            .context("v2")?
            .lowers
            .insert(0, rel);
    }
    meta.activate("v2", 2)?;
    meta.store(&part.metadata())?;
    edit(&root);
    let image = s.path("disk.img");
    terra_tests::disk::ext4_image(&root, "terra", &image, osimage::DISK_MIB)?;
    Ok(image)
}

/// How a boot ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The gate passed; ended in order with ctrl-alt-del.
    Good,
    /// The gate failed and stage 2 rebooted in order.
    GateFailed,
}

/// One boot: returns stage 1's `booting version …` line and how it ended.
fn boot(s: &Scenario, disk: &Path, append: &str) -> Result<(String, End, Vec<String>)> {
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s
        .vm(&initrd, &[disk], &format!("osimage.hook=stay {append}"))
        .memory_mb(1024)
        .qmp(s.dir.path());
    let mut vm = Vm::start(&cfg)?;
    let line = vm.wait_for("terra: booting version ", BOOT)?;
    let verdict = vm.wait_for("terra: health gate", BOOT)?;
    let end = if verdict.starts_with("terra: health gate passed") {
        let mut qmp = Qmp::connect(&s.path("qmp.sock"), Duration::from_secs(10))?;
        let keys: Vec<serde_json::Value> = ["ctrl", "alt", "delete"]
            .iter()
            .map(|k| serde_json::json!({"type": "qcode", "data": k}))
            .collect();
        qmp.execute("send-key", serde_json::json!({ "keys": keys }))?;
        End::Good
    } else {
        End::GateFailed
    };
    vm.wait_for("terra: rebooting", Duration::from_secs(120))?;
    vm.expect_poweroff(Duration::from_secs(60))?;
    let console = vm.console.lines();
    osimage::fsck_clean(disk)
        .with_context(|| format!("after the boot of: {line}\n{}", tail(&console)))?;
    Ok((line, end, console))
}

/// `terra --device DISK ARGS` as a person would run it from another system.
fn terra(disk: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(osimage::terra_cli())
        .arg("--device")
        .arg(disk)
        .args(args)
        .output()
        .context("running terra")?;
    if !out.status.success() {
        bail!("terra {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The boot ended on v1, which is the default again; v2 is failed with
/// `reason` in its record, and `terra list` shows `listed`.
fn v2_failed_v1_kept(disk: &Path, end: End, reason: &str, listed: &str) -> Result<()> {
    ensure!(end == End::Good, "{end:?}");
    let m = records(disk)?;
    ensure!(m.default.as_deref() == Some("v1"), "{m:?}");
    ensure!(
        matches!(m.versions["v2"].boot.status(), Status::Failed { reason: r, .. } if r.contains(reason)),
        "{m:?}"
    );
    let list = terra_list(disk)?;
    ensure!(list.contains(listed), "{list}");
    Ok(())
}

fn terra_list(disk: &Path) -> Result<String> {
    terra(disk, &["list"])
}

/// v2 boots twice (its two tries), fails its gate each time, then v1 boots
/// and stays; v2 is failed with `reason` in its record and in `terra list`.
fn abandoned_within_its_tries(extra: Files, reason: &str) -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, Some(extra), |_| {})?;
    for left in ["1 try", "0 tries"] {
        let (line, end, c) = boot(&s, &disk, "")?;
        ensure!(
            line == format!(
                "terra: booting version v2 (default: pending, {left} left after this one)"
            ),
            "{line}\n{}",
            tail(&c)
        );
        ensure!(end == End::GateFailed, "{line}: {end:?}\n{}", tail(&c));
        let m = records(&disk)?;
        let why = m.versions["v2"]
            .boot
            .last_failure
            .clone()
            .unwrap_or_default();
        ensure!(
            why.contains(reason),
            "last_failure {why:?} lacks {reason:?}"
        );
    }
    // Out of tries: failed, the default rolled back, v1 boots and is healthy.
    let (line, end, c) = boot(&s, &disk, "")?;
    ensure!(
        line.starts_with(
            "terra: booting version v1 (fallback: skipped v2: no tries left and never became good"
        ),
        "{line}\n{}",
        tail(&c)
    );
    ensure!(end == End::Good, "{line}\n{}", tail(&c));
    let m = records(&disk)?;
    ensure!(m.default.as_deref() == Some("v1"), "{m:?}");
    match m.versions["v2"].boot.status() {
        Status::Failed { reason: r, .. } if r.contains(reason) => {}
        other => bail!("v2 is {other:?}"),
    }
    let list = terra_list(&disk)?;
    ensure!(list.contains("failed "), "{list}");
    ensure!(list.contains(reason), "{list}");
    // The failed boots kept their story: the one before v1's is v2's last.
    let log = terra(&disk, &["logs", "--boot", "-2"])?;
    ensure!(
        log.contains("terra: booting version v2 (default: pending, 0 tries left")
            && log.contains("terra: health gate: not healthy 20 s after start")
            && log.contains(reason),
        "{log}"
    );
    let log = terra(&disk, &["logs"])?;
    ensure!(log.contains("terra: booting version v1 (fallback"), "{log}");
    // And it stays: the next boot is v1 again, without writing anything.
    let (line, end, c) = boot(&s, &disk, "")?;
    ensure!(
        line == "terra: booting version v1 (default)",
        "{line}\n{}",
        tail(&c)
    );
    ensure!(end == End::Good);
    ensure!(records(&disk)? == m, "a normal boot changed the records");
    Ok(())
}

#[test]
fn a_required_service_that_crashes_at_start_is_abandoned() -> Result<()> {
    abandoned_within_its_tries(
        &[
            (
                "/etc/terra/services/crash.json",
                r#"{"argv": ["/bin/sh", "-c", "echo crashing; exit 3"], "required": true}"#,
            ),
            ("/etc/terra/health.json", SHORT_GATE),
        ],
        "crash not ready",
    )
}

/// The image's health check command keeps failing: the gate names it and
/// its exit.
#[test]
fn a_failing_health_command_is_abandoned() -> Result<()> {
    abandoned_within_its_tries(
        &[(
            "/etc/terra/health.json",
            r#"{"timeout": 20, "grace": 2, "command": ["/bin/sh", "-c", "exit 3"]}"#,
        )],
        "health command /bin/sh -c exit 3 exited with status 3",
    )
}

#[test]
fn containerd_that_never_becomes_ready_is_abandoned() -> Result<()> {
    abandoned_within_its_tries(
        &[
            ("/etc/containerd/config.toml", "this is [not toml\n"),
            ("/etc/terra/health.json", SHORT_GATE),
        ],
        "containerd not ready",
    )
}

#[test]
fn a_missing_layer_dir_fails_at_once() -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, Some(&[("/etc/x", "x")]), |root| {
        let dir = root.join(terra_layout::partition::layer_snapshot(&fake_chain_id(
            "never-bricked",
        )));
        std::fs::remove_dir_all(dir).unwrap();
    })?;
    let (line, end, c) = boot(&s, &disk, "")?;
    ensure!(
        line.starts_with(
            "terra: booting version v1 (fallback: skipped v2: cannot mount: its layer"
        ) && line.contains("is missing"),
        "{line}\n{}",
        tail(&c)
    );
    v2_failed_v1_kept(&disk, end, "is missing", "is missing")
}

#[test]
fn a_missing_handoff_program_fails_before_switching_root() -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, None, |root| {
        let part = Partition::new(root);
        let mut m = Metadata::load(&part.metadata()).unwrap();
        m.versions.get_mut("v2").unwrap().handoff = terra_layout::Handoff::Exec {
            path: "/sbin/gone".into(),
            args: vec![],
        };
        m.store(&part.metadata()).unwrap();
    })?;
    let (line, end, c) = boot(&s, &disk, "")?;
    ensure!(
        line == "terra: booting version v1 (fallback: skipped v2: has no handoff program /sbin/gone in its root)",
        "{line}\n{}",
        tail(&c)
    );
    v2_failed_v1_kept(
        &disk,
        end,
        "no handoff program",
        "no handoff program /sbin/gone",
    )
}

#[test]
fn a_record_whose_digest_differs_from_the_pin_is_refused() -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, None, |_| {})?;
    let pin = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let (line, end, c) = boot(&s, &disk, &format!("terra.version=v2@{pin}"))?;
    ensure!(
        line.starts_with(&format!(
            "terra: booting version v1 (fallback: skipped v2: digest mismatch: expected {pin}, found"
        )),
        "{line}\n{}",
        tail(&c)
    );
    ensure!(end == End::Good);
    let m = records(&disk)?;
    let b = &m.versions["v2"].boot;
    ensure!(
        b.tries_left == Some(2),
        "a refused record spends no try: {b:?}"
    );
    ensure!(
        b.last_failure
            .as_deref()
            .unwrap_or("")
            .contains("digest mismatch"),
        "{b:?}"
    );
    let list = terra_list(&disk)?;
    ensure!(list.contains("digest mismatch"), "{list}");
    Ok(())
}

#[test]
fn a_good_new_version_becomes_good_and_stays_the_default() -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, None, |_| {})?;
    let (line, end, c) = boot(&s, &disk, "")?;
    ensure!(
        line == "terra: booting version v2 (default: pending, 1 try left after this one)",
        "{line}\n{}",
        tail(&c)
    );
    ensure!(end == End::Good, "{}", tail(&c));
    ensure!(
        c.iter()
            .any(|l| l == "terra: boot counting: version v2 marked good"),
        "{}",
        tail(&c)
    );
    let m = records(&disk)?;
    ensure!(m.versions["v2"].boot.status() == Status::Good, "{m:?}");
    ensure!(m.default.as_deref() == Some("v2"), "{m:?}");
    for _ in 0..2 {
        let (line, end, c) = boot(&s, &disk, "")?;
        ensure!(
            line == "terra: booting version v2 (default)",
            "{line}\n{}",
            tail(&c)
        );
        ensure!(end == End::Good);
        ensure!(records(&disk)? == m, "a good boot changed the records");
    }
    Ok(())
}

/// Power cut at 20 random instants while a pending version boots (from the
/// kernel's start to past the good mark, so through spending the try and
/// switching root): every time the filesystem is consistent after journal
/// replay and the records parse; then the next boots end on a good version.
/// `extra` breaks v2 (its gate then never passes before the cut), and
/// `tries` says how many boots it gets.
fn power_cuts(extra: Option<Files>, tries: u32) -> Result<()> {
    let s = Scenario::new()?;
    let disk = disk(&s, extra, |root| {
        let part = Partition::new(root);
        let mut m = Metadata::load(&part.metadata()).unwrap();
        m.activate("v2", tries).unwrap();
        m.store(&part.metadata()).unwrap();
    })?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let mut cuts = CutInstants::from_env();
    let mut seen_good = false;
    for round in 0..20 {
        // 1.5 s to 9.5 s after QEMU's start: stage 1 runs at about 2 s,
        // the gate passes at about 6 s.
        let at = Duration::from_millis(1500 + cuts.next_below(8000));
        let cfg = s.vm(&initrd, &[&disk], "osimage.hook=stay").memory_mb(1024);
        let mut vm = Vm::start(&cfg)?;
        std::thread::sleep(at);
        vm.kill();
        let c = vm.console.lines();
        let booted = c.iter().find(|l| l.starts_with("terra: booting version "));
        replay_and_check(&disk)
            .with_context(|| format!("round {round}, cut at {at:?} ({booted:?})"))?;
        let m = records(&disk).with_context(|| format!("round {round}, cut at {at:?}"))?;
        seen_good |= m.versions["v2"].boot.status() == Status::Good;
        eprintln!(
            "round {round}: cut at {:.1} s, {}, v2 {:?}",
            at.as_secs_f64(),
            booted.map(String::as_str).unwrap_or("before stage 1"),
            m.versions["v2"].boot.status()
        );
    }
    // The next boots end on a good version, whatever the cuts left.
    let mut ended_good = false;
    for _ in 0..4 {
        let (line, end, c) = boot(&s, &disk, "")?;
        if end == End::Good {
            let m = records(&disk)?;
            let name = line
                .strip_prefix("terra: booting version ")
                .and_then(|r| r.split(' ').next())
                .unwrap_or("");
            ensure!(
                m.versions[name].boot.status() == Status::Good,
                "{line}: {m:?}\n{}",
                tail(&c)
            );
            ended_good = true;
            break;
        }
    }
    ensure!(ended_good, "no boot ended on a good version");
    eprintln!("v2 became good during the cuts: {seen_good}");
    Ok(())
}

/// A whole v2 with tries to spare: the cuts fall around the try, the switch
/// and the good mark.
#[test]
fn power_cuts_while_a_whole_pending_version_boots() -> Result<()> {
    power_cuts(None, 30)
}

/// A v2 whose required service crashes, with 6 tries: the cuts fall around
/// its tries, the boot that records its failure and rolls the default back,
/// and the fallback's boots.
#[test]
fn power_cuts_while_a_broken_pending_version_runs_out_of_tries() -> Result<()> {
    power_cuts(
        Some(&[
            (
                "/etc/terra/services/crash.json",
                r#"{"argv": ["/bin/sh", "-c", "exit 3"], "required": true}"#,
            ),
            ("/etc/terra/health.json", SHORT_GATE),
        ]),
        6,
    )
}
