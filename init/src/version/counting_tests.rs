//! Boot counting in stage 1 with the recording fake: every combination of
//! requested, pending, tries, good and failed gives the right version, the
//! right console line and the right record on the partition.

use std::fs;
use std::time::Instant;

use terra_layout::boot_state::Status;
use terra_layout::record::{BootState, ImageInfo};

use super::tests::{found, params, setup, Setup};
use super::*;
use crate::kernel::fake::Fake;

fn record(layer: &str, at: u64, boot: BootState) -> VersionRecord {
    VersionRecord {
        lowers: vec![format!("ov/snapshots/sha256-{layer}")],
        upper: format!("ov/snapshots/rw-{layer}/upper"),
        work: format!("ov/snapshots/rw-{layer}/work"),
        handoff: Handoff::Supervise,
        kernel: None,
        initrd: None,
        image: Some(ImageInfo {
            reference: "r".into(),
            digest: format!("sha256:{layer}{layer}"),
            config: None,
        }),
        installed_at: at,
        size: 0,
        boot,
    }
}

fn good() -> BootState {
    BootState {
        good: true,
        ..BootState::default()
    }
}

fn pending(n: u32) -> BootState {
    BootState {
        tries_left: Some(n),
        ..BootState::default()
    }
}

fn failed() -> BootState {
    BootState {
        tries_left: Some(0),
        last_failure: Some("health gate: containerd not ready".into()),
        failed_at: Some(7),
        ..BootState::default()
    }
}

/// v1 (good, layer a) and v2 (layer c, in `v2`), the default and fallback given.
fn meta(v2: BootState, default: &str, fallback: Option<&str>) -> Metadata {
    let mut m = Metadata::default();
    m.versions.insert("v1".into(), record("a", 10, good()));
    m.versions.insert("v2".into(), record("c", 20, v2));
    m.default = Some(default.into());
    m.fallback = fallback.map(String::from);
    m
}

struct Outcome {
    booted: Booted,
    after: Metadata,
    written: bool,
}

fn boot(m: &Metadata, req: Option<&str>, prepare: impl FnOnce(&Setup)) -> Outcome {
    let text = m.to_json();
    let s = setup(&text, None);
    prepare(&s);
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let booted = mount(&env, &params(req), &found()).unwrap();
    let now = fs::read_to_string(s.paths.partition.join("ov/metadata.db")).unwrap();
    Outcome {
        booted,
        after: Metadata::parse(&now).unwrap(),
        written: now != text,
    }
}

fn status(m: &Metadata, v: &str) -> String {
    format!("{:?}", m.versions[v].boot.status())
}

/// v2's state, the default, the fallback, `terra.version=`; then the version
/// booted, the console line, v2's status after and the default after.
type Case = (
    BootState,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    String,
    String,
    &'static str,
);

#[test]
fn every_combination_boots_the_right_version_with_the_right_line() {
    let exhausted = "no tries left and never became good";
    // (v2's state, default, fallback, terra.version=, booted, console line,
    //  v2's status after, default after)
    let table: Vec<Case> = vec![
        // A normal boot: good default, nothing pending.
        (BootState::default(), "v1", None, None, "v1",
         "booting version v1 (default)".into(), "Untried".into(), "v1"),
        (good(), "v2", Some("v1"), None, "v2",
         "booting version v2 (default)".into(), "Good".into(), "v2"),
        // Pending: one try spent per boot.
        (pending(3), "v2", Some("v1"), None, "v2",
         "booting version v2 (default: pending, 2 tries left after this one)".into(),
         "Pending { tries_left: 2 }".into(), "v2"),
        (pending(1), "v2", Some("v1"), None, "v2",
         "booting version v2 (default: pending, 0 tries left after this one)".into(),
         "Exhausted".into(), "v2"),
        // Out of tries: failed now, the default goes back, the fallback boots.
        (pending(0), "v2", Some("v1"), None, "v1",
         format!("booting version v1 (fallback: skipped v2: {exhausted})"),
         format!("Failed {{ reason: \"{exhausted}\", at: _ }}"), "v1"),
        // Failed earlier and still the default (an old record): skipped.
        (failed(), "v2", Some("v1"), None, "v1",
         "booting version v1 (fallback: skipped v2: failed earlier: health gate: containerd not ready)".into(),
         "Failed { reason: \"health gate: containerd not ready\", at: 7 }".into(), "v2"),
        // The GRUB menu names the version: it still counts.
        (pending(2), "v2", Some("v1"), Some("v2"), "v2",
         "booting version v2 (requested: pending, 1 try left after this one)".into(),
         "Pending { tries_left: 1 }".into(), "v2"),
        (pending(0), "v2", Some("v1"), Some("v2"), "v1",
         format!("booting version v1 (fallback: skipped v2: {exhausted})"),
         format!("Failed {{ reason: \"{exhausted}\", at: _ }}"), "v1"),
        (failed(), "v1", None, Some("v2"), "v1",
         "booting version v1 (fallback: skipped v2: failed earlier: health gate: containerd not ready)".into(),
         "Failed { reason: \"health gate: containerd not ready\", at: 7 }".into(), "v1"),
        // A person picks the good old version while v2 is pending: no try spent.
        (pending(2), "v2", Some("v1"), Some("v1"), "v1",
         "booting version v1 (requested)".into(), "Pending { tries_left: 2 }".into(), "v2"),
        // Pinned by digest: the right one boots and counts, another is refused.
        (pending(2), "v2", Some("v1"), Some("v2@sha256:cc"), "v2",
         "booting version v2 (requested: pending, 1 try left after this one)".into(),
         "Pending { tries_left: 1 }".into(), "v2"),
        (good(), "v2", None, Some("v2@sha256:dd"), "v1",
         "booting version v1 (fallback: skipped v2: digest mismatch: expected sha256:dd, found sha256:cc)".into(),
         "Good".into(), "v2"),
        // A name that is not installed: the default, as a fallback.
        (pending(2), "v2", Some("v1"), Some("v9"), "v2",
         "booting version v2 (fallback: pending, 1 try left after this one)".into(),
         "Pending { tries_left: 1 }".into(), "v2"),
    ];
    for (v2, default, fallback, req, want, line, after, default_after) in table {
        let case = format!("v2 {v2:?}, default {default}, fallback {fallback:?}, request {req:?}");
        let m = meta(v2, default, fallback);
        let out = boot(&m, req, |_| {});
        assert_eq!(out.booted.name, want, "{case}");
        assert_eq!(out.booted.line(), line, "{case}");
        let got = status(&out.after, "v2");
        let got = match got.find("at: ") {
            Some(i) if after.ends_with("at: _ }") => format!("{}at: _ }}", &got[..i]),
            _ => got,
        };
        assert_eq!(got, after, "{case}");
        assert_eq!(out.after.default.as_deref(), Some(default_after), "{case}");
    }
}

