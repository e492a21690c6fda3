//! The initramfs as records, and the newc writer.
//!
//! An [`Archive`] maps paths (relative, no leading `/`) to [`Entry`]s; it is
//! a sorted map, so writing it gives parents before children (a path sorts
//! after every prefix of it) and the same bytes for the same contents.
//!
//! The newc encoding itself comes from the `cpio` crate (jcreekmore/cpio-rs):
//! its `newc::Builder` lets us set every header field (inode, mode, owners,
//! nlink, mtime, rdev), which reproducibility needs, and its `newc::Reader`
//! reads archives back for `--list`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use anyhow::{bail, Context, Result};
use cpio::newc;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
    /// A character device node.
    CharDev {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One archive member: its kind and its permission bits (`0o755`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind and payload.
    pub node: Node,
    /// Permission bits only (`mode & 0o7777`); the type bits come from `node`.
    pub perm: u32,
}

impl Entry {
    /// The full `st_mode`: type bits plus permissions.
    pub fn mode(&self) -> u32 {
        let kind = match self.node {
            Node::Dir => 0o040000,
            Node::File(_) => 0o100000,
            Node::Symlink(_) => 0o120000,
            Node::CharDev { .. } => 0o020000,
        };
        kind | (self.perm & 0o7777)
    }

    fn data(&self) -> &[u8] {
        match &self.node {
            Node::File(data) => data,
            Node::Symlink(target) => target.as_bytes(),
            Node::Dir | Node::CharDev { .. } => &[],
        }
    }
}

/// A set of entries, kept sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
    /// The mtime written for every entry.
    mtime: u32,
}

