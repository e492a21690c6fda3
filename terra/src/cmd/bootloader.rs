//! `terra bootloader install DISK`: GRUB for UEFI and BIOS on a disk with
//! a terra partition (see `crate::bootdisk`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Global;
use crate::bootdisk::plan::{plan, Firmware};

/// Make a disk boot Terra: GRUB for UEFI and BIOS.
#[derive(Debug, Args)]
pub struct BootloaderArgs {
    #[command(subcommand)]
    pub command: BootloaderCommand,
}

#[derive(Debug, Subcommand)]
pub enum BootloaderCommand {
    Install(InstallArgs),
}

/// Install GRUB on DISK (a whole disk or a disk image file): for UEFI at
/// the removable-media path EFI/BOOT/BOOTX64.EFI of the EFI system
/// partition (made in free space when missing; no NVRAM entry needed), and
/// for BIOS in the MBR with its core image in the MBR gap or the GPT's
/// BIOS boot partition. GRUB finds the terra partition by its UUID and
/// reads the boot menu terra keeps there. Says what it writes first; safe
/// to run again.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The whole disk (/dev/sda, /dev/nvme0n1, disk.img), not a partition.
    pub disk: PathBuf,
    /// BIOS only: no EFI system partition is looked for or made.
    #[arg(long, conflicts_with = "uefi_only")]
    pub bios_only: bool,
    /// UEFI only: the MBR and the BIOS boot partition are left alone.
    #[arg(long)]
    pub uefi_only: bool,
    /// Say what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, a: BootloaderArgs) -> Result<()> {
    if g.root.is_some() || g.device.is_some() {
        bail!("terra bootloader takes the disk as its argument, not --root or --device");
    }
    match a.command {
        BootloaderCommand::Install(a) => install(g, a),
    }
}

fn install(g: &Global, a: InstallArgs) -> Result<()> {
    let fw = Firmware {
        bios: !a.uefi_only,
        uefi: !a.bios_only,
    };
    let scratch = tempfile::tempdir()?;
    let p = plan(&a.disk, &g.label, fw, scratch.path())?;
    print!("{}", p.describe());
    if a.dry_run {
        println!("(--dry-run: nothing written)");
        return Ok(());
    }
    p.apply()?;
    println!("{}: GRUB installed", a.disk.display());
    Ok(())
}
