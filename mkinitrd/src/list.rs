//! `mkinitrd --list`: what an initramfs holds, like `lsinitramfs -l`, plus
//! the reasons recorded in `/etc/terra/modules.why`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use terra_layout::initramfs::MODULES_WHY_FILE;

use crate::archive::{read_newc, read_one_newc, skip_zeros, Member};
use crate::compress::{decompress, Format};

/// An initramfs read back.
#[derive(Debug, Clone)]
pub struct Listing {
    /// How the file was compressed.
    pub format: Format,
    /// Size of the file.
    pub compressed: usize,
    /// Size of the cpio archive inside.
    pub uncompressed: usize,
    /// The members, in archive order.
    pub members: Vec<Member>,
}

/// Reads an initramfs: uncompressed cpio archives (such as an early
/// microcode archive), then possibly one compressed part running to the end
/// of the file (compression detected by magic), as the kernel reads it.
pub fn read(data: &[u8]) -> Result<Listing> {
    let mut members = Vec::new();
    let mut rest = data;
    let mut uncompressed = 0;
    loop {
        rest = skip_zeros(rest);
        let format = Format::detect(rest);
        if rest.is_empty() || format != Format::Plain {
            if !rest.is_empty() {
                let cpio = decompress(rest)?;
                uncompressed += cpio.len();
                members.extend(read_newc(&cpio).context("reading the compressed cpio archive")?);
            }
            return Ok(Listing {
                format,
                compressed: data.len(),
                uncompressed,
                members,
            });
        }
        let (more, after) =
            read_one_newc(rest).context("reading a cpio archive (is this an initramfs?)")?;
        uncompressed += rest.len() - after.len();
        members.extend(more);
        rest = after;
    }
}

impl Listing {
    /// The text `--list` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# {} entries; compression: {}; {} bytes ({} uncompressed)",
            self.members.len(),
            self.format.name(),
            self.compressed,
            self.uncompressed
        );
        for m in &self.members {
            let size = match m.mode & 0o170000 {
                0o020000 | 0o060000 => format!("{},{}", m.rdev.0, m.rdev.1),
                _ => m.data.len().to_string(),
            };
            let mut line = format!(
                "{} {:>3}/{:<3} {:>9} {}",
                mode_string(m.mode),
                m.uid,
                m.gid,
                size,
                m.name
            );
            if m.mode & 0o170000 == 0o120000 {
                let _ = write!(line, " -> {}", String::from_utf8_lossy(&m.data));
            }
            out.push_str(&line);
            out.push('\n');
        }
        let why_member = MODULES_WHY_FILE.trim_start_matches('/');
        if let Some(why) = self.members.iter().find(|m| m.name == why_member) {
            let _ = writeln!(out, "\n# Why each module is here ({MODULES_WHY_FILE}):");
            out.push_str(&String::from_utf8_lossy(&why.data));
        }
        out
    }
}

/// `drwxr-xr-x`, as ls prints it.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::from(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (_, false, _) if set => *c,
            (_, false, _) => '-',
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_like_ls() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o020600), "crw-------");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
    }
}
