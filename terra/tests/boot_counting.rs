//! `terra default --tries`, `terra rollback` and `terra list` on a partition
//! in a plain directory: what they write and what they show.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use terra_layout::record::{BootState, Handoff, ImageInfo, VersionRecord};
use terra_layout::{Metadata, Partition};

fn terra(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_terra"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = terra(root, args);
    assert!(
        out.status.success(),
        "terra {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(root: &Path, args: &[&str]) -> String {
    let out = terra(root, args);
    assert!(!out.status.success(), "terra {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn record(name: &str, at: u64, good: bool) -> VersionRecord {
    VersionRecord {
        lowers: vec![format!("ov/snapshots/sha256-{name}")],
        upper: format!("ov/snapshots/rw-{name}/upper"),
        work: format!("ov/snapshots/rw-{name}/work"),
        handoff: Handoff::Supervise,
        kernel: None,
        initrd: None,
        image: Some(ImageInfo {
            reference: format!("example/os:{name}"),
            digest: format!("sha256:{name}"),
            config: None,
        }),
        installed_at: at,
        size: 0,
        boot: BootState {
            good,
            ..BootState::default()
        },
    }
}

/// v1 good and the default; v2 installed, never booted.
fn partition() -> (tempfile::TempDir, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let part = Partition::new(dir.path());
    std::fs::create_dir_all(dir.path().join("ov")).unwrap();
    let mut m = Metadata::default();
    m.versions.insert("v1".into(), record("v1", 1, true));
    m.versions.insert("v2".into(), record("v2", 2, false));
    m.default = Some("v1".into());
    m.store(&part.metadata()).unwrap();
    (dir, part)
}

fn listing(root: &Path) -> Value {
    serde_json::from_str(&ok(root, &["list", "--json"])).unwrap()
}

fn boot_of<'a>(l: &'a Value, name: &str) -> &'a Value {
    let v = l["versions"].as_array().unwrap();
    &v.iter().find(|r| r["name"] == name).unwrap()["boot"]
}

#[test]
fn default_makes_pending_and_rollback_goes_back() {
    let (dir, part) = partition();
    let root = dir.path();
    ok(root, &["default", "v2", "--tries", "2"]);
    let m = Metadata::load(&part.metadata()).unwrap();
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.fallback.as_deref(), Some("v1"));
    assert_eq!(m.versions["v2"].boot.tries_left, Some(2));
    let l = listing(root);
    assert_eq!(l["fallback"], "v1");
    assert_eq!(boot_of(&l, "v2")["state"], "pending");
    assert_eq!(boot_of(&l, "v2")["tries_left"], 2);
    assert_eq!(boot_of(&l, "v1")["state"], "good");
    let text = ok(root, &["list"]);
    assert!(text.contains("pending (2 left)"), "{text}");
    assert!(text.contains("falls back to: v1"), "{text}");
    // The menu is rewritten with the new default first.
    let cfg = std::fs::read_to_string(part.grub_cfg()).unwrap();
    assert!(cfg.contains("Terra v2 (default) [pending]"), "{cfg}");

    ok(root, &["rollback"]);
    let m = Metadata::load(&part.metadata()).unwrap();
    assert_eq!(m.default.as_deref(), Some("v1"));
    let err = refused(root, &["rollback"]);
    assert!(err.contains("no good version to roll back to"), "{err}");
}

#[test]
fn the_default_without_tries_gets_three_and_bad_input_is_refused() {
    let (dir, part) = partition();
    let root = dir.path();
    ok(root, &["default", "v2"]);
    let m = Metadata::load(&part.metadata()).unwrap();
    assert_eq!(m.versions["v2"].boot.tries_left, Some(3));
    let err = refused(root, &["default", "v9"]);
    assert!(
        err.contains("no version \"v9\" (installed: v1, v2)"),
        "{err}"
    );
    let err = refused(root, &["default", "v1", "--tries", "0"]);
    assert!(err.contains("--tries must be at least 1"), "{err}");
    // Refused: nothing changed.
    assert_eq!(Metadata::load(&part.metadata()).unwrap(), m);
}

#[test]
fn a_failed_version_is_listed_with_its_reason_and_time() {
    let (dir, part) = partition();
    let mut m = Metadata::load(&part.metadata()).unwrap();
    m.activate("v2", 1).unwrap();
    m.record_failure("v2", "no tries left and never became good", 1_764_441_600);
    m.store(&part.metadata()).unwrap();
    let l = listing(dir.path());
    assert_eq!(l["default"], "v1");
    let b = boot_of(&l, "v2");
    assert_eq!(b["state"], "failed");
    assert_eq!(b["failed_at"], "2025-11-29T18:40:00Z");
    assert_eq!(b["last_failure"], "no tries left and never became good");
    let text = ok(dir.path(), &["list"]);
    assert!(
        text.contains("v2: no tries left and never became good"),
        "{text}"
    );
}

#[test]
fn logs_shows_a_saved_boot_and_lists_them() {
    let (dir, part) = partition();
    let root = dir.path();
    let err = refused(root, &["logs"]);
    assert!(err.contains("no saved log for --boot -1"), "{err}");
    terra_layout::bootlog::save(&part, "[    1.000000] terra: booting version v2\n").unwrap();
    terra_layout::bootlog::save(&part, "[    1.000000] terra: booting version v1\n").unwrap();
    assert!(ok(root, &["logs"]).contains("booting version v1"));
    assert!(ok(root, &["logs", "--boot", "-2"]).contains("booting version v2"));
    let err = refused(root, &["logs", "--boot", "-3"]);
    assert!(err.contains("expected -1 to -2"), "{err}");
    let list = ok(root, &["logs", "--list"]);
    assert!(list.contains(" -1  boot-000002.log"), "{list}");
    assert!(list.contains(" -2  boot-000001.log"), "{list}");
}

/// `terra default` and `terra rollback` killed at many instants: the records
/// always parse and are the old or the new state, never a mix (the one
/// atomic replace). A process kill, not a power cut: the VM tests cut power
/// during boots.
#[test]
fn killed_at_any_instant_default_and_rollback_leave_old_or_new_records() {
    let (dir, part) = partition();
    let root = dir.path();
    for round in 0..60u64 {
        let args: &[&str] = if round % 2 == 0 {
            &["default", "v2", "--tries", "2"]
        } else {
            &["rollback"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_terra"))
            .arg("--root")
            .arg(root)
            .args(args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(round * 97 % 4000));
        let _ = child.kill();
        let _ = child.wait();
        let m = Metadata::load(&part.metadata()).unwrap();
        let v2 = &m.versions["v2"].boot;
        let old = m.default.as_deref() == Some("v1") && m.fallback.is_none();
        let new = m.default.as_deref() == Some("v2")
            && m.fallback.as_deref() == Some("v1")
            && v2.tries_left == Some(2);
        assert!(old || new, "round {round}: {m:?}");
        assert!(m.versions["v1"].boot.good, "round {round}");
    }
}
