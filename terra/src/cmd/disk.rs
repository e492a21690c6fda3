//! `terra disk layout DISK`: a blank disk laid out for Terra in one step
//! (see `crate::bootdisk::layout`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Global;

/// Prepare a disk for Terra.
#[derive(Debug, Args)]
pub struct DiskArgs {
    #[command(subcommand)]
    pub command: DiskCommand,
}

#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    Layout(LayoutArgs),
}

/// Lay out a blank disk: GPT with a BIOS boot partition (1 MiB), an EFI
/// system partition (64 MiB, FAT32) and the rest as an ext4 partition
/// labelled terra. Only a blank disk is written (no partition table, zeros
/// in its first and last MiB); a disk laid out so already is left alone.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// The whole disk (/dev/sda, /dev/nvme0n1, disk.img).
    pub disk: PathBuf,
    /// Say what would be made, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Derive the GPT's disk and partition GUIDs and the ext4 UUID and
    /// hash seed from TEXT, not at random: the same TEXT on the same disk
    /// gives the same bytes (reproducible images; with
    /// E2FSPROGS_FAKE_TIME for mkfs.ext4's dates). Never two disks of one
    /// machine with the same TEXT: their partitions would share UUIDs.
    #[arg(long, value_name = "TEXT")]
    pub ids_from: Option<String>,
    /// Make the terra partition from DIR, an installed Terra partition
    /// (mounted), through mkfs.ext4 -d rather than empty: the same tree
    /// and TEXT give the same bytes (scripts/disk-image).
    #[arg(long, value_name = "DIR")]
    pub populate: Option<PathBuf>,
}

pub fn run(g: &Global, a: DiskArgs) -> Result<()> {
    if g.root.is_some() || g.device.is_some() {
        bail!("terra disk takes the disk as its argument, not --root or --device");
    }
    match a.command {
        DiskCommand::Layout(a) => {
            let o = crate::bootdisk::layout::Options {
                ids_from: a.ids_from.as_deref(),
                populate: a.populate.as_deref(),
                dry_run: a.dry_run,
            };
            crate::bootdisk::layout::layout(&a.disk, &g.label, &o)?;
            Ok(())
        }
    }
}
