//! Making a disk boot Terra on a real machine: `terra bootloader install
//! DISK` (GRUB for UEFI at the removable-media path and for BIOS, finding
//! the terra partition by UUID) and `terra disk layout DISK` (a blank disk
//! laid out in one step: BIOS boot, EFI system and `terra` partitions).
//!
//! Both look before they write: every refusal comes before the first
//! byte is written, and they never delete what Terra did not make (only a
//! blank disk is laid out; the boot loader adds partitions in free space,
//! formats only a blank EFI system partition, and replaces only the MBR's
//! code area, its own core image and `EFI/BOOT/BOOTX64.EFI`).

pub mod esp;
pub mod grubimg;
pub mod layout;
pub mod mounted;
pub mod plan;
pub mod table;

use std::path::Path;

use anyhow::Result;

use table::{read_at, Part};

/// What the ext4 superblock of a partition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4 {
    pub label: String,
    /// `s_uuid`, as GRUB's `search --fs-uuid` and blkid print it.
    pub uuid: String,
}

/// Reads the ext4 superblock at `offset` (1024 bytes into the partition;
/// linux/fs/ext4/ext4.h `struct ext4_super_block`: `s_magic` at 0x38,
/// `s_uuid[16]` at 0x68, `s_volume_name[16]` at 0x78).
pub fn ext4_at(disk: &Path, offset: u64) -> Result<Option<Ext4>> {
    let sb = read_at(disk, offset + 1024, 0x88)?;
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Ok(None);
    }
    let raw = &sb[0x78..0x88];
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let u = &sb[0x68..0x78];
    let hex = |r: std::ops::Range<usize>| hex::encode(&u[r]);
    Ok(Some(Ext4 {
        label: String::from_utf8_lossy(&raw[..len]).into_owned(),
        uuid: format!(
            "{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        ),
    }))
}

/// Partitions holding an ext4 filesystem labelled `label`.
pub fn terra_parts<'a>(
    disk: &Path,
    parts: &'a [Part],
    label: &str,
) -> Result<Vec<(&'a Part, Ext4)>> {
    let mut out = Vec::new();
    for p in parts {
        if let Some(e) = ext4_at(disk, p.offset())? {
            if e.label == label {
                out.push((p, e));
            }
        }
    }
    Ok(out)
}

/// `N MiB` for messages.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}
