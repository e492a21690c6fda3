//! Crash safety: `kill -9` during download, during unpack and right before
//! the record; the earlier version is intact and the same command finishes.

use std::fs;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{noise, Layer, Layout, Tar};

/// A layer big enough to be caught mid-download (incompressible) with
/// enough entries to be caught mid-unpack.
fn big_layer(seed: u8) -> Layer {
    let mut t = Tar::new();
    t.dir("data", 0o755);
    let noise = noise(512 << 10, 0x9e37_79b9 ^ seed as u64);
    t.file("data/noise", &noise, 0o644);
    for i in 0..200 {
        t.file(
            &format!("data/f{i}"),
            format!("{seed}-{i}").as_bytes(),
            0o644,
        );
    }
    Layer::gzip(t.finish())
}

/// Runs terra-crash with TERRA_CRASH_AT=point, waits for it to get there,
/// kill -9.
fn kill_at(point: &str, args: &[&str]) {
    terra_tests::install_support::kill_at(&terra_crash_bin(), point, args);
}

#[test]
fn killed_at_each_point_the_old_version_stays_and_a_rerun_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_intact(&mut layout, "v1", &[base_layer(), top_layer("v1")]);
    let mut t = Tar::new();
    t.dir("etc", 0o755).file("etc/hostname", b"v2\n", 0o644);
    add_intact(
        &mut layout,
        "v2",
        &[
            base_layer(),
            big_layer(1),
            big_layer(2),
            Layer::gzip(t.finish()),
        ],
    );
    let reg = terra_tests::registry::Registry::start().unwrap();
    let v2 = reg.push(&layout.dir, "v2", "terra/os").unwrap();

    let part = empty_partition(tmp.path());
    let r = part.to_str().unwrap();
    ok(&["--root", r, "install", &layout.reference("v1")]);
    let before = fs::read(part.join("ov/metadata.db")).unwrap();
    let check_intact = || {
        assert_eq!(
            fs::read(part.join("ov/metadata.db")).unwrap(),
            before,
            "the record is untouched"
        );
        let m = meta(&part);
        for l in &m.versions["v1"].lowers {
            assert!(part.join(l).is_dir(), "{l}");
        }
        assert!(fs::read_to_string(part.join("boot/grub/grub.cfg"))
            .unwrap()
            .contains("v1"));
    };

    // During the download: a partial blob stays in content/ingest.
    kill_at("download", &["--root", r, "install", &v2, "-j", "1"]);
    check_intact();
    assert!(
        !names(&part.join("content/ingest")).is_empty(),
        "a partial download is kept"
    );
    // During the unpack: a temp dir stays in tmp/, no snapshot of it.
    kill_at("unpack", &["--root", r, "install", &v2, "-j", "1"]);
    check_intact();
    // After the sync, before the blobs and snapshots get their names.
    kill_at("publish", &["--root", r, "install", &v2]);
    check_intact();
    // Right before the record: everything is there but the record.
    kill_at("record", &["--root", r, "install", &v2]);
    check_intact();

    // The same command finishes, resuming what it can.
    let out = ok(&["--root", r, "-v", "install", &v2]);
    assert!(out.contains("installed version v2"), "{out}");
    let m = meta(&part);
    assert!(m.versions.contains_key("v1") && m.versions.contains_key("v2"));
    assert_eq!(top_layer_text(&part, &m, "v2", "etc/hostname"), "v2\n");
    assert!(names(&part.join("content/ingest")).is_empty());
    let leftovers = unpack_leftovers(&part);
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_intact(&mut layout, "v1", &[big_layer(3)]);
    let reg = terra_tests::registry::Registry::start().unwrap();
    let v1 = reg.push(&layout.dir, "v1", "terra/os").unwrap();
    let part = empty_partition(tmp.path());
    let r = part.to_str().unwrap();
    kill_at("download", &["--root", r, "install", &v1]);
    let partial: u64 = fs::read_dir(part.join("content/ingest"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(partial >= 64 << 10, "{partial}");
    let out = ok(&["--root", r, "-v", "install", &v1]);
    assert!(out.contains("resuming"), "{out}");
    assert!(meta(&part).versions.contains_key("v1"));
}

#[test]
fn the_release_terra_ignores_terra_crash_at() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    // Big enough to pass every point (64 KiB downloaded, 50 entries).
    add_intact(&mut layout, "v1", &[big_layer(4)]);
    for point in ["download", "unpack", "publish", "record"] {
        // A fresh partition each time: the install goes through every point.
        let dir = tmp.path().join(point);
        fs::create_dir(&dir).unwrap();
        let part = empty_partition(&dir);
        let r = part.to_str().unwrap();
        let mut child = std::process::Command::new(terra_bin())
            .args(["--root", r, "install", &layout.reference("v1")])
            .env("TERRA_CRASH_AT", point)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A terra that stopped at the point would wait forever: give it a
        // minute (the install takes well under a second).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("terra stopped at {point}: it must ignore TERRA_CRASH_AT");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{point}: {err}");
        assert!(!err.contains("crash point"), "{point}: {err}");
        assert!(meta(&part).versions.contains_key("v1"), "{point}");
    }
}
