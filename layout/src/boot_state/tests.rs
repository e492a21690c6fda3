//! Every state and every transition of boot counting.

use super::*;
use crate::record::{Handoff, ImageInfo};

fn rec(at: u64, boot: BootState) -> VersionRecord {
    VersionRecord {
        lowers: vec!["ov/snapshots/sha256-aa".into()],
        upper: "ov/snapshots/rw-x/upper".into(),
        work: "ov/snapshots/rw-x/work".into(),
        handoff: Handoff::default(),
        kernel: None,
        initrd: None,
        image: Some(ImageInfo {
            reference: "r".into(),
            digest: "sha256:good".into(),
            config: None,
        }),
        installed_at: at,
        size: 0,
        boot,
    }
}

fn state(tries: Option<u32>, good: bool, failed_at: Option<u64>) -> BootState {
    BootState {
        tries_left: tries,
        good,
        last_failure: failed_at.map(|_| "boom".into()),
        failed_at,
    }
}

fn good() -> BootState {
    state(None, true, None)
}

#[test]
fn status_of_every_combination() {
    let table = [
        (state(None, false, None), Status::Untried),
        (
            state(Some(2), false, None),
            Status::Pending { tries_left: 2 },
        ),
        (state(Some(0), false, None), Status::Exhausted),
        (state(None, true, None), Status::Good),
        // Good wins over anything left behind.
        (state(Some(1), true, Some(5)), Status::Good),
        (
            state(Some(0), false, Some(5)),
            Status::Failed {
                reason: "boom",
                at: 5,
            },
        ),
        (
            state(Some(3), false, Some(5)),
            Status::Failed {
                reason: "boom",
                at: 5,
            },
        ),
    ];
    for (s, want) in table {
        assert_eq!(s.status(), want, "{s:?}");
    }
}

#[test]
fn gate_of_every_status_and_pin() {
    let exhausted_reason = "no tries left and never became good";
    let table: [(BootState, Option<&str>, Gate); 8] = [
        (good(), None, Gate::Boot { spend: false }),
        (state(None, false, None), None, Gate::Boot { spend: false }),
        (
            state(Some(1), false, None),
            None,
            Gate::Boot { spend: true },
        ),
        (
            state(Some(0), false, None),
            None,
            Gate::Skip {
                reason: exhausted_reason.into(),
                record: Record::Fail,
            },
        ),
        (
            state(Some(0), false, Some(7)),
            None,
            Gate::Skip {
                reason: "failed earlier: boom".into(),
                record: Record::Nothing,
            },
        ),
        (good(), Some("sha256:good"), Gate::Boot { spend: false }),
        (
            state(Some(2), false, None),
            Some("sha256:good"),
            Gate::Boot { spend: true },
        ),
        (
            good(),
            Some("sha256:other"),
            Gate::Skip {
                reason: "digest mismatch: expected sha256:other, found sha256:good".into(),
                record: Record::Note,
            },
        ),
    ];
    for (boot, pin, want) in table {
        assert_eq!(gate(&rec(1, boot.clone()), pin), want, "{boot:?} {pin:?}");
    }
    // The reason stage 2 left is carried into the failure.
    let mut b = state(Some(0), false, None);
    b.last_failure = Some("health gate: containerd not ready".into());
    assert_eq!(
        gate(&rec(1, b), None),
        Gate::Skip {
            reason: format!("{exhausted_reason} (last: health gate: containerd not ready)"),
            record: Record::Fail
        }
    );
    let mut no_image = rec(1, good());
    no_image.image = None;
    assert!(matches!(
        gate(&no_image, Some("sha256:x")),
        Gate::Skip { reason, record: Record::Note } if reason.contains("no digest in its record")
    ));
}

#[test]
fn requests_split_name_and_digest() {
    assert_eq!(
        Request::parse("v2"),
        Request {
            name: "v2",
            digest: None
        }
    );
    assert_eq!(
        Request::parse("v2@sha256:ab"),
        Request {
            name: "v2",
            digest: Some("sha256:ab")
        }
    );
}

fn two(default_good: bool) -> Metadata {
    let mut m = Metadata::default();
    let first = if default_good {
        good()
    } else {
        BootState::default()
    };
    m.versions.insert("v1".into(), rec(1, first));
    m.versions.insert("v2".into(), rec(2, BootState::default()));
    m.default = Some("v1".into());
    m
}

