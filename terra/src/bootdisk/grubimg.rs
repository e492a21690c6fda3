//! GRUB's images for a Terra disk, made with `grub-mkimage` from Debian's
//! `grub-pc-bin` (BIOS) and `grub-efi-amd64-bin` (UEFI) module dirs.
//!
//! Both images are monolithic: every module the menu needs is built in, so
//! nothing is written to the terra partition (GRUB reads the
//! `boot/grub/grub.cfg` that `terra` keeps there, and needs no module dir
//! beside it). Their embedded config finds the partition by its filesystem
//! UUID, never by disk number, and sets the prefix to its `boot/grub`;
//! GRUB's normal mode then reads `grub.cfg` from there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// What GRUB needs for Terra's menu on either firmware: partition tables,
/// ext4, the UUID/label search, normal mode and its script commands, the
/// Linux loader, and the serial terminal the menu is shown on.
const COMMON: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "ext2",
    "search",
    "search_fs_uuid",
    "search_label",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "boot",
];
/// BIOS: the disk driver.
const BIOS: &[&str] = &["biosdisk"];
/// UEFI: FAT (GRUB's own partition), and the framebuffer the kernel's
/// `console=tty0` uses on a machine with a screen.
const UEFI: &[&str] = &["fat", "efi_gop", "efi_uga"];

/// `boot.img`'s `kernel_sector` (grub-core/boot/i386/pc/boot.S,
/// `GRUB_BOOT_MACHINE_KERNEL_SECTOR`): the LBA of core.img's first sector.
const BOOT_KERNEL_SECTOR: usize = 0x5c;
/// The MBR's code area ends where the disk signature (0x1b8) and the
/// partition table (0x1be) begin: those stay as they are on the disk.
pub const MBR_CODE_END: usize = 0x1b8;
/// diskboot.img's first block list entry ends its first sector
/// (grub-core/boot/i386/pc/diskboot.S, `firstlist`): `start` (u64 LBA of
/// the rest of core.img), then `len` (u16) and `segment` (u16).
const DISKBOOT_BLOCKLIST_START: usize = 0x200 - 12;

/// GRUB's module dirs; `TERRA_GRUB_LIB` overrides `/usr/lib/grub` (tests).
pub fn grub_lib() -> PathBuf {
    std::env::var_os("TERRA_GRUB_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/grub"))
}

/// The config built into both images: find the terra partition by UUID.
pub fn early_config(uuid: &str) -> String {
    format!("search --no-floppy --fs-uuid --set=root {uuid}\nset prefix=($root)/boot/grub\n")
}

/// The two firmware targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Bios,
    Uefi,
}

impl Target {
    fn format(self) -> &'static str {
        match self {
            Target::Bios => "i386-pc",
            Target::Uefi => "x86_64-efi",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Target::Bios => "grub-pc-bin",
            Target::Uefi => "grub-efi-amd64-bin",
        }
    }

    /// The module dir for this target.
    pub fn dir(self) -> PathBuf {
        grub_lib().join(self.format())
    }
}

/// Runs grub-mkimage for `target` with the early config for `uuid`.
pub fn mkimage(target: Target, uuid: &str, scratch: &Path) -> Result<Vec<u8>> {
    let dir = target.dir();
    ensure!(
        dir.join("normal.mod").is_file(),
        "{} has no GRUB modules: install {} (and grub-common)",
        dir.display(),
        target.package()
    );
    let cfg = scratch.join(format!("early-{}.cfg", target.format()));
    std::fs::write(&cfg, early_config(uuid))?;
    let out = scratch.join(format!("grub-{}.img", target.format()));
    let extra = match target {
        Target::Bios => BIOS,
        Target::Uefi => UEFI,
    };
    let res = Command::new("grub-mkimage")
        .arg("-O")
        .arg(target.format())
        .arg("-d")
        .arg(&dir)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg("/boot/grub")
        .arg("-o")
        .arg(&out)
        .args(COMMON)
        .args(extra)
        .output()
        .context("running grub-mkimage (grub-common)")?;
    if !res.status.success() {
        bail!(
            "grub-mkimage -O {}: {}",
            target.format(),
            String::from_utf8_lossy(&res.stderr).trim()
        );
    }
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// GRUB's MBR code (`boot.img`) pointed at core.img at sector `core_lba`,
/// merged into the disk's own first sector `mbr`: only the code area
/// changes, the disk signature and the partition table stay.
pub fn mbr_with_boot_code(mbr: &[u8], boot_img: &[u8], core_lba: u64) -> Result<Vec<u8>> {
    ensure!(
        boot_img.len() == 512 && mbr.len() == 512,
        "boot.img is {} bytes, the MBR {}: both must be one sector",
        boot_img.len(),
        mbr.len()
    );
    let mut out = mbr.to_vec();
    out[..MBR_CODE_END].copy_from_slice(&boot_img[..MBR_CODE_END]);
    out[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    // A disk that had no MBR yet (an image file made by truncate) needs
    // the boot signature for the BIOS to run it.
    out[510] = 0x55;
    out[511] = 0xaa;
    Ok(out)
}

/// core.img placed at `core_lba`: its first sector (diskboot) reads the
/// rest from the next sector on, so its block list starts there.
/// grub-mkimage writes the length and the default start (sector 2, right
/// after an MBR gap's first sector); only the start changes.
pub fn core_at(core: &[u8], core_lba: u64) -> Result<Vec<u8>> {
    ensure!(
        core.len() > 512,
        "core.img is {} bytes: not a GRUB core image",
        core.len()
    );
    let mut out = core.to_vec();
    out[DISKBOOT_BLOCKLIST_START..DISKBOOT_BLOCKLIST_START + 8]
        .copy_from_slice(&(core_lba + 1).to_le_bytes());
    Ok(out)
}

/// Reads `boot.img` of the BIOS target.
pub fn boot_img() -> Result<Vec<u8>> {
    let p = Target::Bios.dir().join("boot.img");
    std::fs::read(&p).with_context(|| {
        format!(
            "reading {} (install {})",
            p.display(),
            Target::Bios.package()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mbr_keeps_its_table_and_points_at_core() {
        let mut mbr = vec![0u8; 512];
        mbr[0x1be..0x1ce].copy_from_slice(&[7; 16]);
        mbr[0x1b8..0x1bc].copy_from_slice(&[1, 2, 3, 4]);
        let boot = vec![0xeb; 512];
        let out = mbr_with_boot_code(&mbr, &boot, 2048).unwrap();
        assert_eq!(out[..0x5c], boot[..0x5c]);
        assert_eq!(out[0x5c..0x64], 2048u64.to_le_bytes());
        assert_eq!(out[0x64..MBR_CODE_END], boot[0x64..MBR_CODE_END]);
        assert_eq!(out[0x1b8..0x1bc], [1, 2, 3, 4]);
        assert_eq!(out[0x1be..0x1ce], [7; 16]);
        assert_eq!(out[510..], [0x55, 0xaa]);
    }

    #[test]
    fn core_reads_its_rest_from_the_next_sector() {
        let core = vec![0u8; 4096];
        let out = core_at(&core, 2048).unwrap();
        assert_eq!(out[0x1f4..0x1fc], 2049u64.to_le_bytes());
        assert_eq!(out.len(), 4096);
        assert!(core_at(&[0; 100], 1).is_err());
    }

    #[test]
    fn early_config_searches_by_uuid() {
        let c = early_config("0b1e-uuid");
        assert!(c.starts_with("search --no-floppy --fs-uuid --set=root 0b1e-uuid\n"));
        assert!(c.contains("set prefix=($root)/boot/grub"));
    }
}
