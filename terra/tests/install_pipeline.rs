//! The install pipeline in-process, against an in-memory source: real
//! content and snapshot stores on a temp-dir partition, small real
//! tar+gzip layers. Runs in well under a second, without root.

mod support;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use terra::content::Store;
use terra::digest::Digest;
use terra::hooks::{CrashPoint, Hooks};
use terra::image::{resolve, Platform};
use terra::snapshot::Snapshots;

use support::{Image, Layer, MemSource, Part};

fn base() -> Layer {
    Layer::of(&[("etc/os-release", b"ID=terra\n"), ("bin/sh", b"#!sh\n")])
}

fn top(name: &str) -> Layer {
    Layer::of(&[("etc/hostname", format!("{name}\n").as_bytes())])
}

#[test]
fn installs_a_version_whose_record_names_its_unpacked_layers() {
    let p = Part::new();
    let img = Image::of(&[base(), top("v1")]);
    let manifest = img.digest();
    let src = MemSource::new(img);
    p.install(&src, "v1").unwrap();

    let meta = p.meta();
    let rec = &meta.versions["v1"];
    assert_eq!(meta.default.as_deref(), Some("v1"));
    assert_eq!(rec.image.as_ref().unwrap().digest, manifest.to_string());
    assert_eq!(rec.lowers.len(), 2);
    // Top-most first, as overlayfs wants them.
    let top_dir = p.path(&rec.lowers[0]);
    assert_eq!(fs::read(top_dir.join("etc/hostname")).unwrap(), b"v1\n");
    assert_eq!(
        fs::read(p.path(&rec.lowers[1]).join("etc/os-release")).unwrap(),
        b"ID=terra\n"
    );
    assert!(p.path(&rec.upper).is_dir() && p.path(&rec.work).is_dir());
    assert!(p.has_blob(&manifest));
    assert!(p.ingest().is_empty() && p.unpacking().is_empty());
}

