//! Errors that must say more, and say it before the work (issue 16, items 9
//! and 12): a kernel and an initramfs of different versions, a manifest over
//! the size limit, a bad port, `unpack` into what cannot take the result,
//! `unpack` with partition options, and which version became the default.
//! Runs as root (a tmpfs mount point).

use std::fs;
use std::path::Path;
use std::process::Command;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Tar};

#[test]
fn a_kernel_is_never_paired_with_the_initramfs_of_another_version() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let mut t = Tar::new();
    t.dir("boot", 0o755)
        .file("boot/vmlinuz-6.1.0-test2", b"kernel", 0o644)
        .file("boot/initrd.img-6.1.0-test", b"initrd", 0o644);
    add_intact(&mut layout, "v1", &[base_layer(), Layer::gzip(t.finish())]);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let err = fails(&install_args(r, &layout.reference("v1"), &[]));
    assert!(
        err.contains("vmlinuz-6.1.0-test2 but not initrd.img-6.1.0-test2")
            && err.contains("it has initrd.img-6.1.0-test"),
        "{err}"
    );
    assert!(meta(&root).versions.is_empty());
    assert!(!root.join("boot/v1").exists());
}

#[test]
fn a_manifest_over_the_limit_names_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(&tmp.path().join("img")).unwrap();
    let big = vec![b' '; (8 << 20) + 1];
    let digest = layout.add_blob(&big).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": big.len(),
            "annotations": {"org.opencontainers.image.ref.name": "big"}
        }]
    });
    fs::write(layout.dir.join("index.json"), index.to_string()).unwrap();
    let root = empty_partition(tmp.path());
    let err = fails(&install_args(
        root.to_str().unwrap(),
        &layout.reference("big"),
        &[],
    ));
    assert!(err.contains("over the 8388608 byte limit"), "{err}");
}

#[test]
fn a_bad_port_is_refused_before_anything_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    for reference in ["host:badport/x", "host:0/x:v1", "host:65536/x"] {
        let err = fails(&["--root", r, "install", reference]);
        assert!(err.contains("is not a number from 1 to 65535"), "{err}");
    }
    assert!(
        fs::read_dir(&root).unwrap().next().is_none(),
        "wrote to {r}"
    );
}

/// `SOURCE_DATE_EPOCH` (reproducible images) is the install time the record
/// keeps; a value that is not a number of seconds is refused before the
/// partition is touched.
#[test]
fn source_date_epoch_is_the_recorded_install_time_and_a_bad_one_is_refused_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = v1_and_empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let reference = layout.reference("v1");
    let install = |epoch: &str| {
        Command::new(terra_bin())
            .args(install_args(r, &reference, &[]))
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap()
    };
    let bad = install("yesterday");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{err}");
    assert!(
        err.contains("SOURCE_DATE_EPOCH=\"yesterday\" is not a number of seconds"),
        "{err}"
    );
    assert!(
        fs::read_dir(&root).unwrap().next().is_none(),
        "wrote to {r}"
    );
    let good = install("1700000000");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(meta(&root).versions["v1"].installed_at, 1_700_000_000);
}

/// The names beside `dir`'s parent's entries that an unpack's work left.
fn unpack_work(parent: &Path) -> Vec<String> {
    names(parent)
        .into_iter()
        .filter(|n| n.starts_with(".terra-unpack-"))
        .collect()
}

#[test]
fn unpack_checks_its_target_and_options_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_v1(&mut layout);
    let reference = layout.reference("v1");
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();

    let file = out.join("a-file");
    fs::write(&file, b"mine").unwrap();
    let err = fails(&["unpack", &reference, file.to_str().unwrap()]);
    assert!(err.contains("exists and is not a directory"), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"mine");

    let full = out.join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    let err = fails(&["unpack", &reference, full.to_str().unwrap()]);
    assert!(err.contains("exists and is not empty"), "{err}");

    let mnt = out.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let err = fails(&["unpack", &reference, mnt.to_str().unwrap()]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(err.contains("is a mount point"), "{err}");

    let fresh = out.join("fresh");
    let err = fails(&[
        "--root",
        tmp.path().to_str().unwrap(),
        "unpack",
        &reference,
        fresh.to_str().unwrap(),
    ]);
    assert!(err.contains("--root and --device do not apply"), "{err}");
    assert!(!fresh.exists());
    // Refused before any work: nothing fetched beside the target.
    assert!(unpack_work(&out).is_empty(), "{:?}", names(&out));
    ok(&["unpack", &reference, fresh.to_str().unwrap()]);
    assert!(fresh.join("etc/hostname").is_file());
}

#[test]
fn remove_force_of_the_default_says_which_version_is_the_default_now() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_v1(&mut layout);
    add_v2(&mut layout, top_layer("v2"));
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&install_args(r, &layout.reference("v1"), &[]));
    ok(&install_args(r, &layout.reference("v2"), &[]));
    let out = ok(&["--root", r, "remove", "v1", "--force"]);
    assert!(
        out.contains("v1 was the default; the default is now v2"),
        "{out}"
    );
    assert_eq!(meta(&root).default.as_deref(), Some("v2"));
}
