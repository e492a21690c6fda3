//! Paths through symlinks of lower layers, resolved the way an image tool
//! that applies layers in order would (containerd writes each layer onto
//! the mounted view of the ones below; umoci resolves within the root).
//!
//! A layer may hold `lib/extra.so` while a lower layer has `lib -> usr/lib`
//! (every merged-/usr Debian or Ubuntu image has that link). Applied in
//! order, the file lands in `usr/lib/extra.so`. Terra unpacks each layer
//! into its own snapshot, so the unpacker first creates the missing parent
//! `lib/` as a plain directory and notes it as *implicit*; once the layers
//! below are unpacked, [`settle`] looks each implicit directory up in the
//! merged view of the lower snapshots ([`View`]) and, where that view has a
//! symlink, moves the directory's contents to where the symlink leads, so
//! no directory hides the lower symlink in the overlay. An implicit
//! directory over a lower directory takes that directory's owner, mode and
//! xattrs (the overlay shows the upper one's).
//!
//! Resolution stays inside the root: an absolute target is taken from the
//! image's root (what it means inside the container), and a `..` that
//! climbs above the root is refused, as is a chain of more than
//! [`MAX_LINKS`] links.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, XattrFlags, CWD};

/// Links followed in one path at most (Linux's own limit, `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What the merged view has at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// A directory; the path is the top-most layer's (whose metadata shows).
    Dir(PathBuf),
    Symlink(PathBuf),
    Other,
}

/// A stack of layer directories seen as overlayfs merges them, top first.
/// With `whiteouts`, a 0/0 character device hides what is below and
/// `trusted.overlay.opaque=y` makes a directory hide the lower ones'.
pub struct View {
    pub layers: Vec<PathBuf>,
    pub whiteouts: bool,
}

impl View {
    /// What is at `rel` (relative, `..`-free), not following a final symlink.
    /// Never follows a symlink on the way: each component is `lstat`ed.
    pub fn lookup(&self, rel: &Path) -> Result<Found> {
        let comps: Vec<_> = rel.components().collect();
        if comps.is_empty() {
            return Ok(Found::Dir(self.layers.first().cloned().unwrap_or_default()));
        }
        for layer in &self.layers {
            let mut cur = layer.clone();
            let mut stop_below = false;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let last = i + 1 == comps.len();
                let m = match fs::symlink_metadata(&cur) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e).with_context(|| format!("checking {}", cur.display())),
                };
                let ft = m.file_type();
                if self.whiteouts && ft.is_char_device() && m.rdev() == 0 {
                    return Ok(Found::Missing); // whited out here
                }
                if last {
                    return Ok(if ft.is_dir() {
                        Found::Dir(cur)
                    } else if ft.is_symlink() {
                        Found::Symlink(fs::read_link(&cur)?)
                    } else {
                        Found::Other
                    });
                }
                if !ft.is_dir() {
                    return Ok(Found::Missing); // a non-directory hides what is below
                }
                if self.whiteouts && is_opaque(&cur) {
                    stop_below = true;
                }
            }
            if stop_below {
                return Ok(Found::Missing);
            }
        }
        Ok(Found::Missing)
    }

    /// `rel` with every symlink in it resolved within the root: the path
    /// that writing to `rel` reaches. Components past the first missing one
    /// are kept as they are (the writer creates them).
    pub fn resolve(&self, rel: &Path) -> Result<PathBuf> {
        let mut todo: VecDeque<OsString> = parts(rel)?;
        let mut out = PathBuf::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if !out.pop() {
                    bail!(
                        "refused: {} leads outside the root through a symlink",
                        rel.display()
                    );
                }
                continue;
            }
            out.push(&c);
            match self.lookup(&out)? {
                Found::Symlink(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        bail!(
                            "refused: more than {MAX_LINKS} symlinks in {}",
                            rel.display()
                        );
                    }
                    out.pop();
                    if target.is_absolute() {
                        out = PathBuf::new(); // from the image's root
                    }
                    for t in parts(&target)?.into_iter().rev() {
                        todo.push_front(t);
                    }
                }
                Found::Other if !todo.is_empty() => bail!(
                    "refused: {} goes through {}, which is not a directory",
                    rel.display(),
                    out.display()
                ),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The components of a path as names and `..` (`.` and `/` dropped).
fn parts(p: &Path) -> Result<VecDeque<OsString>> {
    let mut out = VecDeque::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::ParentDir => out.push_back("..".into()),
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => bail!("unexpected path prefix in {}", p.display()),
        }
    }
    Ok(out)
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

