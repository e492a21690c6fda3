//! Unpacking one layer tar into a directory, safely.
//!
//! - Paths: absolute paths and `..` are refused; every parent component is
//!   checked with `lstat` and one that is a symlink is refused, so nothing is
//!   ever created through a symlink. Hard link targets obey the same rules.
//!   The directory is ours alone while we unpack (a fresh temp dir), so the
//!   checks cannot race.
//! - Metadata: owner, mode (setuid/setgid/sticky included; chown comes first
//!   because it clears setuid), xattrs (`SCHILY.xattr.*`, security.capability
//!   included; `trusted.overlay.*` from the tar is dropped: only we say what
//!   is opaque), mtimes (directories last, deepest first), device nodes.
//! - Whiteouts: for a snapshot ([`Whiteouts::Overlay`]) `.wh.NAME` becomes a
//!   0/0 character device and `.wh..wh..opq` the `trusted.overlay.opaque=y`
//!   xattr (overlayfs's own format); for a flat unpack ([`Whiteouts::Apply`])
//!   they delete what earlier layers wrote.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use tar::EntryType;

use crate::hooks::{CrashPoint, Hooks};

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
    let mut ar = tar::Archive::new(crate::targuard::TarGuard::new(reader));
    let mut un = Unpacker {
        root,
        mode,
        stats: Stats::default(),
        dirs: Vec::new(),
        mine: HashSet::new(),
    };
    for entry in ar.entries().context("reading the layer tar")? {
        let mut entry = entry.context("reading the layer tar")?;
        // pax global headers carry no file (the tar crate already applied
        // per-entry pax and GNU long names).
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let rel = clean_path(&raw)?;
        un.stats.entries += 1;
        if un.stats.entries == 50 {
            hooks.reached(CrashPoint::Unpack);
        }
        let Some(rel) = rel else {
            continue; // the layer's root itself ("./")
        };
        un.entry(&mut entry, &rel)
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

/// Checks every parent of `rel` under `root`: missing ones are created
/// (0755, root-owned), a symlink is refused, a non-directory is refused.
fn prepare_parents(root: &Path, rel: &Path, create: bool) -> Result<()> {
    let mut cur = root.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in parents {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "refused: {} goes through the symlink {}",
                rel.display(),
                cur.strip_prefix(root).unwrap_or(&cur).display()
            ),
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "refused: {} is under {}, which is not a directory",
                rel.display(),
                cur.strip_prefix(root).unwrap_or(&cur).display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("checking {}", cur.display())),
        }
    }
    Ok(())
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

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Timestamps,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> Result<Meta> {
    let h = entry.header();
    let mut uid = h.uid()? as u32;
    let mut gid = h.gid()? as u32;
    let mut mtime = h.mtime()? as i64;
    let mut nsec = 0i64;
    let mode = h.mode()? & 0o7777;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = ext.key().unwrap_or("");
            let value = ext.value_bytes();
            let num = || std::str::from_utf8(value).ok().map(str::trim);
            match key {
                "uid" => uid = num().and_then(|v| v.parse().ok()).unwrap_or(uid),
                "gid" => gid = num().and_then(|v| v.parse().ok()).unwrap_or(gid),
                "mtime" => {
                    if let Some(v) = num() {
                        let (s, frac) = v.split_once('.').unwrap_or((v, ""));
                        mtime = s.parse().unwrap_or(mtime);
                        let frac = format!("{frac:0<9}");
                        nsec = frac[..9].parse().unwrap_or(0);
                    }
                }
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        if !name.starts_with("trusted.overlay.") {
                            xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
    }
    let ts = Timespec {
        tv_sec: mtime,
        tv_nsec: nsec as _,
    };
    Ok(Meta {
        uid,
        gid,
        mode,
        times: Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        xattrs,
    })
}

/// One layer's unpack in progress: where it goes and what it has done.
struct Unpacker<'a> {
    root: &'a Path,
    mode: Whiteouts,
    stats: Stats,
    /// Directories and their times, set last (creating children changes them).
    dirs: Vec<(PathBuf, Timestamps)>,
    /// Paths this layer wrote: a flat unpack's whiteouts must spare them.
    mine: HashSet<PathBuf>,
}

