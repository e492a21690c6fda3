//! The good mark and the gate's verdicts.

use super::*;
use terra_layout::record::{BootState, Handoff, VersionRecord};

/// A version record not yet good, with `tries` (shared with the
/// supervisor's tests).
pub(crate) fn record(tries: Option<u32>) -> VersionRecord {
    VersionRecord {
        lowers: vec!["ov/snapshots/sha256-a".into()],
        upper: "ov/snapshots/rw-v1/upper".into(),
        work: "ov/snapshots/rw-v1/work".into(),
        handoff: Handoff::Supervise,
        kernel: None,
        initrd: None,
        image: None,
        installed_at: 1,
        size: 0,
        boot: BootState {
            tries_left: tries,
            good: false,
            last_failure: None,
            failed_at: None,
        },
    }
}

#[test]
fn marks_the_booted_version_good_once() {
    let dir = tempfile::tempdir().unwrap();
    let part = Partition::new(dir.path());
    std::fs::create_dir_all(dir.path().join("ov")).unwrap();
    let mut meta = Metadata::default();
    meta.versions.insert("v1".into(), record(Some(2)));
    meta.versions.insert("v2".into(), record(None));
    meta.store(&part.metadata()).unwrap();

    assert!(mark_good_at(dir.path(), "v1"));
    let after = Metadata::load(&part.metadata()).unwrap();
    assert!(after.versions["v1"].boot.good);
    assert_eq!(after.versions["v1"].boot.tries_left, Some(2));
    assert!(!after.versions["v2"].boot.good);
    // Already good: nothing written.
    assert!(!mark_good_at(dir.path(), "v1"));
}

#[test]
fn unknown_versions_and_missing_partitions_are_survived() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!mark_good_at(dir.path(), "v1"));
    assert!(!mark_good_at(&dir.path().join("nope"), "v1"));
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cfg(timeout: u64, grace: u64) -> Config {
    Config {
        timeout,
        grace,
        sockets: Vec::new(),
        command: None,
    }
}

fn down(what: &str) -> Vec<String> {
    vec![what.to_string()]
}

#[test]
fn passes_once_everything_stayed_ready_for_the_grace_period() {
    let t0 = Instant::now();
    let mut g = Gate::new(t0, &cfg(60, 10));
    assert_eq!(g.next_wake(t0), Some(secs(60)));
    assert_eq!(
        g.observe(t0 + secs(2), &down("containerd not ready")),
        Verdict::Waiting
    );
    assert_eq!(g.observe(t0 + secs(3), &[]), Verdict::Waiting);
    assert_eq!(g.next_wake(t0 + secs(3)), Some(secs(10)));
    assert_eq!(g.observe(t0 + secs(12), &[]), Verdict::Waiting);
    assert_eq!(g.observe(t0 + secs(13), &[]), Verdict::Passed);
    // Given once.
    assert_eq!(g.observe(t0 + secs(14), &[]), Verdict::Waiting);
    assert_eq!(g.next_wake(t0 + secs(14)), None);
}

#[test]
fn a_service_that_goes_down_starts_the_grace_period_over() {
    let t0 = Instant::now();
    let mut g = Gate::new(t0, &cfg(60, 10));
    assert_eq!(g.observe(t0 + secs(1), &[]), Verdict::Waiting);
    assert_eq!(
        g.observe(t0 + secs(9), &down("containerd not ready")),
        Verdict::Waiting
    );
    assert_eq!(g.observe(t0 + secs(10), &[]), Verdict::Waiting);
    assert_eq!(g.observe(t0 + secs(19), &[]), Verdict::Waiting);
    assert_eq!(g.observe(t0 + secs(20), &[]), Verdict::Passed);
}

#[test]
fn fails_at_the_timeout_naming_what_is_not_ready() {
    let t0 = Instant::now();
    let mut g = Gate::new(t0, &cfg(30, 10));
    let what = vec![
        "containerd not ready (started 5 times)".to_string(),
        "/run/x.sock does not answer".to_string(),
    ];
    assert_eq!(g.observe(t0 + secs(29), &what), Verdict::Waiting);
    assert_eq!(
        g.observe(t0 + secs(30), &what),
        Verdict::Failed(
            "health gate: not healthy 30 s after start: containerd not ready (started 5 times), \
             /run/x.sock does not answer"
                .into()
        )
    );
    assert_eq!(g.observe(t0 + secs(31), &what), Verdict::Waiting);
}

#[test]
fn ready_at_the_timeout_may_finish_its_grace_period() {
    let t0 = Instant::now();
    let mut g = Gate::new(t0, &cfg(30, 10));
    assert_eq!(g.observe(t0 + secs(25), &[]), Verdict::Waiting);
    assert_eq!(g.observe(t0 + secs(31), &[]), Verdict::Waiting);
    assert_eq!(g.observe(t0 + secs(35), &[]), Verdict::Passed);
}

#[test]
fn settings_come_from_the_image_or_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("health.json");
    assert_eq!(load(&p), Config::default());
    std::fs::write(&p, r#"{"timeout": 20, "sockets": ["/run/a.sock"]}"#).unwrap();
    assert_eq!(
        load(&p),
        Config {
            timeout: 20,
            grace: 10,
            sockets: vec!["/run/a.sock".into()],
            command: None,
        }
    );
    std::fs::write(&p, r#"{"command": ["/bin/check", "-q"]}"#).unwrap();
    assert_eq!(
        load(&p).command,
        Some(vec!["/bin/check".to_string(), "-q".to_string()])
    );
    std::fs::write(&p, r#"{"timeout": "soon"}"#).unwrap();
    assert_eq!(load(&p), Config::default());
}

#[test]
fn a_failure_is_noted_under_the_lock_without_failing_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let part = Partition::new(dir.path());
    std::fs::create_dir_all(dir.path().join("ov")).unwrap();
    let mut meta = Metadata::default();
    meta.versions.insert("v1".into(), record(Some(1)));
    meta.store(&part.metadata()).unwrap();
    assert!(update(dir.path(), "v1", |m| {
        m.note_failure("v1", "health gate: x");
        true
    }));
    let after = Metadata::load(&part.metadata()).unwrap();
    let b = &after.versions["v1"].boot;
    assert_eq!(b.last_failure.as_deref(), Some("health gate: x"));
    assert_eq!((b.tries_left, b.good, b.failed_at), (Some(1), false, None));
    // Someone else holds the lock past the wait: nothing is written.
    let held = terra_layout::lock::lock(&part, Duration::ZERO).unwrap();
    let start = Instant::now();
    assert!(!mark_good_at(dir.path(), "v1"));
    assert!(start.elapsed() >= LOCK_WAIT);
    drop(held);
    assert!(mark_good_at(dir.path(), "v1"));
}
