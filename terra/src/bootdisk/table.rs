//! A disk's partition table, read and extended with util-linux's `sfdisk`
//! (`--json` to read, `--append` to add). Why a tool and not a crate: the
//! live system has sfdisk anyway (it is the partitioner people use there),
//! it reads and writes GPT and MBR alike, tells the kernel about a new
//! partition of a disk in use (BLKPG), and its JSON is a stable interface.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Bytes in a sector as sfdisk counts them (it reports `sectorsize`; 512
/// for image files and nearly every disk).
pub const SECTOR: u64 = 512;
/// 1 MiB in sectors: where partitions start and how they are aligned.
pub const MIB_SECTORS: u64 = 2048;

/// GPT type of an EFI system partition (UEFI spec, 5.3.3).
pub const GPT_ESP: &str = "C12A7328-F812-11D2-BA4B-00A0C93EC93B";
/// GPT type of a BIOS boot partition (GRUB's core.img on a GPT disk).
pub const GPT_BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
/// GPT type "Linux filesystem data".
pub const GPT_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/// MBR type byte of an EFI system partition, as sfdisk writes it.
pub const MBR_ESP: &str = "ef";

/// GPT or MBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Gpt,
    Mbr,
}

#[derive(Debug, Deserialize)]
struct Dump {
    partitiontable: RawTable,
}

#[derive(Debug, Deserialize)]
struct RawTable {
    label: String,
    #[serde(default)]
    firstlba: Option<u64>,
    #[serde(default)]
    lastlba: Option<u64>,
    #[serde(default)]
    sectorsize: Option<u64>,
    #[serde(default)]
    partitions: Vec<Part>,
}

/// One partition, in sectors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Part {
    /// The device node sfdisk names (`/dev/vda2`; for an image file, the
    /// file name with the number appended).
    pub node: String,
    pub start: u64,
    pub size: u64,
    /// A GPT type GUID (upper case) or an MBR type byte in hex (`83`, `ef`).
    #[serde(rename = "type")]
    pub ptype: String,
}

impl Part {
    /// The partition number: the digits that end its node name.
    pub fn number(&self) -> Option<u32> {
        let digits: String = self
            .node
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse().ok()
    }

    pub fn offset(&self) -> u64 {
        self.start * SECTOR
    }

    pub fn bytes(&self) -> u64 {
        self.size * SECTOR
    }

    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    pub fn is_esp(&self) -> bool {
        self.ptype.eq_ignore_ascii_case(GPT_ESP) || self.ptype.eq_ignore_ascii_case(MBR_ESP)
    }

    pub fn is_bios_boot(&self) -> bool {
        self.ptype.eq_ignore_ascii_case(GPT_BIOS_BOOT)
    }
}

/// A partition table as sfdisk reads it.
#[derive(Debug, Clone)]
pub struct Table {
    pub label: Label,
    /// The first and last sector partitions may use.
    pub first: u64,
    pub last: u64,
    pub parts: Vec<Part>,
}

impl Table {
    /// Parses `sfdisk --json` output; `disk_sectors` bounds an MBR disk.
    pub fn parse(json: &str, disk_sectors: u64) -> Result<Self> {
        let d: Dump = serde_json::from_str(json).context("reading sfdisk --json output")?;
        let t = d.partitiontable;
        if let Some(s) = t.sectorsize {
            if s != SECTOR {
                bail!("the disk has {s}-byte sectors; terra handles 512-byte sectors only");
            }
        }
        let label = match t.label.as_str() {
            "gpt" => Label::Gpt,
            "dos" => Label::Mbr,
            other => bail!("a {other:?} partition table; terra handles gpt and dos (MBR)"),
        };
        let first = t.firstlba.unwrap_or(MIB_SECTORS).max(1);
        let last = t.lastlba.unwrap_or_else(|| disk_sectors.saturating_sub(1));
        let mut parts = t.partitions;
        parts.sort_by_key(|p| p.start);
        Ok(Self {
            label,
            first,
            last,
            parts,
        })
    }

    /// The first free run of `sectors`, aligned to 1 MiB, or `None`.
    pub fn free_run(&self, sectors: u64) -> Option<u64> {
        let align = |s: u64| s.div_ceil(MIB_SECTORS) * MIB_SECTORS;
        let mut at = align(self.first.max(MIB_SECTORS));
        for p in &self.parts {
            if at + sectors <= p.start {
                return Some(at);
            }
            at = at.max(align(p.end()));
        }
        (at + sectors <= self.last + 1).then_some(at)
    }

