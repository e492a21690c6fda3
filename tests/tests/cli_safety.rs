//! The `terra` CLI as an adversary would use it (issue 16): version names
//! that collide with the partition's own, directories that are not Terra
//! partitions, foreign files under Terra's directories, `--force` over a
//! version someone wrote in, a menu left stale by a crash, and who may read
//! the partition. Runs as root, on partition directories (`--root`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Tar};

/// A partition with v1 installed from an OCI layout that also holds v2.
fn installed(tmp: &Path) -> (Layout, std::path::PathBuf) {
    let mut layout = Layout::create(&tmp.join("img")).unwrap();
    add_v1(&mut layout);
    add_v2(&mut layout, top_layer("v2"));
    let root = empty_partition(tmp);
    ok(&install_args(
        root.to_str().unwrap(),
        &layout.reference("v1"),
        &[],
    ));
    (layout, root)
}

/// A layer with `boot/vmlinuz-V` and `boot/initrd.img-V`.
fn kernel_layer(v: &str) -> Layer {
    let mut t = Tar::new();
    t.dir("boot", 0o755)
        .file(&format!("boot/vmlinuz-{v}"), b"kernel", 0o644)
        .file(&format!("boot/initrd.img-{v}"), b"initrd", 0o644);
    Layer::gzip(t.finish())
}

/// GRUB's files as `grub-install` leaves them.
fn plant_grub(root: &Path) {
    fs::create_dir_all(root.join("boot/grub/i386-pc")).unwrap();
    fs::write(root.join("boot/grub/i386-pc/normal.mod"), b"module").unwrap();
}

#[test]
fn a_version_cannot_take_a_name_the_partition_uses_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = installed(tmp.path());
    let r = root.to_str().unwrap();
    plant_grub(&root);
    let cfg = fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap();
    for name in ["grub", "efi", "GRUB", "EFI"] {
        let err = fails(&install_args(r, &layout.reference("v2"), &["--name", name]));
        assert!(
            err.contains(&format!("version name {name:?} is taken by the partition")),
            "{err}"
        );
        assert!(err.contains("--name"), "{err}");
    }
    assert!(!meta(&root).versions.contains_key("grub"));
    // Nothing named grub to remove, and GRUB's files stay whatever is asked.
    fails(&["--root", r, "remove", "grub", "--force"]);
    assert!(root.join("boot/grub/i386-pc/normal.mod").is_file());
    assert_eq!(
        fs::read_to_string(root.join("boot/grub/grub.cfg")).unwrap(),
        cfg
    );
}

#[test]
fn a_directory_that_is_not_a_terra_partition_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_v1(&mut layout);
    // What an EFI system partition and GRUB look like under boot/.
    let f = tmp.path().join("f");
    fs::create_dir_all(f.join("boot/efi/EFI/debian")).unwrap();
    fs::write(f.join("boot/efi/EFI/debian/grubx64.efi"), b"efi").unwrap();
    plant_grub(&f);
    let r = f.to_str().unwrap();
    let before = tree(&f);
    for args in [
        vec!["--root", r, "gc"],
        vec!["--root", r, "gc", "--dry-run"],
        vec!["--root", r, "remove", "v1", "--force"],
        vec!["--root", r, "default", "v1"],
        install_args(r, &layout.reference("v1"), &[]),
    ] {
        let err = fails(&args);
        assert!(
            err.contains("is not a Terra partition") && err.contains("refusing to write"),
            "{args:?}: {err}"
        );
        assert_eq!(tree(&f), before, "{args:?} wrote to {r}");
    }
    // An empty directory (or a fresh mkfs with lost+found) starts one, but
    // only for install.
    let e = tmp.path().join("e");
    fs::create_dir_all(e.join("lost+found")).unwrap();
    let e_str = e.to_str().unwrap();
    let err = fails(&["--root", e_str, "gc"]);
    assert!(err.contains("nothing is installed"), "{err}");
    assert_eq!(names(&e), ["lost+found"]);
    ok(&install_args(e_str, &layout.reference("v1"), &[]));
    assert!(meta(&e).versions.contains_key("v1"));
    ok(&["--root", e_str, "gc"]);
}

/// Files a person (or another tool) put under Terra's directories.
const FOREIGN: [&str; 12] = [
    "boot/notes.txt",
    "boot/efi/EFI/BOOT/BOOTX64.EFI",
    "boot/custom/bzImage",
    "boot/v1/README",
    "content/foreign",
    "content/blobs/sha256/README",
    "content/ingest/keep.me",
    "ov/foreign",
    "ov/snapshots/mine/file",
    "ov/snapshots/sha256-notahash/file",
    "tmp/keep",
    "tmp/unpacked-by-hand/file",
];