#[test]
fn a_normal_boot_writes_nothing() {
    for m in [
        meta(good(), "v2", None),
        meta(BootState::default(), "v1", None),
    ] {
        let out = boot(&m, None, |_| {});
        assert!(!out.written, "{}", out.booted.line());
    }
    let out = boot(&meta(pending(2), "v2", Some("v1")), Some("v1"), |_| {});
    assert!(!out.written, "booting the good version spends nothing");
}

#[test]
fn a_digest_mismatch_is_noted_not_failed() {
    let out = boot(
        &meta(pending(2), "v2", Some("v1")),
        Some("v2@sha256:dd"),
        |_| {},
    );
    assert_eq!(out.booted.name, "v1");
    let b = &out.after.versions["v2"].boot;
    assert_eq!(b.tries_left, Some(2), "no try spent on a refused record");
    assert_eq!(
        b.last_failure.as_deref(),
        Some("digest mismatch: expected sha256:dd, found sha256:cc")
    );
    assert_eq!(b.failed_at, None);
}

#[test]
fn a_pending_version_that_cannot_be_mounted_fails() {
    let m = meta(pending(3), "v2", Some("v1"));
    let out = boot(&m, None, |s| {
        fs::remove_dir(s.paths.partition.join("ov/snapshots/sha256-c")).unwrap();
    });
    assert_eq!(out.booted.name, "v1");
    assert_eq!(out.booted.reason, "fallback");
    let b = &out.after.versions["v2"].boot;
    assert!(
        matches!(b.status(), Status::Failed { reason, .. }
        if reason.starts_with("cannot mount: its layer") && reason.ends_with("sha256-c is missing")),
        "{b:?}"
    );
    assert_eq!(out.after.default.as_deref(), Some("v1"));
}

#[test]
fn a_good_version_that_cannot_be_mounted_is_noted_not_failed() {
    let mut m = meta(good(), "v1", None);
    m.versions.get_mut("v1").unwrap().lowers = vec!["ov/snapshots/sha256-gone".into()];
    let out = boot(&m, None, |_| {});
    assert_eq!(out.booted.name, "v2");
    let b = &out.after.versions["v1"].boot;
    assert_eq!(b.status(), Status::Good);
    assert!(b
        .last_failure
        .as_deref()
        .unwrap()
        .contains("sha256-gone is missing"));
}

#[test]
fn a_try_that_cannot_be_written_is_not_booted() {
    let m = meta(pending(3), "v2", Some("v1"));
    // A file where tmp/ should be: the lock, hence the write, fails.
    let out = boot(&m, None, |s| {
        fs::write(s.paths.partition.join("tmp"), "").unwrap();
    });
    assert_eq!(out.booted.name, "v1");
    assert!(!out.written);
}

#[test]
fn when_every_version_failed_one_boots_as_a_last_resort() {
    let mut m = Metadata::default();
    m.versions.insert("v2".into(), record("c", 20, pending(0)));
    m.default = Some("v2".into());
    let out = boot(&m, None, |_| {});
    assert_eq!(out.booted.name, "v2");
    assert_eq!(
        out.booted.line(),
        "booting version v2 (last resort: every version failed)"
    );
    assert!(matches!(
        out.after.versions["v2"].boot.status(),
        Status::Failed { .. }
    ));
    // The next boot is the same, and writes nothing.
    let again = boot(&out.after, None, |_| {});
    assert_eq!(again.booted.name, "v2");
    assert!(!again.written);
}

#[test]
fn a_version_whose_handoff_program_is_missing_is_passed_over() {
    let mut m = meta(BootState::default(), "v2", None);
    m.versions.get_mut("v2").unwrap().handoff = Handoff::Exec {
        path: "/sbin/gone".into(),
        args: vec![],
    };
    let text = m.to_json();
    let s = setup(&text, None);
    let k = Fake::failing(&["sbin/gone"]);
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let b = mount(&env, &params(None), &found()).unwrap();
    assert_eq!(
        b.line(),
        "booting version v1 (fallback: skipped v2: has no handoff program /sbin/gone in its root)"
    );
    let after = Metadata::load(&s.paths.partition.join("ov/metadata.db")).unwrap();
    assert_eq!(
        after.versions["v2"].boot.last_failure.as_deref(),
        Some("has no handoff program /sbin/gone in its root")
    );
    // terra.init= replaces the record's handoff: nothing to check then.
    let s = setup(&text, None);
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let p = BootParams {
        init: Some("/bin/sh".into()),
        ..BootParams::default()
    };
    assert_eq!(mount(&env, &p, &found()).unwrap().name, "v2");
}