    /// The largest free run, aligned to 1 MiB, in sectors (for messages).
    pub fn largest_free(&self) -> u64 {
        let align = |s: u64| s.div_ceil(MIB_SECTORS) * MIB_SECTORS;
        let mut at = align(self.first.max(MIB_SECTORS));
        let mut best = 0;
        for p in &self.parts {
            best = best.max(p.start.saturating_sub(at));
            at = at.max(align(p.end()));
        }
        best.max((self.last + 1).saturating_sub(at))
    }

    pub fn esp(&self) -> Option<&Part> {
        self.parts.iter().find(|p| p.is_esp())
    }

    pub fn bios_boot(&self) -> Option<&Part> {
        self.parts.iter().find(|p| p.is_bios_boot())
    }
}

/// The size of a disk (image file or block device) in bytes.
pub fn disk_bytes(disk: &Path) -> Result<u64> {
    let mut f = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    // Seeking to the end works for files and block devices alike.
    f.seek(SeekFrom::End(0))
        .with_context(|| format!("reading the size of {}", disk.display()))
}

/// Reads the partition table; `Ok(None)` when the disk has none.
pub fn read(disk: &Path) -> Result<Option<Table>> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .stdin(Stdio::null())
        .output()
        .context("running sfdisk (util-linux's fdisk package)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("does not contain a recognized partition table") {
            return Ok(None);
        }
        bail!("sfdisk --json {}: {}", disk.display(), err.trim());
    }
    let json = String::from_utf8_lossy(&out.stdout);
    Table::parse(&json, disk_bytes(disk)? / SECTOR).map(Some)
}

/// Runs `sfdisk ARGS DISK` with `script` on stdin.
pub fn sfdisk(disk: &Path, args: &[&str], script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread"])
        .args(args)
        .arg(disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sfdisk (util-linux's fdisk package)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sfdisk {} {} with {script:?}: {}",
            args.join(" "),
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Reads `len` bytes at `offset` (short reads past the end are zeros).
pub fn read_at(disk: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut f = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf)?;
    buf.resize(len, 0);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT: &str = r#"{"partitiontable": {"label":"gpt","id":"X","device":"d.img","unit":"sectors",
      "firstlba":34,"lastlba":409566,"sectorsize":512,"partitions":[
      {"node":"d.img3","start":135168,"size":274399,"type":"0FC63DAF-8483-4772-8E79-3D69D8477DE4","uuid":"A","name":"terra"},
      {"node":"d.img1","start":2048,"size":2048,"type":"21686148-6449-6E6F-744E-656564454649","uuid":"B"},
      {"node":"d.img2","start":4096,"size":131072,"type":"C12A7328-F812-11D2-BA4B-00A0C93EC93B","uuid":"C"}]}}"#;

    #[test]
    fn reads_a_gpt_dump_in_disk_order() {
        let t = Table::parse(GPT, 409600).unwrap();
        assert_eq!(t.label, Label::Gpt);
        assert_eq!(t.parts[0].number(), Some(1));
        assert_eq!(t.bios_boot().unwrap().start, 2048);
        assert_eq!(t.esp().unwrap().number(), Some(2));
        assert_eq!(t.free_run(2048), None);
        assert_eq!(t.largest_free(), 0);
    }

    #[test]
    fn free_space_on_an_mbr_disk() {
        let json = r#"{"partitiontable": {"label":"dos","id":"0x1","device":"d","unit":"sectors",
          "sectorsize":512,"partitions":[{"node":"/dev/nvme0n1p1","start":2048,"size":10240,"type":"83"}]}}"#;
        let t = Table::parse(json, 204800).unwrap();
        assert_eq!(t.label, Label::Mbr);
        assert_eq!(t.parts[0].number(), Some(1));
        assert!(t.esp().is_none());
        assert_eq!(t.free_run(131072), Some(12288));
        assert_eq!(t.free_run(204800), None);
        assert_eq!(t.largest_free(), 204800 - 12288);
    }

    #[test]
    fn refuses_other_tables_and_sector_sizes() {
        let sun = r#"{"partitiontable": {"label":"sun","partitions":[]}}"#;
        assert!(Table::parse(sun, 1)
            .unwrap_err()
            .to_string()
            .contains("sun"));
        let big = r#"{"partitiontable": {"label":"gpt","sectorsize":4096,"partitions":[]}}"#;
        assert!(Table::parse(big, 1)
            .unwrap_err()
            .to_string()
            .contains("4096-byte"));
    }
}
