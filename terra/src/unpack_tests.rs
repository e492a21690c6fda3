//! The unpacker's unit tests (a file of their own to keep `unpack.rs` short).

use super::*;
use crate::hooks::NoHooks;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

#[test]
fn clean_paths() {
    assert_eq!(clean_path(b"./a/b").unwrap(), Some(PathBuf::from("a/b")));
    assert_eq!(clean_path(b"./").unwrap(), None);
    assert!(clean_path(b"/etc/passwd").is_err());
    assert!(clean_path(b"a/../../x").is_err());
}

fn header(path: &str, kind: EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h
}

fn run(tar: Vec<u8>, root: &Path, mode: Whiteouts) -> Result<Stats> {
    unpack(&tar[..], root, mode, &NoHooks).map(|(s, _)| s)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn blank_device_numbers_read_as_zero() {
    if !is_root() {
        return; // mknod of devices needs root (the root tier runs this)
    }
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind) in [("fifo", EntryType::Fifo), ("null0", EntryType::Char)] {
        let mut h = header(path, kind, 0);
        // What Python's tarfile writes for a FIFO: NULs, not digits.
        h.as_mut_bytes()[329..345].fill(0);
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    run(b.into_inner().unwrap(), dir.path(), Whiteouts::Apply).unwrap();
    let m = fs::symlink_metadata(dir.path().join("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    let m = fs::symlink_metadata(dir.path().join("null0")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
}

#[test]
fn binary_pax_values_are_kept_whole() {
    let cap = b"\x01\x00\x00\x02\n\x00\xff\n19 path=smuggled\n".to_vec();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.bin", &cap[..])])
        .unwrap();
    b.append(&header("file", EntryType::Regular, 2), &b"hi"[..])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run(b.into_inner().unwrap(), root, Whiteouts::Apply).unwrap();
    assert_eq!(fs::read(root.join("file")).unwrap(), b"hi");
    assert!(!root.join("smuggled").exists());
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(root.join("file"), "user.bin", &mut buf).unwrap();
    assert_eq!(&buf[..n], &cap[..]);
}

fn layer(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(path, EntryType::Symlink, 0);
    b.append_link(&mut h, path, target).unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header("x", EntryType::Regular, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header("x", EntryType::Directory, 0);
    h.set_mode(0o750);
    b.append_data(&mut h, path, io::empty()).unwrap();
}

/// `lib -> usr/lib` and a chain `a -> b -> usr` below; a later layer
/// writes `lib/extra.so` and `a/share/doc`.
fn merged_usr_layers() -> (Vec<u8>, Vec<u8>) {
    let lower = layer(|b| {
        dir(b, "usr");
        dir(b, "usr/lib");
        dir(b, "usr/share");
        symlink(b, "lib", "usr/lib");
        symlink(b, "a", "b");
        symlink(b, "b", "/usr");
    });
    let upper = layer(|b| {
        file(b, "lib/extra.so", b"so");
        file(b, "a/share/doc/README", b"doc");
    });
    (lower, upper)
}

fn assert_merged(root: &Path) {
    assert_eq!(fs::read(root.join("usr/lib/extra.so")).unwrap(), b"so");
    assert_eq!(fs::read(root.join("usr/share/doc/README")).unwrap(), b"doc");
    assert!(fs::symlink_metadata(root.join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_flat_unpack_writes_through_lower_symlinks_within_the_root() {
    let (lower, upper) = merged_usr_layers();
    let dir = tempfile::tempdir().unwrap();
    run(lower, dir.path(), Whiteouts::Apply).unwrap();
    run(upper, dir.path(), Whiteouts::Apply).unwrap();
    assert_merged(dir.path());
    // A lower symlink that climbs out of the root is still refused.
    let out = layer(|b| symlink(b, "up", "../../.."));
    run(out, dir.path(), Whiteouts::Apply).unwrap();
    let err = run(
        layer(|b| file(b, "up/x", b"x")),
        dir.path(),
        Whiteouts::Apply,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("leads outside the root"),
        "{err:#}"
    );
}

#[test]
fn snapshots_settle_paths_through_lower_symlinks() {
    let (lower, upper) = merged_usr_layers();
    let tmp = tempfile::tempdir().unwrap();
    let (l, u) = (tmp.path().join("l"), tmp.path().join("u"));
    fs::create_dir(&l).unwrap();
    fs::create_dir(&u).unwrap();
    run(lower, &l, Whiteouts::Overlay).unwrap();
    let stats = run(upper, &u, Whiteouts::Overlay).unwrap();
    let view = View {
        layers: vec![l.clone()],
        whiteouts: true,
    };
    crate::lowers::settle(&u, &stats.implicit, &view).unwrap();
    // The snapshot holds the files where the merged view shows them,
    // and no directory that would hide the lower symlinks.
    assert_eq!(fs::read(u.join("usr/lib/extra.so")).unwrap(), b"so");
    assert_eq!(fs::read(u.join("usr/share/doc/README")).unwrap(), b"doc");
    for gone in ["lib", "a", "b"] {
        assert!(!u.join(gone).exists(), "{gone} must not hide the symlink");
    }
    // Implicit parents take the lower directory's mode.
    let mode = fs::metadata(u.join("usr")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o750);
}

#[test]
fn a_directory_listed_after_its_children_is_not_implicit() {
    let lower = layer(|b| {
        dir(b, "usr");
        dir(b, "usr/lib");
        symlink(b, "lib", "usr/lib");
    });
    let upper = layer(|b| {
        file(b, "lib/own.so", b"own");
        dir(b, "lib");
    });
    let tmp = tempfile::tempdir().unwrap();
    let (l, u) = (tmp.path().join("l"), tmp.path().join("u"));
    fs::create_dir(&l).unwrap();
    fs::create_dir(&u).unwrap();
    run(lower, &l, Whiteouts::Overlay).unwrap();
    let stats = run(upper, &u, Whiteouts::Overlay).unwrap();
    assert!(stats.implicit.is_empty(), "{:?}", stats.implicit);
    let view = View {
        layers: vec![l],
        whiteouts: true,
    };
    crate::lowers::settle(&u, &stats.implicit, &view).unwrap();
    assert_eq!(fs::read(u.join("lib/own.so")).unwrap(), b"own");
    assert!(!u.join("usr").exists());
}

/// Unpacks `layers` (bottom first) as snapshots and settles each against
/// the ones below, as an install does; returns the snapshot dirs.
fn snapshots(root: &Path, layers: Vec<Vec<u8>>) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, tar) in layers.into_iter().enumerate() {
        let d = root.join(format!("s{i}"));
        fs::create_dir_all(&d)?;
        let stats = run(tar, &d, Whiteouts::Overlay)?;
        let view = View {
            layers: dirs.iter().rev().cloned().collect(),
            whiteouts: true,
        };
        crate::lowers::settle(&d, &stats.implicit, &view)?;
        dirs.push(d);
    }
    Ok(dirs)
}

#[test]
fn settle_follows_the_merged_lower_view() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = || {
        layer(|b| {
            dir(b, "usr");
            dir(b, "usr/lib");
            file(b, "hosts", b"h");
            symlink(b, "lib", "usr/lib");
            symlink(b, "f", "hosts");
        })
    };
    // A whiteout in between hides the symlink: the file stays in `lib/`.
    let wh = layer(|b| file(b, ".wh.lib", b""));
    let d = snapshots(
        &tmp.path().join("a"),
        vec![lower(), wh, layer(|b| file(b, "lib/x", b"x"))],
    )
    .unwrap();
    assert_eq!(fs::read(d[2].join("lib/x")).unwrap(), b"x");
    // Through a symlink to a file: refused, as writing there fails.
    let err = snapshots(
        &tmp.path().join("b"),
        vec![lower(), layer(|b| file(b, "f/x", b"x"))],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
}