impl Unpacker<'_> {
    /// Unpacks one entry at `rel` (cleaned): a whiteout, or a file of any kind.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, rel: &Path) -> Result<()> {
        prepare_parents(self.root, rel, true)?;
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
        match entry.header().entry_type() {
            EntryType::Directory => self.directory(entry, rel, &path),
            EntryType::Regular | EntryType::Continuous => self.file(entry, &path),
            EntryType::Symlink => self.symlink(entry, &path),
            EntryType::Link => self.hard_link(entry, &path),
            kind @ (EntryType::Char | EntryType::Block | EntryType::Fifo) => {
                self.device(entry, kind, &path)
            }
            other => bail!("unsupported tar entry type {other:?}"),
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

    fn directory<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        rel: &Path,
        path: &Path,
    ) -> Result<()> {
        let meta = read_meta(entry)?;
        if !clear(path, true)? {
            fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
        }
        apply_meta(path, &meta, false)?;
        self.dirs.push((rel.to_path_buf(), meta.times));
        Ok(())
    }

    fn file<R: Read>(&mut self, entry: &mut tar::Entry<R>, path: &Path) -> Result<()> {
        let meta = read_meta(entry)?;
        clear(path, false)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc_o_nofollow())
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let n = io::copy(entry, &mut f).with_context(|| format!("writing {}", path.display()))?;
        self.stats.bytes += n;
        drop(f);
        apply_meta(path, &meta, false)
    }

    fn symlink<R: Read>(&mut self, entry: &mut tar::Entry<R>, path: &Path) -> Result<()> {
        let meta = read_meta(entry)?;
        let target = entry
            .link_name_bytes()
            .context("a symlink without a target")?
            .into_owned();
        clear(path, false)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
            .with_context(|| format!("creating the symlink {}", path.display()))?;
        apply_meta(path, &meta, true)
    }

    /// A hard link: its target must be in this layer, reached without
    /// symlinks, and not a directory.
    fn hard_link<R: Read>(&mut self, entry: &mut tar::Entry<R>, path: &Path) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .context("a hard link without a target")?
            .into_owned();
        let Some(trel) = clean_path(&target)? else {
            bail!("refused: a hard link to the layer root");
        };
        prepare_parents(self.root, &trel, false).context("refused: hard link target")?;
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

    fn device<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        kind: EntryType,
        path: &Path,
    ) -> Result<()> {
        let meta = read_meta(entry)?;
        let (major, minor) = (
            entry.header().device_major()?.unwrap_or(0),
            entry.header().device_minor()?.unwrap_or(0),
        );
        let ft = match kind {
            EntryType::Char => FileType::CharacterDevice,
            EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        clear(path, false)?;
        let dev = rustix::fs::makedev(major, minor);
        rustix::fs::mknodat(CWD, path, ft, Mode::from_raw_mode(0o600), dev)
            .with_context(|| format!("creating the device {}", path.display()))?;
        apply_meta(path, &meta, false)
    }

    /// Directory mtimes last, deepest first: creating children changed them.
    fn finish(mut self) -> Result<Stats> {
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (path, times) in &self.dirs {
            set_times(&self.root.join(path), times)?;
        }
        Ok(self.stats)
    }
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Owner, then mode (chown clears setuid), xattrs, mtime (not for dirs: later).
fn apply_meta(path: &Path, m: &Meta, symlink: bool) -> Result<()> {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::fs::Uid::from_raw(m.uid)),
        Some(rustix::fs::Gid::from_raw(m.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown {}:{} {}", m.uid, m.gid, path.display()))?;
    if !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(m.mode))
            .with_context(|| format!("chmod {:o} {}", m.mode, path.display()))?;
    }
    for (name, value) in &m.xattrs {
        rustix::fs::lsetxattr(path, name.as_str(), value, XattrFlags::empty())
            .with_context(|| format!("setting xattr {name} on {}", path.display()))?;
    }
    let is_dir = !symlink
        && fs::symlink_metadata(path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
    if !is_dir {
        set_times(path, &m.times)?;
    }
    Ok(())
}

fn set_times(path: &Path, t: &Timestamps) -> Result<()> {
    rustix::fs::utimensat(CWD, path, t, AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("setting the mtime of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(b"./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"a/../../x").is_err());
    }
}