#[test]
fn an_index_gives_the_image_for_the_platform_asked_for() {
    let img = Image::of(&[base()]);
    let want = img.digest();
    let index = img.index("linux/amd64", &["linux/arm64"]);
    let mut src = MemSource::new(img);
    src.index = Some(index);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();

    let got = resolve(&src, &store, &Platform::default()).unwrap();
    assert_eq!(got.manifest_digest, want);
    assert_eq!(got.layers.len(), 1);
    assert!(store.has(&want, store.read(&want).unwrap().len() as u64));

    let s390x = Platform::parse("linux/s390x").unwrap();
    let err = format!("{:#}", resolve(&src, &store, &s390x).unwrap_err());
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn a_second_version_shares_the_layers_it_has_in_common() {
    let p = Part::new();
    let shared = base();
    let v1 = MemSource::new(Image::of(&[shared.clone(), top("v1")]));
    let v2 = MemSource::new(Image::of(&[shared.clone(), top("v2")]));
    p.install(&v1, "v1").unwrap();
    p.install(&v2, "v2").unwrap();

    let meta = p.meta();
    let (a, b) = (&meta.versions["v1"], &meta.versions["v2"]);
    assert_eq!(a.lowers[1], b.lowers[1], "the base snapshot is shared");
    assert_ne!(a.lowers[0], b.lowers[0]);
    assert_eq!(p.snapshots().len(), 3);
    // v2 never asked for the base blob: it was in the store already.
    assert!(v2.asked(&shared.digest()).is_empty());
    assert_eq!(v2.asked(&top("v2").digest()), [0]);
    assert_eq!(meta.default.as_deref(), Some("v1"));
}

#[test]
fn the_same_image_again_changes_nothing() {
    let p = Part::new();
    let src = MemSource::new(Image::of(&[base(), top("v1")]));
    p.install(&src, "v1").unwrap();
    let before = p.meta_bytes();
    let asked = src.requests.lock().unwrap().len();
    p.install(&src, "v1").unwrap();
    assert_eq!(p.meta_bytes(), before);
    assert_eq!(src.requests.lock().unwrap().len(), asked, "nothing fetched");
}

#[test]
fn a_partial_blob_is_resumed_where_it_stopped() {
    let p = Part::new();
    let big = Layer::big(1);
    let src = MemSource::new(Image::of(std::slice::from_ref(&big)));
    let half = big.blob.len() / 2;
    fs::write(
        p.part.ingest_dir().join(big.digest().hex()),
        &big.blob[..half],
    )
    .unwrap();
    p.install(&src, "v1").unwrap();
    assert_eq!(src.asked(&big.digest()), [half as u64]);
    assert!(p.has_blob(&big.digest()) && p.ingest().is_empty());
}

#[test]
fn a_partial_blob_that_does_not_verify_is_fetched_again_from_zero() {
    let p = Part::new();
    let big = Layer::big(2);
    let src = MemSource::new(Image::of(std::slice::from_ref(&big)));
    let mut junk = big.blob[..1000].to_vec();
    junk[10] ^= 0xff; // what a crash before the data reached the disk leaves
    fs::write(p.part.ingest_dir().join(big.digest().hex()), &junk).unwrap();
    p.install(&src, "v1").unwrap();
    assert_eq!(src.asked(&big.digest()), [1000, 0]);
    assert!(p.meta().versions.contains_key("v1"));
}

/// What a refused install must leave: no record, no snapshot of `layer`,
/// no blob of it in the store, no unpack in progress.
fn nothing_recorded(p: &Part, layer: &Layer) {
    assert!(p.meta().versions.is_empty(), "no record");
    assert!(p.snapshots().is_empty(), "{:?}", p.snapshots());
    assert!(!p.has_blob(&layer.digest()));
    assert!(p.unpacking().is_empty(), "{:?}", p.unpacking());
}

#[test]
fn a_blob_that_does_not_match_its_digest_records_nothing() {
    let p = Part::new();
    let layer = top("v1");
    let mut src = MemSource::new(Image::of(&[base(), layer.clone()]));
    let mut wrong = layer.blob.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 1;
    src.tampered.insert(layer.digest(), wrong);
    let err = format!("{:#}", p.install(&src, "v1").unwrap_err());
    assert!(
        err.contains("sha256 is") && err.contains(&layer.digest().to_string()),
        "{err}"
    );
    nothing_recorded(&p, &layer);
    let hex = layer.digest().hex().to_string();
    assert!(!p.ingest().contains(&hex), "the wrong bytes are not kept");
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_records_nothing() {
    let p = Part::new();
    let layer = top("v1");
    let claimed = Digest::of(b"another tar");
    let src = MemSource::new(Image::with_diff_ids(
        std::slice::from_ref(&layer),
        std::slice::from_ref(&claimed),
    ));
    let err = format!("{:#}", p.install(&src, "v1").unwrap_err());
    assert!(
        err.contains("diff_id") && err.contains(&claimed.to_string()),
        "{err}"
    );
    nothing_recorded(&p, &layer);
}

/// Stops the install at one crash point the way `kill -9` would: a panic
/// that unwinds past every cleanup, leaving what is on disk.
struct CrashAt {
    point: CrashPoint,
    reached: AtomicBool,
}

impl Hooks for CrashAt {
    fn reached(&self, point: CrashPoint) {
        if point == self.point {
            self.reached.store(true, Ordering::SeqCst);
            std::panic::panic_any(format!("crash point {point}"));
        }
    }
}

#[test]
fn a_crash_at_each_point_leaves_the_old_version_and_a_rerun_finishes() {
    // The points before the record; `Menu` comes after it (its own test).
    for point in CrashPoint::ALL
        .into_iter()
        .filter(|p| *p != CrashPoint::Menu)
    {
        let p = Part::new();
        p.install(&MemSource::new(Image::of(&[base(), top("v1")])), "v1")
            .unwrap();
        let before = p.meta_bytes();
        let snapshots_before = p.snapshots();
        let big = Layer::big(7);
        let img = Image::of(&[base(), big.clone(), top("v2")]);
        let src = MemSource::new(img);

        let hooks = Arc::new(CrashAt {
            point,
            reached: AtomicBool::new(false),
        });
        let crashed = catch_unwind(AssertUnwindSafe(|| {
            p.install_with(&src, "v2", hooks.clone())
        }));
        assert!(crashed.is_err(), "{point}: the install went on");
        assert!(hooks.reached.load(Ordering::SeqCst), "{point} not reached");

        // The old version is untouched, whatever was left.
        assert_eq!(p.meta_bytes(), before, "{point}: the record changed");
        for l in &p.meta().versions["v1"].lowers {
            assert!(p.path(l).is_dir(), "{point}: {l}");
        }
        match point {
            CrashPoint::Download => {
                assert_eq!(p.ingest(), [big.digest().hex()], "{point}");
                assert!(!p.has_blob(&big.digest()));
            }
            CrashPoint::Unpack => {
                assert_eq!(p.unpacking().len(), 1, "{point}");
                assert_eq!(p.snapshots(), snapshots_before, "{point}");
            }
            CrashPoint::Publish => {
                // Synced but not yet named: blobs in ingest, unpacks in tmp.
                assert!(!p.has_blob(&big.digest()), "{point}");
                assert_eq!(p.unpacking().len(), 2, "{point}");
                assert_eq!(p.snapshots(), snapshots_before, "{point}");
            }
            CrashPoint::Record => {
                assert!(p.has_blob(&big.digest()), "{point}");
                assert_eq!(p.snapshots().len(), 4, "{point}");
                assert!(p.unpacking().is_empty(), "{point}");
            }
            CrashPoint::Menu => unreachable!("filtered out above"),
        }

        // What `terra install` does first, then the same install again.
        Snapshots::new(&p.part).clear_tmp().unwrap();
        p.install(&src, "v2").unwrap();
        let meta = p.meta();
        assert!(meta.versions.contains_key("v1"), "{point}");
        let v2 = &meta.versions["v2"];
        assert_eq!(
            fs::read(p.path(&v2.lowers[0]).join("etc/hostname")).unwrap(),
            b"v2\n",
            "{point}"
        );
        assert!(p.ingest().is_empty() && p.unpacking().is_empty(), "{point}");
        if point == CrashPoint::Download {
            let offsets = src.asked(&big.digest());
            assert!(
                offsets.len() == 2 && offsets[1] >= 64 << 10,
                "{point}: the rerun resumes ({offsets:?})"
            );
        }
    }
}

#[test]
fn a_crash_between_the_record_and_the_menu_is_repaired_by_the_rerun() {
    let p = Part::new();
    let src = MemSource::new(Image::of(&[base(), top("v1")]));
    let hooks = Arc::new(CrashAt {
        point: CrashPoint::Menu,
        reached: AtomicBool::new(false),
    });
    let crashed = catch_unwind(AssertUnwindSafe(|| {
        p.install_with(&src, "v1", hooks.clone())
    }));
    assert!(crashed.is_err() && hooks.reached.load(Ordering::SeqCst));
    assert!(
        p.meta().versions.contains_key("v1"),
        "the record is written"
    );
    let cfg = p.path("boot/grub/grub.cfg");
    assert!(!cfg.exists(), "the menu is not");
    p.install(&src, "v1").unwrap();
    let want = terra_grub::render(&p.meta(), &terra_grub::MenuOptions::default());
    assert_eq!(fs::read_to_string(&cfg).unwrap(), want);
}

#[test]
fn install_activate_makes_the_version_pending_in_the_same_replace() {
    let p = Part::new();
    p.install(&MemSource::new(Image::of(&[base(), top("v1")])), "v1")
        .unwrap();
    // v1 has passed its health gate, as stage 2 would have marked it.
    let mut m = p.meta();
    m.versions.get_mut("v1").unwrap().boot.good = true;
    m.store(&p.part.metadata()).unwrap();

    let v2 = MemSource::new(Image::of(&[base(), top("v2")]));
    p.install_activate(&v2, "v2", 2).unwrap();
    let m = p.meta();
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.fallback.as_deref(), Some("v1"));
    assert_eq!(m.versions["v2"].boot.tries_left, Some(2));
    assert!(!m.versions["v2"].boot.good);
    let cfg = fs::read_to_string(p.path("boot/grub/grub.cfg")).unwrap();
    assert!(cfg.contains("Terra v2 (default) [pending]"), "{cfg}");

    // Rolled back, then the same image installed again with --activate:
    // nothing is fetched, and v2 is pending again with fresh tries.
    let mut m = p.meta();
    assert_eq!(m.rollback().unwrap(), "v1");
    m.store(&p.part.metadata()).unwrap();
    p.install_activate(&v2, "v2", 3).unwrap();
    let m = p.meta();
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.fallback.as_deref(), Some("v1"));
    assert_eq!(m.versions["v2"].boot.tries_left, Some(3));

    // Without --activate an install changes neither default nor fallback.
    p.install(&MemSource::new(Image::of(&[base(), top("v3")])), "v3")
        .unwrap();
    let m = p.meta();
    assert_eq!(m.default.as_deref(), Some("v2"));
    assert_eq!(m.fallback.as_deref(), Some("v1"));
}
