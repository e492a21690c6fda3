//! Hostile and broken images: each refused with a clear error, nothing
//! written outside the snapshot, nothing recorded, earlier versions intact.

use std::fs;
use std::path::Path;
use std::process::Command;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Breakage, Layer, Layout, Tar};

/// A partition with v1 installed, and a scratch dir outside it.
struct Setup {
    tmp: tempfile::TempDir,
    layout: Layout,
    before: Vec<u8>,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
        add_intact(&mut layout, "v1", &[base_layer(), top_layer("v1")]);
        empty_partition(tmp.path());
        fs::create_dir(tmp.path().join("outside")).unwrap();
        let s = Self {
            tmp,
            layout,
            before: Vec::new(),
        };
        ok(&["--root", s.root(), "install", &s.layout.reference("v1")]);
        let before = fs::read(s.part().join("ov/metadata.db")).unwrap();
        Self { before, ..s }
    }
    fn part(&self) -> std::path::PathBuf {
        self.tmp.path().join("part")
    }
    fn root(&self) -> &str {
        // Leaked once per test: fine for a test process.
        Box::leak(self.part().to_str().unwrap().to_string().into_boxed_str())
    }
    fn outside(&self) -> std::path::PathBuf {
        self.tmp.path().join("outside")
    }

    /// Installs `layers` as "bad"; asserts the refusal mentions `want` and
    /// that nothing changed.
    fn refuse(&mut self, layers: &[Layer], br: &Breakage, want: &str) {
        let made = self.layout.add_image(Some("bad"), layers, br).unwrap();
        let snaps_before = names(&self.part().join("ov/snapshots"));
        let err = fails(&install_args(
            self.root(),
            &self.layout.reference("bad"),
            &[],
        ));
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
        assert_eq!(
            fs::read(self.part().join("ov/metadata.db")).unwrap(),
            self.before,
            "nothing recorded"
        );
        assert_eq!(
            names(&self.part().join("ov/snapshots")),
            snaps_before,
            "no new snapshot"
        );
        let leftovers = unpack_leftovers(&self.part());
        assert!(leftovers.is_empty(), "no unpack leftovers: {leftovers:?}");
        assert!(names(&self.outside()).is_empty(), "nothing written outside");
        for p in [
            "escaped",
            "part/escaped",
            "part/ov/escaped",
            "part/tmp/escaped",
            "img/escaped",
        ] {
            assert!(!self.tmp.path().join(p).exists(), "{p} must not exist");
        }
        assert!(!Path::new("/escaped-abs").exists());
        // v1 still intact.
        let m = meta(&self.part());
        for l in &m.versions["v1"].lowers {
            assert!(self.part().join(l).is_dir());
        }
        let _ = made;
    }
}

fn bad_layer(f: impl FnOnce(&mut Tar)) -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755).file("etc/fine", b"fine", 0o644);
    f(&mut t);
    Layer::gzip(t.finish())
}

#[test]
fn path_traversal_is_refused() {
    let mut s = Setup::new();
    s.refuse(
        &[
            base_layer(),
            bad_layer(|t| {
                t.raw(
                    "../../../escaped",
                    tar::EntryType::Regular,
                    0o644,
                    b"x",
                    None,
                );
            }),
        ],
        &Breakage::default(),
        "climbs out with `..`",
    );
    s.refuse(
        &[bad_layer(|t| {
            t.raw(
                "etc/../../escaped",
                tar::EntryType::Regular,
                0o644,
                b"x",
                None,
            );
        })],
        &Breakage::default(),
        "`..`",
    );
}

#[test]
fn whiteouts_naming_dot_or_dot_dot_are_refused() {
    let mut s = Setup::new();
    let tmp_before = names(&s.part().join("tmp"));
    for name in [".wh...", "etc/.wh...", ".wh.."] {
        s.refuse(
            &[bad_layer(|t| {
                t.file(name, b"", 0o644);
            })],
            &Breakage::default(),
            "refused: the whiteout",
        );
        assert_eq!(
            names(&s.part().join("tmp")),
            tmp_before,
            "{name}: tmp/ intact"
        );
    }
    // And in a flat unpack, where whiteouts delete.
    let mut layout = Layout::create(&s.tmp.path().join("img3")).unwrap();
    add_intact(
        &mut layout,
        "x",
        &[bad_layer(|t| {
            t.file("etc/.wh...", b"", 0o644);
        })],
    );
    let dir = s.tmp.path().join("flat");
    let err = fails(&["unpack", &layout.reference("x"), dir.to_str().unwrap()]);
    assert!(err.contains("refused: the whiteout"), "{err}");
    assert!(s.tmp.path().join("img").is_dir(), "siblings intact");
}

