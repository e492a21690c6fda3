//! `terra install` from OCI layouts into a partition directory (`--root`):
//! the layout of the partition, the records, sharing, whiteouts, metadata,
//! the boot menu and the other verbs. Runs as root (mknod, xattrs).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Tar};

fn snapshot(root: &std::path::Path, rel: &str) -> std::path::PathBuf {
    root.join(rel)
}

#[test]
fn installs_a_multi_layer_image_exactly_per_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let made = add_v1(&mut layout);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&install_args(
        r,
        &layout.reference("v1"),
        &["--init", "/sbin/init"],
    ));

    let m = meta(&root);
    assert_eq!(
        m.default.as_deref(),
        Some("v1"),
        "the first version is the default"
    );
    let rec = &m.versions["v1"];
    assert_eq!(rec.lowers.len(), 3);
    // Top-most first: the last layer of the manifest first.
    let chain = chain_ids(&made.diff_ids);
    let want: Vec<String> = chain
        .iter()
        .rev()
        .map(|c| terra_layout::partition::layer_snapshot(c))
        .collect();
    assert_eq!(rec.lowers, want);
    assert_eq!(rec.upper, "ov/snapshots/rw-v1/upper");
    assert!(root.join(&rec.upper).is_dir() && root.join(&rec.work).is_dir());
    assert_eq!(image_digest(&m, "v1"), made.manifest_digest);
    assert!(
        matches!(&rec.handoff, terra_layout::Handoff::Exec { path, .. } if path == "/sbin/init")
    );
    assert!(rec.installed_at > 0 && rec.size > 0);

    // Blobs are in the store, ingest is empty, tmp has no leftovers.
    for d in &made.layer_digests {
        assert!(blob_path(&root, d).is_file());
    }
    assert!(blob_path(&root, &made.manifest_digest).is_file());
    assert_eq!(
        fs::read_dir(root.join("content/ingest")).unwrap().count(),
        0
    );
    let leftovers = unpack_leftovers(&root);
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Each layer in its own snapshot.
    let base = snapshot(&root, &rec.lowers[2]);
    let top = snapshot(&root, &rec.lowers[0]);
    assert_eq!(
        fs::read_to_string(base.join("etc/hostname")).unwrap(),
        "base\n"
    );
    assert_eq!(
        fs::read_to_string(top.join("etc/hostname")).unwrap(),
        "v1\n"
    );
    assert!(!top.join("etc/os-release").exists());

    // Metadata kept: setuid, owners, hard links, symlinks, devices, xattrs, mtimes.
    let tool = fs::metadata(base.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(tool.mtime(), 1_700_000_000);
    let link = fs::metadata(base.join("usr/bin/tool-link")).unwrap();
    assert_eq!(link.ino(), tool.ino(), "hard link kept");
    assert_eq!(
        fs::read_link(base.join("bin")).unwrap().to_str(),
        Some("usr/bin")
    );
    let owned = fs::metadata(base.join("etc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1000, 1001, 0o640)
    );
    let null = fs::metadata(base.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    let cap = xattr(&base.join("usr/bin/ping"), "security.capability");
    assert_eq!(cap.map(|c| c.len()), Some(20), "security.capability kept");
    assert_eq!(
        fs::metadata(base.join("etc")).unwrap().mtime(),
        1_700_000_000,
        "dir mtimes kept"
    );

    // Installing the same image again is a no-op.
    let before = fs::read(root.join("ov/metadata.db")).unwrap();
    let out = ok(&["--root", r, "install", &layout.reference("v1")]);
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(fs::read(root.join("ov/metadata.db")).unwrap(), before);
}

fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(p) => format!(
                "sha256:{}",
                terra_tests::ocilayout::sha256_hex(format!("{p} {d}").as_bytes())
            ),
        };
        out.push(next);
    }
    out
}

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn a_second_version_shares_lower_layers_and_whiteouts_become_overlayfs_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let v1 = add_v1(&mut layout);
    let mut wh = Tar::new();
    wh.dir("etc", 0o755)
        .whiteout("etc", "os-release")
        .dir("var/cache", 0o755)
        .opaque("var/cache")
        .file("var/cache/new", b"new", 0o644)
        .file("etc/hostname", b"v2\n", 0o644);
    let v2 = add_v2(&mut layout, Layer::zstd(wh.finish()));
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&["--root", r, "install", &layout.reference("v1")]);
    let out = ok(&["--root", r, "install", &layout.reference("v2")]);
    assert!(
        out.contains("1 new of 3 layers"),
        "only the new layer is unpacked: {out}"
    );
    let m = meta(&root);
    assert_eq!(m.default.as_deref(), Some("v1"), "the default stays");
    let (a, b) = (&m.versions["v1"], &m.versions["v2"]);
    assert_eq!(a.lowers[1..], b.lowers[1..], "lower layers are shared");
    assert_ne!(a.lowers[0], b.lowers[0]);
    assert_eq!(v1.layer_digests[..2], v2.layer_digests[..2]);
    let top = root.join(&b.lowers[0]);
    let wo = fs::symlink_metadata(top.join("etc/os-release")).unwrap();
    assert!(
        wo.file_type().is_char_device() && wo.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert!(!top.join("etc/.wh.os-release").exists());
    assert_eq!(
        xattr(&top.join("var/cache"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(top.join("var/cache/new").is_file());
    assert!(!top.join("var/cache/.wh..wh..opq").exists());

    // The boot menu lists both, the default first.
    let cfg = fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
    assert!(
        cfg.contains("# Terra v1 (default): no kernel") || cfg.contains("Terra v1 (default)"),
        "{cfg}"
    );

    // list, default, remove, gc.
    let json = ok(&["--root", r, "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["default"], "v1");
    assert_eq!(v["versions"][0]["name"], "v1");
    assert_eq!(v["versions"][1]["shared_layers"], 2);
    let err = fails(&["--root", r, "remove", "v1"]);
    assert!(err.contains("default"), "{err}");
    ok(&["--root", r, "default", "v2"]);
    assert_eq!(meta(&root).default.as_deref(), Some("v2"));
    ok(&["--root", r, "remove", "v1"]);
    assert!(!root.join("ov/snapshots/rw-v1").exists());
    assert!(root.join(&a.lowers[0]).exists(), "snapshots stay until gc");
    ok(&["--root", r, "gc"]);
    assert!(!root.join(&a.lowers[0]).exists(), "gc drops v1's own layer");
    assert!(!blob_path(&root, &v1.layer_digests[2]).exists());
    for l in &b.lowers {
        assert!(root.join(l).is_dir(), "gc keeps {l}");
    }
    assert!(blob_path(&root, &v2.layer_digests[0]).exists());
}

#[test]
fn kernel_and_initrd_are_copied_and_the_menu_boots_each_version() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let mut k = Tar::new();
    k.dir("boot", 0o755)
        .file("boot/vmlinuz-6.1.0-9-cloud-amd64", b"old kernel", 0o644)
        .file("boot/vmlinuz-6.1.0-10-cloud-amd64", b"kernel", 0o644)
        .file("boot/initrd.img-6.1.0-10-cloud-amd64", b"initrd", 0o644);
    add_intact(&mut layout, "v1", &[base_layer(), Layer::plain(k.finish())]);
    add_intact(&mut layout, "v2", &[base_layer(), top_layer("v2")]);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&["--root", r, "install", &layout.reference("v1")]);
    ok(&install_args(
        r,
        &layout.reference("v2"),
        &["--name", "second"],
    ));
    let m = meta(&root);
    let rec = &m.versions["v1"];
    assert_eq!(
        rec.kernel.as_deref(),
        Some("boot/v1/vmlinuz-6.1.0-10-cloud-amd64")
    );
    assert_eq!(
        rec.initrd.as_deref(),
        Some("boot/v1/initrd.img-6.1.0-10-cloud-amd64")
    );
    assert_eq!(
        fs::read(root.join(rec.kernel.as_ref().unwrap())).unwrap(),
        b"kernel"
    );
    let cfg = fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
    let entries: Vec<&str> = cfg.lines().filter(|l| l.starts_with("menuentry")).collect();
    assert_eq!(entries.len(), 2, "{cfg}");
    assert!(entries[0].contains("Terra v1 (default)"));
    assert!(cfg.contains("linux /boot/v1/vmlinuz-6.1.0-10-cloud-amd64 terra.version=v1"));
    assert!(cfg.contains("linux /boot/v1/vmlinuz-6.1.0-10-cloud-amd64 terra.version=second"));
    assert!(cfg.contains("initrd /boot/v1/initrd.img-6.1.0-10-cloud-amd64"));
    ok(&["--root", r, "default", "second"]);
    let cfg = fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
    let first = cfg.lines().find(|l| l.starts_with("menuentry")).unwrap();
    assert!(
        first.contains("Terra second (default)"),
        "regenerated: {cfg}"
    );
}

#[test]
fn a_two_platform_index_picks_linux_amd64_or_the_asked_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let (amd, arm) = add_two_platform_index(&mut layout);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&["--root", r, "install", &layout.reference("multi")]);
    ok(&install_args(
        r,
        &layout.reference("multi"),
        &["--platform", "linux/arm64", "--name", "arm"],
    ));
    let m = meta(&root);
    assert_platforms_picked(&m, &amd, &arm);
    assert_eq!(top_layer_text(&root, &m, "arm", "etc/hostname"), "arm64\n");
    let err = fails(&install_args(
        r,
        &layout.reference("multi"),
        &["--platform", "linux/s390x", "--name", "x"],
    ));
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn unpack_makes_a_flat_tree_with_whiteouts_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let mut wh = Tar::new();
    wh.dir("etc", 0o755)
        .whiteout("etc", "os-release")
        .dir("var/cache", 0o755)
        .opaque("var/cache")
        .file("var/cache/new", b"new", 0o644);
    add_v2(&mut layout, Layer::zstd(wh.finish()));
    let dir = tmp.path().join("rootfs");
    ok(&["unpack", &layout.reference("v2"), dir.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(dir.join("etc/hostname")).unwrap(),
        "mid\n"
    );
    assert!(!dir.join("etc/os-release").exists(), "whiteout applied");
    assert!(!dir.join("var/cache/old").exists(), "opaque dir applied");
    assert!(dir.join("var/cache/new").is_file());
    assert!(dir.join("etc/mid").is_file());
    assert_eq!(
        fs::metadata(dir.join("usr/bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    let names: Vec<String> = tree(&dir)
        .into_iter()
        .filter(|l| l.contains(".wh."))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    let err = fails(&["unpack", &layout.reference("v2"), dir.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn a_layer_without_end_blocks_installs_as_go_writers_make_them() {
    // umoci 0.4 ends a layer right after the last file's data.
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let mut t = Tar::new();
    t.file("etc/short", b"abc", 0o644);
    let mut tar = t.finish();
    tar.truncate(512 + 3);
    add_intact(&mut layout, "v1", &[base_layer(), Layer::gzip(tar)]);
    let root = empty_partition(tmp.path());
    ok(&install_args(
        root.to_str().unwrap(),
        &layout.reference("v1"),
        &[],
    ));
    let m = meta(&root);
    assert_eq!(top_layer_text(&root, &m, "v1", "etc/short"), "abc");
}

#[test]
fn the_same_blob_twice_in_one_image_is_fetched_once_and_unpacked_per_position() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let empty = || Layer::gzip(Tar::new().finish());
    let made = add_intact(
        &mut layout,
        "v1",
        &[base_layer(), empty(), mid_layer(), empty()],
    );
    assert_eq!(made.layer_digests[1], made.layer_digests[3]);
    let root = empty_partition(tmp.path());
    ok(&install_args(
        root.to_str().unwrap(),
        &layout.reference("v1"),
        &["-j", "4"],
    ));
    let m = meta(&root);
    assert_eq!(m.versions["v1"].lowers.len(), 4);
    for l in &m.versions["v1"].lowers {
        assert!(root.join(l).is_dir(), "{l}");
    }
}

#[test]
fn another_image_under_a_taken_name_needs_force_and_remove_force_moves_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_intact(&mut layout, "a", &[base_layer(), top_layer("a")]);
    let b = add_intact(&mut layout, "b", &[base_layer(), top_layer("b")]);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&install_args(r, &layout.reference("a"), &["--name", "os"]));
    let upper = root.join("ov/snapshots/rw-os/upper");
    fs::write(upper.join("changed-by-the-running-system"), "x").unwrap();
    let err = fails(&install_args(r, &layout.reference("b"), &["--name", "os"]));
    assert!(err.contains("--force"), "{err}");
    assert!(upper.join("changed-by-the-running-system").exists());
    ok(&install_args(
        r,
        &layout.reference("b"),
        &["--name", "os", "--force"],
    ));
    let m = meta(&root);
    assert_eq!(image_digest(&m, "os"), b.manifest_digest);
    assert!(
        !upper.join("changed-by-the-running-system").exists(),
        "--force resets the writable layer"
    );
    ok(&["--root", r, "install", &layout.reference("a")]);
    ok(&["--root", r, "remove", "os", "--force"]);
    let m = meta(&root);
    assert_eq!(
        m.default.as_deref(),
        Some("a"),
        "the newest other version becomes the default"
    );
    let dry = ok(&["--root", r, "gc", "--dry-run"]);
    assert!(dry.contains("would remove"), "{dry}");
    assert!(root
        .join(terra_layout::partition::layer_snapshot(
            &chain_ids(&b.diff_ids)[1]
        ))
        .is_dir());
    ok(&["--root", r, "gc"]);
    assert!(!root
        .join(terra_layout::partition::layer_snapshot(
            &chain_ids(&b.diff_ids)[1]
        ))
        .exists());
    let list = ok(&["--root", r, "list"]);
    assert!(list.contains("* a "), "{list}");
}
