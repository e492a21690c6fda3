//! Unpacking one layer tar into a directory, safely. What is accepted and
//! why is written for users in `docs/layers.md`.
//!
//! - Paths: absolute paths and `..` are refused; every parent component is
//!   checked with `lstat`, and one that is a symlink this layer made is
//!   refused, so nothing is ever created through such a symlink. A symlink
//!   of a lower layer is resolved within the root ([`crate::lowers`]): in a
//!   flat unpack at once, in a snapshot once the lower snapshots exist
//!   ([`crate::lowers::settle`]). Hard link targets obey the same rules.
//!   The directory is ours alone while we unpack (a fresh temp dir), so the
//!   checks cannot race.
//! - Metadata ([`crate::tarmeta`]): owner, mode (setuid/setgid/sticky
//!   included; chown comes first because it clears setuid), xattrs
//!   (`SCHILY.xattr.*` read from the original pax records, binary values
//!   and security.capability included; `trusted.overlay.*` from the tar is
//!   dropped: only we say what is opaque), mtimes (directories last, deepest
//!   first), device nodes (blank device fields read as 0).
//! - Whiteouts: for a snapshot ([`Whiteouts::Overlay`]) `.wh.NAME` becomes a
//!   0/0 character device and `.wh..wh..opq` the `trusted.overlay.opaque=y`
//!   xattr (overlayfs's own format); for a flat unpack ([`Whiteouts::Apply`])
//!   they delete what earlier layers wrote.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, Timestamps, XattrFlags, CWD};
use tar::EntryType;

use crate::hooks::{CrashPoint, Hooks};
use crate::lowers::View;
use crate::tarmeta::{apply_meta, device_numbers, read_meta, set_times, EntryPax};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Convert to overlayfs whiteouts (a snapshot that is one lower dir).
    Overlay,
    /// Delete what they name (a flat unpack of all layers into one dir).
    Apply,
}

const WH_PREFIX: &str = ".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Default)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    /// Directories a snapshot unpack created without a tar entry (parents
    /// the tar did not list), for [`crate::lowers::settle`].
    pub implicit: Vec<PathBuf>,
}

/// Unpacks the tar stream `reader` into `root` (which must exist).
/// Returns what was written; the caller checks the stream's digest.
/// `hooks` is told at [`CrashPoint::Unpack`], 50 entries in.
pub fn unpack<R: Read>(
    reader: R,
    root: &Path,
    mode: Whiteouts,
    hooks: &dyn Hooks,
) -> Result<(Stats, R)> {
    let guard = crate::targuard::TarGuard::new(reader);
    let slot = guard.slot();
    let mut ar = tar::Archive::new(guard);
    let mut un = Unpacker {
        root,
        mode,
        stats: Stats::default(),
        dirs: Vec::new(),
        implicit: HashSet::new(),
        mine: HashSet::new(),
    };
    for entry in ar.entries().context("reading the layer tar")? {
        let mut entry = entry.context("reading the layer tar")?;
        // pax global headers carry no file (the tar crate already applied
        // per-entry pax and GNU long names).
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        // The original pax records (the tar crate saw a sanitized copy).
        let pax = match slot.borrow_mut().take() {
            Some(data) => EntryPax::parse(&data).context("reading the layer tar")?,
            None => EntryPax::default(),
        };
        let raw = match &pax.path {
            Some(p) => p.clone(),
            None => entry.path_bytes().into_owned(),
        };
        let rel = clean_path(&raw)?;
        un.stats.entries += 1;
        if un.stats.entries == 50 {
            hooks.reached(CrashPoint::Unpack);
        }
        let Some(rel) = rel else {
            continue; // the layer's root itself ("./")
        };
        un.entry(&mut entry, &pax, &rel)
            .with_context(|| format!("layer entry {:?}", String::from_utf8_lossy(&raw)))?;
    }
    let stats = un.finish()?;
    Ok((stats, ar.into_inner().into_inner()))
}

