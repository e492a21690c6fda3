//! A directory tree described entry by entry, to compare what two unpackers
//! made of the same image (the layer compatibility suite,
//! `tests/tests/compat.rs`): for each path its type, mode, owner, size,
//! content hash, link target, device number, xattrs (capabilities included)
//! and, for hard links, the first path of its link group. Directory and file
//! times are left out (unpackers differ in what they restore; the issue's
//! bar is the tree's content and metadata).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Every entry under `root` (not `root` itself), by relative path.
pub fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut paths = Vec::new();
    walk(root, Path::new(""), &mut paths);
    paths.sort();
    let mut first_of_inode: HashMap<u64, String> = HashMap::new();
    let mut out = BTreeMap::new();
    for rel in paths {
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let mut d = format!("mode={:o} owner={}:{}", m.mode() & 0o7777, m.uid(), m.gid());
        if ft.is_dir() {
            d = format!("dir {d}");
        } else if ft.is_symlink() {
            let t = fs::read_link(&path).unwrap();
            // A symlink's own mode is not portable (always 0777 on Linux).
            d = format!("symlink -> {} owner={}:{}", t.display(), m.uid(), m.gid());
        } else if ft.is_file() {
            let data = fs::read(&path).unwrap();
            d = format!(
                "file {d} size={} sha256={}",
                data.len(),
                &hex::encode(Sha256::digest(&data))[..16]
            );
            if m.nlink() > 1 {
                let first = first_of_inode.entry(m.ino()).or_insert(rel.clone());
                d.push_str(&format!(" linked-with={first}"));
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() { "char" } else { "block" };
            let (ma, mi) = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
            d = format!("{kind} {ma},{mi} {d}");
        } else if ft.is_fifo() {
            d = format!("fifo {d}");
        } else {
            d = format!("other {d}");
        }
        for (k, v) in xattrs(&path) {
            d.push_str(&format!(" xattr:{k}={}", hex::encode(v)));
        }
        out.insert(rel, d);
    }
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        out.push(r.to_string_lossy().into_owned());
        if fs::symlink_metadata(root.join(&r)).unwrap().is_dir() {
            walk(root, &r, out);
        }
    }
}

/// The xattrs of `path`, sorted, without overlayfs's own (`trusted.overlay.*`
/// is how a snapshot records whiteouts, not content).
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut buf = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(path, &mut buf).unwrap_or(0);
    let mut out: Vec<(String, Vec<u8>)> = buf[..n]
        .split(|&b| b == 0)
        .filter(|k| !k.is_empty() && !k.starts_with(b"trusted.overlay."))
        .map(|k| {
            let name = std::ffi::OsStr::from_bytes(k);
            let mut v = vec![0u8; 64 << 10];
            let len = rustix::fs::lgetxattr(path, name, &mut v).unwrap();
            v.truncate(len);
            (String::from_utf8_lossy(k).into_owned(), v)
        })
        .collect();
    out.sort();
    out
}

/// The differences between two descriptions, one line each (empty: same).
pub fn diff(
    left_name: &str,
    left: &BTreeMap<String, String>,
    right_name: &str,
    right: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, l) in left {
        match right.get(p) {
            None => out.push(format!("{p}: only in {left_name}: {l}")),
            Some(r) if r != l => {
                out.push(format!("{p}:\n    {left_name}: {l}\n    {right_name}: {r}"))
            }
            Some(_) => {}
        }
    }
    for (p, r) in right {
        if !left.contains_key(p) {
            out.push(format!("{p}: only in {right_name}: {r}"));
        }
    }
    out
}