#[test]
fn activating_makes_pending_and_keeps_the_good_default() {
    let mut m = two(true);
    assert_eq!(m.activate("v2", 3), Ok(Activated::Pending { tries: 3 }));
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.fallback.as_deref(), Some("v1"));
    assert_eq!(
        m.versions["v2"].boot.status(),
        Status::Pending { tries_left: 3 }
    );
    // A second activation before any boot keeps the good fallback.
    m.versions.insert("v3".into(), rec(3, BootState::default()));
    m.activate("v3", 1).unwrap();
    assert_eq!(m.fallback.as_deref(), Some("v1"));
    // A good version is default at once, without tries.
    assert_eq!(m.activate("v1", 3), Ok(Activated::Good));
    assert_eq!(m.versions["v1"].boot.status(), Status::Good);
    m.validate().unwrap();
    assert!(matches!(
        m.activate("nope", 3),
        Err(StateError::NotInstalled { .. })
    ));
    assert_eq!(m.activate("v2", 0), Err(StateError::NoTries));
}

#[test]
fn a_version_that_execs_another_init_is_not_counted() {
    let mut m = two(true);
    m.versions.get_mut("v2").unwrap().handoff = Handoff::Exec {
        path: "/sbin/init".into(),
        args: vec![],
    };
    assert_eq!(m.activate("v2", 3), Ok(Activated::Ungated));
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.versions["v2"].boot.status(), Status::Untried);
}

#[test]
fn activating_a_failed_version_gives_it_fresh_tries() {
    let mut m = two(true);
    m.versions.get_mut("v2").unwrap().boot = state(Some(0), false, Some(9));
    m.activate("v2", 2).unwrap();
    assert_eq!(
        m.versions["v2"].boot,
        BootState {
            tries_left: Some(2),
            ..BootState::default()
        }
    );
}

#[test]
fn spending_tries_counts_down_to_exhausted() {
    let mut m = two(true);
    m.activate("v2", 2).unwrap();
    assert_eq!(m.spend_try("v2"), Some(1));
    assert_eq!(m.spend_try("v2"), Some(0));
    assert_eq!(m.versions["v2"].boot.status(), Status::Exhausted);
    assert_eq!(m.spend_try("v2"), None);
    assert_eq!(m.spend_try("v1"), None, "a good version does not count");
}

#[test]
fn a_failure_of_the_default_rolls_back_to_the_last_good() {
    let mut m = two(true);
    m.activate("v2", 1).unwrap();
    assert_eq!(
        m.record_failure("v2", "no tries left", 42),
        Some("v1".into())
    );
    assert_eq!(m.default.as_deref(), Some("v1"));
    assert_eq!(
        m.versions["v2"].boot.status(),
        Status::Failed {
            reason: "no tries left",
            at: 42
        }
    );
    m.validate().unwrap();
    // A failure of another version leaves the default alone.
    let mut m = two(true);
    assert_eq!(m.record_failure("v2", "x", 1), None);
    assert_eq!(m.default.as_deref(), Some("v1"));
}

#[test]
fn rollback_goes_to_the_fallback_else_the_newest_good() {
    let mut m = two(true);
    m.activate("v2", 3).unwrap();
    assert_eq!(m.rollback(), Ok("v1".into()));
    assert_eq!(m.default.as_deref(), Some("v1"));
    assert_eq!(m.fallback, None);
    // No fallback recorded: the newest good version that is not the default.
    let mut m = two(true);
    m.versions.insert("v0".into(), rec(0, good()));
    m.default = Some("v2".into());
    assert_eq!(m.rollback(), Ok("v1".into()));
    // Nothing good but the default: refused, nothing changed.
    let mut m = two(true);
    assert_eq!(
        m.rollback(),
        Err(StateError::NothingToRollBackTo {
            default: "v1".into()
        })
    );
    assert_eq!(m.default.as_deref(), Some("v1"));
}

#[test]
fn the_good_mark_ends_counting_and_is_written_once() {
    let mut m = two(true);
    m.activate("v2", 3).unwrap();
    m.spend_try("v2");
    assert!(m.mark_good("v2"));
    assert_eq!(m.versions["v2"].boot.status(), Status::Good);
    assert_eq!(m.versions["v2"].boot.tries_left, Some(2));
    assert!(!m.mark_good("v2"));
    assert!(!m.mark_good("nope"));
}

#[test]
fn older_documents_read_as_untried_and_new_fields_round_trip() {
    let m = Metadata::parse(
        r#"{"format":1,"default":"a","versions":{"a":{"lowers":["l"],"upper":"u","work":"w",
            "boot":{"tries_left":null,"good":false,"last_failure":null}}}}"#,
    )
    .unwrap();
    assert_eq!(m.versions["a"].boot.status(), Status::Untried);
    let mut m = two(true);
    m.activate("v2", 1).unwrap();
    m.record_failure("v2", "why", 3);
    assert_eq!(Metadata::parse(&m.to_json()).unwrap(), m);
}