/// A tar path made relative: `./a/b` → `a/b`; `.` or `./` → None; absolute
/// paths and `..` are errors.
fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                bail!(
                    "refused: absolute path {:?} in a layer",
                    String::from_utf8_lossy(raw)
                )
            }
            Component::ParentDir => bail!(
                "refused: path {:?} climbs out with `..`",
                String::from_utf8_lossy(raw)
            ),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Removes whatever is at `path` (not following symlinks); a directory is
/// kept when `keep_dir`.
fn clear(path: &Path, keep_dir: bool) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    Ok(false)
}

/// One layer's unpack in progress: where it goes and what it has done.
struct Unpacker<'a> {
    root: &'a Path,
    mode: Whiteouts,
    stats: Stats,
    /// Directories and their times, set last (creating children changes them).
    dirs: Vec<(PathBuf, Timestamps)>,
    /// Parents created without a tar entry (snapshots only).
    implicit: HashSet<PathBuf>,
    /// Paths this layer wrote: a flat unpack's whiteouts must spare them,
    /// and a symlink among them is never gone through.
    mine: HashSet<PathBuf>,
}

impl Unpacker<'_> {
    /// Where `rel` goes, its parents checked and the missing ones created
    /// (0755, root-owned). A symlink this layer made is refused. In a flat
    /// unpack a symlink of a lower layer is resolved within the root
    /// ([`crate::lowers`]); in a snapshot the lower layers are elsewhere, so
    /// created parents are noted as implicit, for [`crate::lowers::settle`].
    fn place(&mut self, rel: &Path, create: bool) -> Result<PathBuf> {
        let mut todo: VecDeque<OsString> = rel
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut cur = PathBuf::new();
        while let Some(c) = todo.pop_front() {
            cur.push(&c);
            let path = self.root.join(&cur);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    if self.mode == Whiteouts::Overlay || self.mine.contains(&cur) {
                        bail!(
                            "refused: {} goes through the symlink {}",
                            rel.display(),
                            cur.display()
                        );
                    }
                    let view = View {
                        layers: vec![self.root.to_path_buf()],
                        whiteouts: false,
                    };
                    let to = view.resolve(&cur).with_context(|| {
                        format!("{} goes through {}", rel.display(), cur.display())
                    })?;
                    // Walk the resolved path again: it holds no symlink now.
                    for p in to.components().rev() {
                        todo.push_front(p.as_os_str().to_os_string());
                    }
                    cur = PathBuf::new();
                }
                Ok(_) => bail!(
                    "refused: {} is under {}, which is not a directory",
                    rel.display(),
                    cur.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    if self.mode == Whiteouts::Overlay {
                        self.implicit.insert(cur.clone());
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
            }
        }
        Ok(match rel.file_name() {
            Some(name) => cur.join(name),
            None => cur,
        })
    }

    /// Unpacks one entry at `rel` (cleaned): a whiteout, or a file of any kind.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        pax: &EntryPax,
        rel: &Path,
    ) -> Result<()> {
        let rel = &self.place(rel, true)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == WH_OPAQUE {
            return self.opaque(rel.parent().unwrap_or(Path::new("")));
        }
        if let Some(hidden) = name.strip_prefix(WH_PREFIX) {
            return self.whiteout(rel, hidden);
        }
        self.mine.insert(rel.to_path_buf());
        let path = self.root.join(rel);
        let kind = entry.header().entry_type();
        if kind == EntryType::Link {
            let target = self.link_target(entry, pax, "a hard link")?;
            return self.hard_link(&target, &path);
        }
        let meta = read_meta(entry, pax)?;
        match kind {
            EntryType::Directory => {
                // Listed after its children: explicit after all, so it
                // replaces a lower symlink like any directory entry.
                self.implicit.remove(rel);
                if !clear(&path, true)? {
                    fs::create_dir(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                }
                apply_meta(&path, &meta, false)?;
                self.dirs.push((rel.to_path_buf(), meta.times));
            }
            EntryType::Regular | EntryType::Continuous => {
                clear(&path, false)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc_o_nofollow())
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let n = io::copy(entry, &mut f)
                    .with_context(|| format!("writing {}", path.display()))?;
                self.stats.bytes += n;
                drop(f);
                apply_meta(&path, &meta, false)?;
            }
            EntryType::Symlink => {
                let target = self.link_target(entry, pax, "a symlink")?;
                clear(&path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .with_context(|| format!("creating the symlink {}", path.display()))?;
                apply_meta(&path, &meta, true)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (major, minor) = device_numbers(entry.header(), kind)?;
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                clear(&path, false)?;
                let dev = rustix::fs::makedev(major, minor);
                rustix::fs::mknodat(CWD, &path, ft, Mode::from_raw_mode(0o600), dev)
                    .with_context(|| format!("creating the device {}", path.display()))?;
                apply_meta(&path, &meta, false)?;
            }
            other => bail!("unsupported tar entry type {other:?}"),
        }
        Ok(())
    }

    /// The target of a link entry: the pax `linkpath` (every byte kept),
    /// else the header's (GNU long link included).
    fn link_target<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        pax: &EntryPax,
        what: &str,
    ) -> Result<Vec<u8>> {
        match &pax.linkpath {
            Some(t) => Ok(t.clone()),
            None => Ok(entry
                .link_name_bytes()
                .with_context(|| format!("{what} without a target"))?
                .into_owned()),
        }
    }

    /// `.wh..wh..opq`: the directory `parent` hides what lower layers hold.
    fn opaque(&mut self, parent: &Path) -> Result<()> {
        let dir = self.root.join(parent);
        match self.mode {
            Whiteouts::Overlay => {
                rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .with_context(|| format!("setting {OPAQUE_XATTR} on {}", parent.display()))?;
            }
            Whiteouts::Apply => {
                for child in fs::read_dir(&dir)? {
                    let child = child?;
                    if !self.mine.contains(&parent.join(child.file_name())) {
                        clear(&child.path(), false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `.wh.NAME` at `rel`: NAME is deleted.
    fn whiteout(&mut self, rel: &Path, hidden: &str) -> Result<()> {
        if hidden.starts_with(".wh.") || hidden.is_empty() {
            return Ok(()); // aufs metadata (.wh..wh.plnk etc.): not content
        }
        if hidden == "." || hidden == ".." {
            // `.wh...` would name the parent of the directory: out.
            bail!("refused: the whiteout {} names {hidden:?}", rel.display());
        }
        let target = rel.parent().unwrap_or(Path::new("")).join(hidden);
        let path = self.root.join(&target);
        match self.mode {
            Whiteouts::Overlay => {
                clear(&path, false)?;
                rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0)
                    .with_context(|| format!("creating the whiteout {}", target.display()))?;
                self.mine.insert(target);
            }
            Whiteouts::Apply => {
                if !self.mine.contains(&target) {
                    clear(&path, false)?;
                }
            }
        }
        Ok(())
    }

    /// A hard link: its target must be in this layer, reached without
    /// symlinks this layer made, and not a directory.
    fn hard_link(&mut self, target: &[u8], path: &Path) -> Result<()> {
        let Some(trel) = clean_path(target)? else {
            bail!("refused: a hard link to the layer root");
        };
        let trel = self
            .place(&trel, false)
            .context("refused: hard link target")?;
        let tpath = self.root.join(&trel);
        let tm = fs::symlink_metadata(&tpath).with_context(|| {
            format!(
                "refused: hard link target {} is not in this layer",
                trel.display()
            )
        })?;
        if tm.is_dir() {
            bail!("refused: hard link to the directory {}", trel.display());
        }
        if tpath != path {
            clear(path, false)?;
            fs::hard_link(&tpath, path)
                .with_context(|| format!("linking {} to {}", path.display(), trel.display()))?;
        }
        Ok(())
    }

    /// Directory mtimes last, deepest first: creating children changed them.
    fn finish(mut self) -> Result<Stats> {
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (path, times) in &self.dirs {
            set_times(&self.root.join(path), times)?;
        }
        self.stats.implicit = self.implicit.into_iter().collect();
        Ok(self.stats)
    }
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