/// Moves what this layer (`dir`) wrote under its implicit directories to
/// where the layers below (`lowers`) lead them; see the module doc.
/// `implicit` is what the unpacker created without a tar entry.
pub fn settle(dir: &Path, implicit: &[PathBuf], lowers: &View) -> Result<()> {
    let mut todo: Vec<PathBuf> = implicit.to_vec();
    // Shallow first: a parent is settled before its children are looked at.
    todo.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    while let Some(d) = todo.pop() {
        match fs::symlink_metadata(dir.join(&d)) {
            Ok(m) if m.is_dir() => {}
            _ => continue, // replaced by a later entry of the layer
        }
        match lowers.lookup(&d)? {
            Found::Dir(lower) => copy_dir_meta(&lower, &dir.join(&d))?,
            Found::Symlink(_) => {
                let to = lowers.resolve(&d)?;
                if lowers.lookup(&to)? == Found::Other {
                    bail!(
                        "refused: {} leads through a symlink to {}, which is not a directory",
                        d.display(),
                        to.display()
                    );
                }
                if to.starts_with(&d) {
                    bail!(
                        "refused: {} leads into itself through a symlink",
                        d.display()
                    );
                }
                log::debug!(
                    "{} is a symlink below: moving to {}",
                    d.display(),
                    to.display()
                );
                make_parents(dir, &to, lowers)?;
                merge_move(&dir.join(&d), &dir.join(&to))?;
                if let Found::Dir(lower) = lowers.lookup(&to)? {
                    copy_dir_meta(&lower, &dir.join(&to))?;
                }
                // Implicit directories below move along.
                for t in todo.iter_mut() {
                    if let Ok(rest) = t.strip_prefix(&d) {
                        *t = to.join(rest);
                    }
                }
            }
            Found::Missing | Found::Other => {}
        }
    }
    Ok(())
}

/// Creates the missing parents of `to` in `dir` (as the lower directories
/// they stand for); a symlink or a file of this layer in the way is refused.
fn make_parents(dir: &Path, to: &Path, lowers: &View) -> Result<()> {
    let mut rel = PathBuf::new();
    for c in to.parent().map(|p| p.components()).into_iter().flatten() {
        rel.push(c);
        let path = dir.join(&rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "refused: {} is reached through {}, which this layer made a non-directory",
                to.display(),
                rel.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
                if let Found::Dir(lower) = lowers.lookup(&rel)? {
                    copy_dir_meta(&lower, &path)?;
                }
            }
            Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
        }
    }
    Ok(())
}

/// Moves `from` to `to`; when `to` is a directory already, their contents
/// merge. Both naming the same non-directory is refused: the layer wrote
/// one path twice under two names, and which one was meant is unknown.
fn merge_move(from: &Path, to: &Path) -> Result<()> {
    match fs::symlink_metadata(to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(from, to)
            .with_context(|| format!("moving {} to {}", from.display(), to.display())),
        Ok(m) if m.is_dir() && fs::symlink_metadata(from)?.is_dir() => {
            for child in fs::read_dir(from)? {
                let child = child?;
                merge_move(&child.path(), &to.join(child.file_name()))?;
            }
            fs::remove_dir(from).with_context(|| format!("removing {}", from.display()))
        }
        Ok(_) => bail!(
            "refused: the layer writes {} both through a symlink and directly",
            to.display()
        ),
        Err(e) => Err(e).with_context(|| format!("checking {}", to.display())),
    }
}

/// Owner, mode and xattrs of a lower directory onto the implicit one that
/// stands for it (the overlay shows the upper directory's).
fn copy_dir_meta(lower: &Path, upper: &Path) -> Result<()> {
    let m = fs::symlink_metadata(lower).with_context(|| format!("reading {}", lower.display()))?;
    rustix::fs::chownat(
        CWD,
        upper,
        Some(rustix::fs::Uid::from_raw(m.uid())),
        Some(rustix::fs::Gid::from_raw(m.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown {}", upper.display()))?;
    fs::set_permissions(upper, fs::Permissions::from_mode(m.mode() & 0o7777))
        .with_context(|| format!("chmod {}", upper.display()))?;
    for name in xattr_names(lower)? {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(&name);
        let mut buf = vec![0u8; 64 * 1024];
        let n = rustix::fs::lgetxattr(lower, name, &mut buf)
            .with_context(|| format!("reading xattrs of {}", lower.display()))?;
        rustix::fs::lsetxattr(upper, name, &buf[..n], XattrFlags::empty())
            .with_context(|| format!("setting xattrs on {}", upper.display()))?;
    }
    Ok(())
}

fn xattr_names(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(path, &mut buf)
        .with_context(|| format!("listing xattrs of {}", path.display()))?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}