/// `/a/b/` -> `a/b`; refuses empty paths, `.` and `..` components.
pub fn clean_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        bail!("empty path {path:?} in the initramfs");
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("path {path:?} in the initramfs has `.` or `..` components");
    }
    Ok(parts.join("/"))
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry` at `path`, creating missing parent directories (0755).
    /// Adding the same entry twice is fine; a different one at a taken path
    /// is an error, as is a parent that is not a directory.
    pub fn add(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = clean_path(path)?;
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for part in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => bail!("/{parent} is not a directory, so /{path} cannot be added"),
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            node: Node::Dir,
                            perm: 0o755,
                        },
                    );
                }
            }
        }
        match self.entries.get(&path) {
            None => {
                self.entries.insert(path, entry);
                Ok(())
            }
            Some(existing) if *existing == entry => Ok(()),
            // An implicit parent may be given its real permissions later.
            Some(Entry {
                node: Node::Dir, ..
            }) if entry.node == Node::Dir => {
                self.entries.insert(path, entry);
                Ok(())
            }
            Some(_) => bail!("/{path} is in the initramfs twice, with different contents"),
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                node: Node::Dir,
                perm,
            },
        )
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, data: Vec<u8>, perm: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                node: Node::File(data),
                perm,
            },
        )
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.add(
            path,
            Entry {
                node: Node::Symlink(target.to_string()),
                perm: 0o777,
            },
        )
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, perm: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                node: Node::CharDev { major, minor },
                perm,
            },
        )
    }

    /// The entry at `path` (leading `/` optional).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path.trim_start_matches('/'))
    }

    /// Entries in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Number of entries (without the trailer).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the archive in newc format. Reproducible: entries in path
    /// order, inode numbers counted from 1 in that order, uid/gid 0, every
    /// mtime `mtime`, dev 0, then the `TRAILER!!!` record.
    pub fn write_newc<W: Write>(&self, mut out: W) -> Result<W> {
        for (i, (path, entry)) in self.entries.iter().enumerate() {
            let data = entry.data();
            let size = u32::try_from(data.len())
                .with_context(|| format!("/{path} is larger than 4 GiB"))?;
            let (rmaj, rmin) = match entry.node {
                Node::CharDev { major, minor } => (major, minor),
                _ => (0, 0),
            };
            let ino = u32::try_from(i + 1).context("too many entries")?;
            let mut w = newc::Builder::new(path)
                .ino(ino)
                .mode(entry.mode())
                .uid(0)
                .gid(0)
                .nlink(if entry.node == Node::Dir { 2 } else { 1 })
                .mtime(self.mtime)
                .rdev_major(rmaj)
                .rdev_minor(rmin)
                .write(out, size);
            w.write_all(data)
                .with_context(|| format!("writing /{path}"))?;
            out = w.finish().with_context(|| format!("writing /{path}"))?;
        }
        newc::trailer(out).context("writing the cpio trailer")
    }

    /// Sets the mtime of every entry (SOURCE_DATE_EPOCH or 0).
    pub fn set_mtime(&mut self, mtime: u32) {
        self.mtime = mtime;
    }
}

/// One member read back from a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name as stored.
    pub name: String,
    /// Full `st_mode`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device numbers of a device node.
    pub rdev: (u32, u32),
    /// The payload (file contents, symlink target).
    pub data: Vec<u8>,
}

/// Reads every member of an uncompressed stream of newc archives: the
/// kernel accepts several archives one after the other, with zero padding
/// between them.
pub fn read_newc(mut input: &[u8]) -> io::Result<Vec<Member>> {
    let mut members = Vec::new();
    loop {
        input = skip_zeros(input);
        if input.is_empty() {
            return Ok(members);
        }
        let (more, rest) = read_one_newc(input)?;
        members.extend(more);
        input = rest;
    }
}

/// The bytes after any zero padding.
pub fn skip_zeros(input: &[u8]) -> &[u8] {
    let start = input.iter().position(|b| *b != 0).unwrap_or(input.len());
    &input[start..]
}

/// Reads one newc archive up to and including its trailer; returns its
/// members and what follows it.
pub fn read_one_newc(mut input: &[u8]) -> io::Result<(Vec<Member>, &[u8])> {
    let mut members = Vec::new();
    loop {
        let mut reader = newc::Reader::new(input)?;
        let e = reader.entry();
        let trailer = e.is_trailer();
        let mut m = Member {
            name: e.name().to_string(),
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            mtime: e.mtime(),
            rdev: (e.rdev_major(), e.rdev_minor()),
            data: Vec::with_capacity(e.file_size() as usize),
        };
        reader.read_to_end(&mut m.data)?;
        input = reader.finish()?;
        if trailer {
            return Ok((members, input));
        }
        members.push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Archive {
        let mut a = Archive::new();
        // Added out of order on purpose: the archive sorts.
        a.file("d/f", b"hi\n".to_vec(), 0o644).unwrap();
        a.symlink("l", "d/f").unwrap();
        a.char_dev("c", 5, 1, 0o600).unwrap();
        a
    }

    /// Every byte of a tiny archive: four entries and the trailer, each
    /// header 110 bytes + name + NUL padded to 4, data padded to 4.
    #[test]
    fn golden_bytes() {
        let expected: &[u8] = concat!(
            //  magic  ino      mode     uid      gid      nlink    mtime    size     devmaj   devmin   rdevmaj  rdevmin  namesize check
            "070701",
            "00000001",
            "00002180",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000005",
            "00000001",
            "00000002",
            "00000000",
            "c\0",
            "070701",
            "00000002",
            "000041ed",
            "00000000",
            "00000000",
            "00000002",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000002",
            "00000000",
            "d\0",
            "070701",
            "00000003",
            "000081a4",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000003",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000004",
            "00000000",
            "d/f\0\0\0",
            "hi\n\0",
            "070701",
            "00000004",
            "0000a1ff",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000003",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000002",
            "00000000",
            "l\0",
            "d/f\0",
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000b",
            "00000000",
            "TRAILER!!!\0\0\0\0",
        )
        .as_bytes();
        let got = tiny().write_newc(Vec::new()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let mut a = tiny();
        a.set_mtime(1_700_000_000);
        let members = read_newc(&a.write_newc(Vec::new()).unwrap()).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["c", "d", "d/f", "l"]);
        assert_eq!(members[0].rdev, (5, 1));
        assert_eq!(members[0].mode, 0o020600);
        assert_eq!(members[2].data, b"hi\n");
        assert_eq!(members[3].data, b"d/f");
        assert!(members
            .iter()
            .all(|m| m.mtime == 1_700_000_000 && m.uid == 0 && m.gid == 0));
    }

    #[test]
    fn parents_come_before_children() {
        let mut a = Archive::new();
        a.file("bin/sh", vec![], 0o755).unwrap();
        a.file("bin-x", vec![], 0o755).unwrap();
        a.file("bin/a/b", vec![], 0o755).unwrap();
        let names: Vec<&String> = a.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["bin", "bin-x", "bin/a", "bin/a/b", "bin/sh"]);
    }

    #[test]
    fn conflicts_are_refused_and_paths_cleaned() {
        let mut a = Archive::new();
        a.file("/etc//x", b"1".to_vec(), 0o644).unwrap();
        assert!(a.get("/etc/x").is_some());
        a.file("etc/x", b"1".to_vec(), 0o644).unwrap();
        assert!(a
            .file("etc/x", b"2".to_vec(), 0o644)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(a
            .file("etc/x/y", vec![], 0o644)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        a.dir("etc", 0o700).unwrap();
        assert_eq!(a.get("etc").unwrap().perm, 0o700);
        assert!(a.file("../x", vec![], 0o644).is_err());
        assert!(a.file("/", vec![], 0o644).is_err());
    }
}
