//! Stage 1's choice and mount of a version, with the recording fake.

use std::fs;
use std::time::Instant;

use super::*;
use crate::env::Paths;
use crate::kernel::fake::Fake;

const META: &str = r#"{
  "format": 1,
  "default": "v1",
  "versions": {
    "v1": {"lowers": ["ov/snapshots/sha256-b", "ov/snapshots/sha256-a"],
           "upper": "ov/snapshots/rw-v1/upper", "work": "ov/snapshots/rw-v1/work",
           "handoff": {"kind": "exec", "path": "/sbin/init"}, "installed_at": 10},
    "v2": {"lowers": ["ov/snapshots/sha256-c", "ov/snapshots/sha256-a"],
           "upper": "ov/snapshots/rw-v2/upper", "work": "ov/snapshots/rw-v2/work",
           "installed_at": 20}
  }
}"#;

pub(super) struct Setup {
    pub _dir: tempfile::TempDir,
    pub paths: Paths,
}

pub(super) fn setup(meta: &str, odisk: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("run/terra/partition");
    for l in ["a", "b", "c"] {
        fs::create_dir_all(part.join("ov/snapshots").join(format!("sha256-{l}"))).unwrap();
    }
    fs::write(part.join("ov/metadata.db"), meta).unwrap();
    if let Some(o) = odisk {
        fs::write(part.join("odisk"), o).unwrap();
    }
    let paths = Paths {
        partition: part,
        newroot: dir.path().join("newroot"),
        ..Paths::default()
    };
    Setup { _dir: dir, paths }
}

pub(super) fn found() -> Found {
    Found {
        name: "vdb1".into(),
        node: "/dev/vdb1".into(),
        scans: 1,
    }
}

pub(super) fn params(version: Option<&str>) -> BootParams {
    BootParams {
        version: version.map(String::from),
        ..BootParams::default()
    }
}

/// The mount lines, with the temp dir shown as `T`.
fn mounts(k: &Fake, s: &Setup) -> Vec<String> {
    let t = s.paths.newroot.parent().unwrap().display().to_string();
    k.calls()
        .into_iter()
        .filter(|c| c.starts_with("mount"))
        .map(|c| c.replace(&t, "T"))
        .collect()
}

#[test]
fn mounts_the_default_version_with_its_layers_in_order() {
    let s = setup(META, None);
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let booted = mount(&env, &params(None), &found()).unwrap();
    assert_eq!(booted.name, "v1");
    assert_eq!(booted.reason, "default");
    assert_eq!(
        booted.handoff,
        Handoff::Exec {
            path: "/sbin/init".into(),
            args: vec![]
        }
    );
    let p = "T/run/terra/partition";
    assert_eq!(
        mounts(&k, &s),
        [
            format!("mount -t ext4 -o nosuid,nodev /dev/vdb1 {p}"),
            format!(
                "mount -t overlay -o lowerdir={p}/ov/snapshots/sha256-b:{p}/ov/snapshots/sha256-a,\
                 upperdir={p}/ov/snapshots/rw-v1/upper,workdir={p}/ov/snapshots/rw-v1/work overlay T/newroot"
            ),
            format!("mount -o bind {p}/vlc T/newroot/var/lib/containerd"),
            format!("mount -o remount,bind {p}/vlc T/newroot/var/lib/containerd"),
            "mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs T/newroot/tmp".to_string(),
        ]
    );
    // upper and work are created before the overlay is mounted
    let calls = k.calls().join("\n");
    let upper = calls.find("rw-v1/upper\n").unwrap();
    assert!(upper < calls.find("-t overlay").unwrap());
    assert_eq!(env.plan.borrow().len(), 5);
}

#[test]
fn reasons_follow_the_boot_order() {
    for (req, name, reason) in [
        (Some("v2"), "v2", "requested"),
        (Some("v1"), "v1", "requested"),
        (Some("nope"), "v1", "fallback"),
    ] {
        let s = setup(META, None);
        let k = Fake::default();
        let env = Env::new(s.paths.clone(), &k, Instant::now());
        let b = mount(&env, &params(req), &found()).unwrap();
        assert_eq!((b.name.as_str(), b.reason), (name, reason), "{req:?}");
    }
    let s = setup(&META.replace(r#""default": "v1","#, ""), None);
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let b = mount(&env, &params(None), &found()).unwrap();
    assert_eq!((b.name.as_str(), b.reason), ("v2", "newest"));
}

#[test]
fn a_version_that_cannot_be_mounted_falls_back_to_the_next() {
    let s = setup(META, None);
    let k = Fake::failing(&["rw-v2/upper,"]);
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let b = mount(&env, &params(Some("v2")), &found()).unwrap();
    assert_eq!((b.name.as_str(), b.reason), ("v1", "fallback"));

    // a missing layer is named
    let s = setup(&META.replace("sha256-c", "sha256-gone"), None);
    let k = Fake::failing(&["rw-v1/upper,"]);
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let err = mount(&env, &params(None), &found()).unwrap_err();
    let tried = err.found().join("\n");
    assert!(tried.contains("version v1: mount -t overlay"), "{tried}");
    assert!(
        tried.contains("version v2: its layer") && tried.contains("sha256-gone is missing"),
        "{tried}"
    );
}

#[test]
fn odisk_entries_are_applied_and_a_bad_odisk_is_not_fatal() {
    let odisk = "vlc-cni /var/lib/cni none bind,ro\ntmpfs /var/cache tmpfs size=64m,nosuid\n";
    let s = setup(META, Some(odisk));
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    mount(&env, &params(None), &found()).unwrap();
    let m = mounts(&k, &s);
    assert_eq!(
        m[4..],
        [
            "mount -o bind T/run/terra/partition/vlc-cni T/newroot/var/lib/cni",
            "mount -o ro,remount,bind T/run/terra/partition/vlc-cni T/newroot/var/lib/cni",
            "mount -t tmpfs -o nosuid,size=64m tmpfs T/newroot/var/cache",
            "mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs T/newroot/tmp",
        ]
    );

    let s = setup(META, Some("garbage\n"));
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    mount(&env, &params(None), &found()).unwrap();
    assert_eq!(mounts(&k, &s).len(), 5);
}

#[test]
fn no_versions_and_bad_records_are_fatal_with_the_path() {
    let s = setup(r#"{"format":1}"#, None);
    let k = Fake::default();
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let err = mount(&env, &params(None), &found()).unwrap_err();
    assert!(err.to_string().contains("no version is installed"), "{err}");

    let s = setup("{", None);
    let env = Env::new(s.paths.clone(), &k, Instant::now());
    let err = mount(&env, &params(None), &found()).unwrap_err();
    assert!(err.to_string().contains("ov/metadata.db"), "{err}");
}

#[test]
fn overlay_options_refuse_what_overlayfs_cannot_parse() {
    let part = Partition::new("/p");
    let mut rec: VersionRecord =
        serde_json::from_str(r#"{"lowers": ["l1", "l2"], "upper": "u", "work": "w"}"#).unwrap();
    assert_eq!(
        overlay_options(&part, &rec).unwrap(),
        "lowerdir=/p/l1:/p/l2,upperdir=/p/u,workdir=/p/w"
    );
    rec.lowers = vec!["a:b".into()];
    assert!(matches!(
        overlay_options(&part, &rec),
        Err(VersionError::BadChar(_))
    ));
    rec.lowers = vec!["x".repeat(200); 30];
    assert!(matches!(
        overlay_options(&part, &rec),
        Err(VersionError::TooLong(_))
    ));
}
