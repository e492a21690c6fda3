//! One layer tar into a directory, in-process: a flat unpack applying
//! whiteouts, and the entries that must be refused. Entries are owned by
//! the running user, so no root is needed.

use std::fs;
use std::path::Path;

use terra::hooks::NoHooks;
use terra::unpack::{unpack, Whiteouts};

/// A tar of `entries`: (path, kind, data or link target). Names are
/// written raw: the tar crate's setters refuse the hostile ones we test.
fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(rustix::process::getuid().as_raw().into());
        h.set_gid(rustix::process::getgid().as_raw().into());
        h.set_mtime(1_700_000_000);
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        let link = matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link);
        if link {
            old.linkname[..data.len()].copy_from_slice(data);
        }
        let body: &[u8] = if link { b"" } else { data };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn apply(root: &Path, tar: &[u8]) -> anyhow::Result<()> {
    unpack(tar, root, Whiteouts::Apply, &NoHooks).map(|_| ())
}

use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

#[test]
fn a_flat_unpack_applies_whiteouts_to_earlier_layers_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    apply(
        root,
        &tar_of(&[
            ("etc/", D, b""),
            ("etc/gone", F, b"old"),
            ("etc/kept", F, b"old"),
            ("opt/", D, b""),
            ("opt/old", F, b"old"),
        ]),
    )
    .unwrap();
    apply(
        root,
        &tar_of(&[
            ("etc/", D, b""),
            ("etc/.wh.gone", F, b""),
            ("opt/", D, b""),
            ("opt/new", F, b"new"),
            ("opt/.wh..wh..opq", F, b""),
            ("etc/link", H, b"etc/kept"),
            ("etc/sym", S, b"kept"),
        ]),
    )
    .unwrap();
    assert!(!root.join("etc/gone").exists());
    assert_eq!(fs::read(root.join("etc/kept")).unwrap(), b"old");
    assert_eq!(fs::read(root.join("etc/link")).unwrap(), b"old");
    assert_eq!(
        fs::read_link(root.join("etc/sym")).unwrap(),
        Path::new("kept")
    );
    // Opaque: the earlier layer's file goes, this layer's stays.
    assert!(!root.join("opt/old").exists());
    assert_eq!(fs::read(root.join("opt/new")).unwrap(), b"new");
}

#[test]
fn entries_that_leave_the_directory_are_refused() {
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "through a symlink",
            tar_of(&[("out", S, b"/tmp"), ("out/x", F, b"x")]),
            "goes through the symlink",
        ),
        (
            "a hard link out",
            tar_of(&[("x", H, b"../../etc/passwd")]),
            "climbs out",
        ),
        (
            "a whiteout of ..",
            tar_of(&[("a/.wh...", F, b"")]),
            "refused: the whiteout",
        ),
        (
            "an absolute path",
            tar_of(&[("/abs", F, b"x")]),
            "absolute path",
        ),
    ];
    for (what, tar, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", apply(dir.path(), &tar).unwrap_err());
        assert!(err.contains(says), "{what}: {err}");
    }
}
