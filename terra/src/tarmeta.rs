//! What a tar entry says about its file, read leniently where the format
//! allows it: owner, mode, mtime, xattrs (from the entry's pax records,
//! parsed by [`crate::pax`]), device numbers; and setting them on disk.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags, CWD};
use tar::EntryType;

/// What an entry's pax header says (the original records, every byte kept).
#[derive(Debug, Default)]
pub struct EntryPax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<Timespec>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// Only Terra says what is opaque or whited out in a snapshot.
const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";

impl EntryPax {
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut out = Self::default();
        for r in crate::pax::records(data)? {
            match r.key {
                b"path" => out.path = Some(r.value.to_vec()),
                b"linkpath" => out.linkpath = Some(r.value.to_vec()),
                b"uid" => out.uid = Some(id(r.number()?, "uid")?),
                b"gid" => out.gid = Some(id(r.number()?, "gid")?),
                b"mtime" => out.mtime = Some(pax_time(r.value)?),
                key => {
                    if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                        if !name.starts_with(OVERLAY_PREFIX) {
                            out.xattrs.push((name.to_vec(), r.value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn id(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v).with_context(|| format!("pax {what} {v} does not fit in 32 bits"))
}

/// A pax time: decimal seconds, optionally with a fraction (`1700000000.5`).
fn pax_time(value: &[u8]) -> Result<Timespec> {
    let text = std::str::from_utf8(value).unwrap_or("");
    let bad = || anyhow::anyhow!("pax mtime: expected seconds like 1700000000.5, found {text:?}");
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) {
        return Err(bad());
    }
    let s: i64 = secs.parse().map_err(|_| bad())?;
    let ns: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let ns: i64 = ns.parse().map_err(|_| bad())?;
    // -1.5 is 1.5 s before the epoch: -2 s + 0.5 s.
    let (tv_sec, tv_nsec) = match (neg, ns) {
        (false, _) => (s, ns),
        (true, 0) => (-s, 0),
        (true, _) => (-s - 1, 1_000_000_000 - ns),
    };
    Ok(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub times: Timestamps,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The header fields, read leniently ([`numeric`]), under the pax records.
pub fn read_meta<R: Read>(entry: &tar::Entry<R>, pax: &EntryPax) -> Result<Meta> {
    let b = entry.header().as_bytes();
    let field = |r: std::ops::Range<usize>, what: &str| numeric(&b[r], what);
    let uid = match pax.uid {
        Some(v) => v,
        None => id(field(108..116, "uid")?, "uid")?,
    };
    let gid = match pax.gid {
        Some(v) => v,
        None => id(field(116..124, "gid")?, "gid")?,
    };
    let ts = match pax.mtime {
        Some(t) => t,
        None => Timespec {
            tv_sec: i64::try_from(field(136..148, "mtime")?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        },
    };
    Ok(Meta {
        uid,
        gid,
        mode: field(100..108, "mode")? as u32 & 0o7777,
        times: Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        xattrs: pax.xattrs.clone(),
    })
}

/// The device numbers of a character or block device; 0, 0 for anything
/// else. The fields only apply to devices, and writers leave them blank for
/// FIFOs (Python's `tarfile`) or even for devices: blank reads as 0. The
/// `tar` crate's own reader refuses blank numeric fields, so this reads the
/// two ustar/GNU fields (bytes 329..337 and 337..345) itself, as
/// [`read_meta`] does the others (offsets from POSIX's ustar header).
pub fn device_numbers(h: &tar::Header, kind: EntryType) -> Result<(u32, u32)> {
    if !matches!(kind, EntryType::Char | EntryType::Block) {
        return Ok((0, 0));
    }
    if h.as_ustar().is_none() && h.as_gnu().is_none() {
        return Ok((0, 0)); // a v7 header has no device fields
    }
    let b = h.as_bytes();
    let dev = |r: std::ops::Range<usize>, what: &str| -> Result<u32> {
        let v = numeric(&b[r], what)?;
        u32::try_from(v).with_context(|| format!("tar field {what}: {v} does not fit in 32 bits"))
    };
    Ok((dev(329..337, "devmajor")?, dev(337..345, "devminor")?))
}

/// A tar numeric field: octal text ended by NUL or space, blank for 0 (as
/// Go's `archive/tar` reads it), or base-256 (high bit of the first byte
/// set) for large values.
fn numeric(field: &[u8], what: &str) -> Result<u64> {
    let v = if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .map(|v| v | u64::from(b))
                .unwrap_or(u64::MAX);
        }
        v
    } else {
        let text: String = field
            .iter()
            .map(|&b| b as char)
            .skip_while(|c| *c == ' ')
            .take_while(|c| !matches!(c, '\0' | ' '))
            .collect();
        if text.is_empty() {
            0
        } else {
            u64::from_str_radix(&text, 8).map_err(|_| {
                anyhow::anyhow!(
                    "tar field {what}: expected octal digits, found {:?}",
                    String::from_utf8_lossy(field)
                )
            })?
        }
    };
    Ok(v)
}

/// Owner, then mode (chown clears setuid), xattrs, mtime (not for dirs: later).
pub fn apply_meta(path: &Path, m: &Meta, symlink: bool) -> Result<()> {
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
        rustix::fs::lsetxattr(path, OsStr::from_bytes(name), value, XattrFlags::empty())
            .with_context(|| {
                format!(
                    "setting xattr {} on {}",
                    String::from_utf8_lossy(name),
                    path.display()
                )
            })?;
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

pub fn set_times(path: &Path, t: &Timestamps) -> Result<()> {
    rustix::fs::utimensat(CWD, path, t, AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("setting the mtime of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields() {
        assert_eq!(numeric(b"\0\0\0\0\0\0\0\0", "m").unwrap(), 0);
        assert_eq!(numeric(b"        ", "m").unwrap(), 0);
        assert_eq!(numeric(b"0000010\0", "m").unwrap(), 8);
        assert_eq!(numeric(b"     10 ", "m").unwrap(), 8);
        assert_eq!(numeric(b"\x80\0\0\0\0\0\x01\x00", "m").unwrap(), 256);
        let err = numeric(b"12x4\0\0\0\0", "devmajor")
            .unwrap_err()
            .to_string();
        assert!(err.contains("devmajor") && err.contains("12x4"), "{err}");
    }

    #[test]
    fn pax_times() {
        let t = pax_time(b"1700000000.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = pax_time(b"-1.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        assert!(pax_time(b"soon").is_err());
    }
}