#[test]
fn a_long_name_bomb_is_refused_without_filling_memory() {
    let mut s = Setup::new();
    // 64 MiB of "name" that gzip squeezes to a few hundred KiB; the tar
    // crate alone would read all of it into memory.
    let name = vec![b'a'; 64 << 20];
    s.refuse(
        &[bad_layer(|t| {
            t.raw(
                "././@LongLink",
                tar::EntryType::GNULongName,
                0o644,
                &name,
                None,
            );
        })],
        &Breakage::default(),
        "memory bomb",
    );
}

#[test]
fn absolute_paths_are_refused() {
    let mut s = Setup::new();
    s.refuse(
        &[bad_layer(|t| {
            t.raw("/escaped-abs", tar::EntryType::Regular, 0o644, b"x", None);
        })],
        &Breakage::default(),
        "absolute path",
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let mut s = Setup::new();
    let outside = s.outside().to_str().unwrap().to_string();
    s.refuse(
        &[bad_layer(|t| {
            t.symlink("out", &outside).file("out/escaped", b"x", 0o644);
        })],
        &Breakage::default(),
        "goes through the symlink out",
    );
    s.refuse(
        &[bad_layer(|t| {
            t.symlink("up", "../../../..")
                .file("up/escaped", b"x", 0o644);
        })],
        &Breakage::default(),
        "symlink",
    );
    s.refuse(
        &[bad_layer(|t| {
            t.symlink("d", &outside).dir("d/sub", 0o755);
        })],
        &Breakage::default(),
        "symlink",
    );
}

/// A later layer writing through a symlink of a lower layer: followed within
/// the image's root (an absolute target is the image's root), refused when
/// it climbs above it; nothing is written outside the snapshot either way.
#[test]
fn lower_symlinks_are_followed_only_within_the_root() {
    let mut s = Setup::new();
    let through = |path: &str| {
        let mut t = Tar::new();
        t.file(path, b"x", 0o644);
        Layer::gzip(t.finish())
    };
    s.refuse(
        &[
            bad_layer(|t| {
                t.symlink("up", "../../../..");
            }),
            through("up/escaped"),
        ],
        &Breakage::default(),
        "leads outside the root",
    );
    s.refuse(
        &[
            bad_layer(|t| {
                t.symlink("a", "b").symlink("b", "a");
            }),
            through("a/escaped"),
        ],
        &Breakage::default(),
        "more than 40 symlinks",
    );
    // An absolute target names a path inside the image, not on the host.
    let outside = s.outside().to_str().unwrap().to_string();
    let made = add_intact(
        &mut s.layout,
        "abs",
        &[
            bad_layer(|t| {
                t.symlink("out", &outside);
            }),
            through("out/escaped"),
        ],
    );
    let _ = made;
    ok(&install_args(s.root(), &s.layout.reference("abs"), &[]));
    assert!(names(&s.outside()).is_empty(), "nothing written outside");
    let m = meta(&s.part());
    let top = s.part().join(&m.versions["abs"].lowers[0]);
    let inside = top.join(outside.trim_start_matches('/')).join("escaped");
    assert_eq!(fs::read(&inside).unwrap(), b"x", "{}", inside.display());
    assert!(!top.join("out").exists(), "no directory hides the symlink");
    // A flat unpack follows the same rule.
    add_intact(
        &mut s.layout,
        "flat-up",
        &[
            bad_layer(|t| {
                t.symlink("up", "../../../..");
            }),
            through("up/escaped"),
        ],
    );
    let dir = s.tmp.path().join("flat");
    let err = fails(&[
        "unpack",
        &s.layout.reference("flat-up"),
        dir.to_str().unwrap(),
    ]);
    assert!(err.contains("leads outside the root"), "{err}");
    assert!(!dir.exists(), "DIR is not created on refusal");
}

#[test]
fn hard_links_out_are_refused() {
    let mut s = Setup::new();
    s.refuse(
        &[bad_layer(|t| {
            t.hardlink("etc/passwd", "../../../../etc/passwd");
        })],
        &Breakage::default(),
        "`..`",
    );
    s.refuse(
        &[bad_layer(|t| {
            t.hardlink("etc/passwd", "/etc/passwd");
        })],
        &Breakage::default(),
        "absolute path",
    );
    s.refuse(
        &[bad_layer(|t| {
            t.hardlink("etc/shadow", "etc/not-in-this-layer");
        })],
        &Breakage::default(),
        "not in this layer",
    );
    let outside = s.outside().to_str().unwrap().to_string();
    s.refuse(
        &[bad_layer(|t| {
            t.symlink("l", &outside).hardlink("etc/x", "l/target");
        })],
        &Breakage::default(),
        "symlink",
    );
}

#[test]
fn broken_blobs_are_caught_before_use() {
    let mut s = Setup::new();
    let good = || vec![base_layer(), top_layer("bad")];
    s.refuse(
        &good(),
        &Breakage {
            wrong_layer_digest: Some(1),
            ..Default::default()
        },
        "sha256 is sha256:",
    );
    s.refuse(
        &good(),
        &Breakage {
            missing_layer: Some(1),
            ..Default::default()
        },
        "missing from the layout",
    );
    s.refuse(
        &good(),
        &Breakage {
            truncated_layer: Some(1),
            ..Default::default()
        },
        "truncated",
    );
    s.refuse(
        &good(),
        &Breakage {
            wrong_diff_id: Some(1),
            ..Default::default()
        },
        "diff_id",
    );
    s.refuse(
        &good(),
        &Breakage {
            media_type: Some((1, "application/vnd.example.layer+rar".into())),
            ..Default::default()
        },
        "unknown layer media type",
    );
    // A truncated or wrong blob leaves nothing in the store.
    assert!(names(&s.part().join("content/ingest")).len() <= 1);
}

#[test]
fn hostile_layers_cannot_escape_a_flat_unpack_either() {
    let s = Setup::new();
    let mut layout = Layout::create(&s.tmp.path().join("img2")).unwrap();
    let outside = s.outside().to_str().unwrap().to_string();
    add_intact(
        &mut layout,
        "x",
        &[bad_layer(|t| {
            t.symlink("out", &outside).file("out/escaped", b"x", 0o644);
        })],
    );
    let dir = s.tmp.path().join("flat");
    let err = fails(&["unpack", &layout.reference("x"), dir.to_str().unwrap()]);
    assert!(err.contains("symlink"), "{err}");
    assert!(!dir.exists(), "DIR is not created on refusal");
    assert!(names(&s.outside()).is_empty());
    assert!(!names(s.tmp.path())
        .iter()
        .any(|n| n.starts_with(".terra-unpack")));
}

fn mkfs(image: &Path, label: &str) {
    fs::File::create(image).unwrap().set_len(64 << 20).unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(image)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn device_must_carry_the_terra_label_and_is_unmounted_after() {
    let s = Setup::new();
    let other = s.tmp.path().join("other.img");
    mkfs(&other, "data");
    let before = fs::read(&other).unwrap();
    let err = fails(&[
        "--device",
        other.to_str().unwrap(),
        "install",
        &s.layout.reference("v1"),
    ]);
    assert!(
        err.contains("labelled \"data\"") && err.contains("refusing"),
        "{err}"
    );
    assert!(fs::read(&other).unwrap() == before, "nothing written to it");

    let good = s.tmp.path().join("terra.img");
    mkfs(&good, "terra");
    let dev = good.to_str().unwrap();
    ok(&["--device", dev, "install", &s.layout.reference("v1")]);
    let list = ok(&["--device", dev, "list", "--json"]);
    assert!(list.contains("\"default\": \"v1\""), "{list}");
    // A failing install unmounts too.
    fails(&[
        "--device",
        dev,
        "install",
        &format!("oci:{}:nope", s.layout.dir.display()),
    ]);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains("terra-mnt-"), "left mounted:\n{mounts}");
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_is_recorded() {
    let s = Setup::new();
    let img = s.tmp.path().join("small.img");
    mkfs(&img, "terra");
    let dev = img.to_str().unwrap();
    ok(&["--device", dev, "install", &s.layout.reference("v1")]);
    // 80 MB that do not compress: more than the 64 MB filesystem holds.
    let mut layout = Layout::create(&s.tmp.path().join("big")).unwrap();
    let mut noise = vec![0u8; 80 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut t = Tar::new();
    t.file("big", &noise, 0o644);
    add_intact(&mut layout, "big", &[Layer::plain(t.finish())]);
    let err = fails(&["--device", dev, "install", &layout.reference("big")]);
    assert!(err.contains("No space left on device"), "{err}");
    let list = ok(&["--device", dev, "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(v["default"], "v1");
    // gc frees what the failed install left.
    ok(&["--device", dev, "gc"]);
}