#[test]
fn gc_remove_and_force_leave_files_terra_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = installed(tmp.path());
    let r = root.to_str().unwrap();
    ok(&install_args(r, &layout.reference("v2"), &[]));
    plant_grub(&root);
    for rel in FOREIGN {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, rel.as_bytes()).unwrap();
    }
    ok(&install_args(
        r,
        &layout.reference("v2"),
        &["--name", "v1", "--force"],
    ));
    ok(&["--root", r, "remove", "v1", "--force"]);
    ok(&["--root", r, "gc"]);
    ok(&["--root", r, "remove", "v2", "--force"]);
    ok(&["--root", r, "gc"]);
    for rel in FOREIGN {
        assert_eq!(
            fs::read_to_string(root.join(rel)).ok().as_deref(),
            Some(rel),
            "{rel} was removed or rewritten"
        );
    }
    assert!(root.join("boot/grub/i386-pc/normal.mod").is_file());
    // What terra made is gone: no snapshot, blob or boot file of its own.
    assert!(meta(&root).versions.is_empty());
    // v1's writable layer, kept aside by the --force of another image.
    let left: Vec<String> = names(&root.join("ov/snapshots"))
        .into_iter()
        .filter(|n| !n.starts_with("kept-v1-"))
        .collect();
    assert_eq!(left, ["mine", "sha256-notahash"]);
    assert_eq!(names(&root.join("content/blobs/sha256")), ["README"]);
    assert_eq!(names(&root.join("boot/v1")), ["README"]);
    assert!(!root.join("boot/v2").exists());
}

#[test]
fn install_force_keeps_what_was_written_in_the_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = installed(tmp.path());
    let r = root.to_str().unwrap();
    let note = root.join("ov/snapshots/rw-v1/upper/root/note");
    fs::create_dir_all(note.parent().unwrap()).unwrap();
    fs::write(&note, b"mine").unwrap();
    // The same image again, then another image under the same name.
    ok(&install_args(r, &layout.reference("v1"), &["--force"]));
    assert_eq!(fs::read(&note).unwrap(), b"mine");
    let out = ok(&install_args(
        r,
        &layout.reference("v2"),
        &["--name", "v1", "--force"],
    ));
    assert_eq!(
        top_layer_text(&root, &meta(&root), "v1", "etc/hostname"),
        "v2\n"
    );
    // Another image starts afresh; what was written is kept aside, and
    // terra says where.
    assert!(!note.exists());
    let kept: Vec<String> = names(&root.join("ov/snapshots"))
        .into_iter()
        .filter(|n| n.starts_with("kept-v1-"))
        .collect();
    assert_eq!(kept.len(), 1, "{out}");
    assert!(out.contains(&kept[0]), "{out}");
    let moved = root
        .join("ov/snapshots")
        .join(&kept[0])
        .join("upper/root/note");
    assert_eq!(fs::read(moved).unwrap(), b"mine");
    // gc and remove leave it.
    ok(&["--root", r, "remove", "v1", "--force"]);
    ok(&["--root", r, "gc"]);
    assert!(root.join("ov/snapshots").join(&kept[0]).is_dir());
    // --help says what --force does with it.
    let help = ok(&["install", "--help"]);
    assert!(
        help.contains("writable layer") && help.contains("kept"),
        "{help}"
    );
}

#[test]
fn a_menu_left_stale_by_a_crash_is_repaired_by_the_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    // A kernel, so that the menu has an entry for v1.
    add_intact(&mut layout, "v1", &[base_layer(), kernel_layer("6.1.0-1")]);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let reference = layout.reference("v1");
    let args = install_args(r, &reference, &[]);
    // Killed after the record, before the menu.
    kill_at(&terra_crash_bin(), "menu", &args);
    assert!(meta(&root).versions.contains_key("v1"));
    let cfg = root.join("boot/grub/grub.cfg");
    assert!(!fs::read_to_string(&cfg).unwrap_or_default().contains("v1"));
    let out = ok(&args);
    assert!(out.contains("no change"), "{out}");
    assert!(fs::read_to_string(&cfg)
        .unwrap()
        .contains("terra.version=v1"));
    // A menu that does not match the records, however it got so, is too.
    fs::write(&cfg, "set timeout=5\n").unwrap();
    ok(&args);
    assert!(fs::read_to_string(&cfg)
        .unwrap()
        .contains("terra.version=v1"));
}

#[test]
fn only_root_reads_layers_boot_files_and_content() {
    let tmp = tempfile::tempdir().unwrap();
    let (_layout, root) = installed(tmp.path());
    for d in ["boot", "content", "ov", "tmp"] {
        let mode = fs::metadata(root.join(d)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{d} is {mode:o}");
    }
}
