//! `terra bootloader install DISK`: a plan made and checked before
//! anything is written (every refusal happens here), then applied.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::esp::{self, Content, REMOVABLE_PATH};
use super::grubimg::{self, Target};
use super::mounted::{self, Place};
use super::table::{
    self, Label, Part, Table, GPT_BIOS_BOOT, GPT_ESP, MBR_ESP, MIB_SECTORS, SECTOR,
};
use super::{ext4_at, mib, terra_parts};

/// Size of an EFI system partition terra makes: room for GRUB (a few MiB)
/// and what firmware updates put there; FAT32 at 512-byte clusters.
pub const ESP_MIB: u64 = 64;
/// Size of a BIOS boot partition terra makes (core.img is well under it).
pub const BIOS_BOOT_MIB: u64 = 1;

/// Which firmware to install for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    pub bios: bool,
    pub uefi: bool,
}

/// What happens to the EFI system partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspStep {
    /// It exists with a FAT: add the file.
    Use(Part),
    /// It exists and was never formatted: format it, then add the file.
    Format(Part),
    /// Make it in free space at this sector, format it, add the file.
    Create { start: u64, sectors: u64 },
}

/// Where core.img goes for BIOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BiosStep {
    /// An MBR disk: the gap between the MBR and the first partition.
    MbrGap { sectors: u64 },
    /// A GPT disk's BIOS boot partition.
    Partition(Part),
    /// Make a BIOS boot partition in free space at this sector.
    Create { start: u64 },
}

/// Everything `install` will write, checked.
#[derive(Debug)]
pub struct Plan {
    pub disk: PathBuf,
    pub label: Label,
    pub terra: Part,
    pub uuid: String,
    pub esp: Option<(EspStep, Vec<u8>)>,
    pub bios: Option<(BiosStep, Vec<u8>)>,
}

fn part_name(p: &Part) -> String {
    match p.number() {
        Some(n) => format!("partition {n}"),
        None => format!("partition {}", p.node),
    }
}

/// Makes the plan: reads the table and the mounts, finds the terra
/// partition, decides where GRUB goes and makes its images. Writes nothing.
pub fn plan(disk: &Path, label: &str, fw: Firmware, scratch: &Path) -> Result<Plan> {
    let d = disk.display();
    if let Some(n) = mounted::partition_number(disk)? {
        bail!("{d} is partition {n} of a disk: give the whole disk (lsblk shows which), where GRUB goes before the partitions");
    }
    let Some(table) = table::read(disk)? else {
        if let Some(e) = ext4_at(disk, 0)? {
            bail!("{d} has no partition table: it is one ext4 filesystem (label {:?}) over the whole disk, which leaves no room for a boot loader; a disk for Terra has partitions (terra disk layout DISK makes them on a blank disk)", e.label);
        }
        bail!("{d} has no partition table and no terra partition: nothing to boot (terra disk layout DISK lays out a blank disk)");
    };
    let found = terra_parts(disk, &table.parts, label)?;
    let (terra, ext4) = match found.as_slice() {
        [] => bail!(
            "{d} has no partition with an ext4 filesystem labelled {label:?} ({} partitions: {}): nothing for GRUB to boot; mkfs.ext4 -L {label} on the partition meant for Terra, or terra disk layout on a blank disk",
            table.parts.len(),
            describe_parts(disk, &table)?
        ),
        [one] => (one.0.clone(), one.1.clone()),
        many => bail!(
            "{d} has {} partitions labelled {label:?} ({}): GRUB and stage 1 could boot either; relabel all but one (e2label)",
            many.len(),
            many.iter().map(|(p, _)| part_name(p)).collect::<Vec<_>>().join(", ")
        ),
    };
    let mounts = mounted::mounts(disk)?;
    if let Some(m) = mounts.iter().find(|m| m.place == Place::Disk) {
        bail!(
            "{d} is mounted as a whole at {}: unmount it first",
            m.mount_point
        );
    }
    // Only the terra partition may be mounted (a running Terra installs
    // its own boot loader): terra writes the partition table, the MBR, the
    // space before the first partition and the ESP, and anything else
    // mounted may be one of them or be changed under its user.
    let on_terra = |m: &mounted::Mount| match m.place {
        Place::Part(n) => Some(n) == terra.number(),
        Place::Offset(o) => o == terra.offset(),
        Place::Disk => false,
    };
    if let Some(m) = mounts.iter().find(|m| !on_terra(m)) {
        bail!("{d} is in use: something on it other than the terra partition is mounted at {}; unmount it first", m.mount_point);
    }

    let esp = if fw.uefi {
        let step = match table.esp() {
            Some(p) => {
                match esp::content(disk, p)? {
                    Content::Fat => EspStep::Use(p.clone()),
                    Content::Blank => EspStep::Format(p.clone()),
                    Content::Other => bail!("the EFI system partition of {d} ({}) holds something that is not FAT: not formatting it", part_name(p)),
                }
            }
            None => {
                let sectors = ESP_MIB * MIB_SECTORS;
                match (table.free_run(sectors), full_mbr(&table)) {
                    (Some(start), false) => EspStep::Create { start, sectors },
                    (_, true) => bail!("{d} has no EFI system partition and its MBR has no free entry for one: install for BIOS alone with --bios-only"),
                    (None, _) => bail!(
                        "{d} is too small for an EFI system partition: it needs {} free, the largest free space is {}; install for BIOS alone with --bios-only, or lay out a disk with room (terra disk layout)",
                        mib(sectors * SECTOR),
                        mib(table.largest_free() * SECTOR)
                    ),
                }
            }
        };
        Some((step, grubimg::mkimage(Target::Uefi, &ext4.uuid, scratch)?))
    } else {
        None
    };

    // A BIOS boot partition made too goes after the ESP made here.
    let mut table = table;
    if let Some((EspStep::Create { start, sectors }, _)) = &esp {
        table.parts.push(Part {
            node: String::new(),
            start: *start,
            size: *sectors,
            ptype: String::new(),
        });
        table.parts.sort_by_key(|p| p.start);
    }
    let bios = if fw.bios {
        let core = grubimg::mkimage(Target::Bios, &ext4.uuid, scratch)?;
        let core_sectors = (core.len() as u64).div_ceil(SECTOR);
        let step = match table.label {
            Label::Mbr => {
                let first = table.parts.iter().map(|p| p.start).min().unwrap_or(table.last + 1);
                let sectors = first.saturating_sub(1);
                if core_sectors > sectors {
                    bail!("{d}'s first partition starts at sector {first}: GRUB's core image needs {core_sectors} sectors before it (partitions from 1 MiB leave 2047)");
                }
                BiosStep::MbrGap { sectors }
            }
            Label::Gpt => match table.bios_boot() {
                Some(p) => {
                    if p.size < core_sectors {
                        bail!("the BIOS boot partition of {d} has {} sectors; GRUB's core image needs {core_sectors}", p.size);
                    }
                    BiosStep::Partition(p.clone())
                }
                None => match table.free_run(BIOS_BOOT_MIB * MIB_SECTORS) {
                    Some(start) => BiosStep::Create { start },
                    None => bail!("{d} has a GPT without a BIOS boot partition and no 1 MiB free for one: install for UEFI alone with --uefi-only"),
                },
            },
        };
        Some((step, core))
    } else {
        None
    };
    Ok(Plan {
        disk: disk.to_path_buf(),
        label: table.label,
        terra,
        uuid: ext4.uuid,
        esp,
        bios,
    })
}

fn full_mbr(t: &Table) -> bool {
    t.label == Label::Mbr && t.parts.len() >= 4
}

fn describe_parts(disk: &Path, t: &Table) -> Result<String> {
    let mut parts = Vec::new();
    for p in &t.parts {
        let what = match ext4_at(disk, p.offset())? {
            Some(e) => format!("ext4 labelled {:?}", e.label),
            None if p.is_esp() => "EFI system".to_string(),
            None if p.is_bios_boot() => "BIOS boot".to_string(),
            None => "no ext4".to_string(),
        };
        parts.push(format!("{} {what}", part_name(p)));
    }
    Ok(if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    })
}

impl Plan {
    /// What will be written, for a person to read before it happens.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let table = match self.label {
            Label::Gpt => "GPT",
            Label::Mbr => "MBR",
        };
        let _ = writeln!(
            s,
            "{} ({table}): GRUB will find the terra partition ({}) by its UUID {} and read the menu it has (boot/grub/grub.cfg); nothing on that partition is written",
            self.disk.display(),
            part_name(&self.terra),
            self.uuid
        );
        if let Some((step, img)) = &self.esp {
            let where_ = match step {
                EspStep::Use(p) => format!("the EFI system partition ({})", part_name(p)),
                EspStep::Format(p) => format!("the EFI system partition ({}), blank, formatted FAT first", part_name(p)),
                EspStep::Create { start, sectors } => format!(
                    "a new EFI system partition ({} at sector {start}, in free space), formatted FAT",
                    mib(sectors * SECTOR)
                ),
            };
            let _ = writeln!(
                s,
                "  UEFI: {} ({} KiB) on {where_}",
                REMOVABLE_PATH.join("/"),
                img.len() / 1024
            );
        }
        if let Some((step, core)) = &self.bios {
            let where_ = match step {
                BiosStep::MbrGap { .. } => {
                    "the gap between the MBR and the first partition (from sector 1)".to_string()
                }
                BiosStep::Partition(p) => format!("the BIOS boot partition ({})", part_name(p)),
                BiosStep::Create { start } => {
                    format!("a new BIOS boot partition (1 MiB at sector {start}, in free space)")
                }
            };
            let _ = writeln!(
                s,
                "  BIOS: GRUB's boot code in the MBR's first 440 bytes (the partition table stays); its core image ({} KiB) in {where_}",
                core.len() / 1024
            );
        }
        s
    }

    /// Writes it.
    pub fn apply(&self) -> Result<()> {
        let disk = &self.disk;
        if let Some((step, img)) = &self.esp {
            let (part, fresh) = match step {
                EspStep::Use(p) => (p.clone(), false),
                EspStep::Format(p) => (p.clone(), true),
                EspStep::Create { start, sectors } => {
                    let ty = match self.label {
                        Label::Gpt => GPT_ESP,
                        Label::Mbr => MBR_ESP,
                    };
                    (append(disk, *start, *sectors, ty)?, true)
                }
            };
            if fresh {
                esp::format(disk, &part)?;
            }
            // The same file again is not rewritten: a second run leaves
            // the FAT byte for byte as it was.
            if fresh || esp::read_file(disk, &part, &REMOVABLE_PATH)?.as_deref() != Some(img) {
                esp::write_file(disk, &part, &REMOVABLE_PATH, img)?;
            }
        }
        if let Some((step, core)) = &self.bios {
            let lba = match step {
                BiosStep::MbrGap { .. } => 1,
                BiosStep::Partition(p) => p.start,
                BiosStep::Create { start } => {
                    append(disk, *start, BIOS_BOOT_MIB * MIB_SECTORS, GPT_BIOS_BOOT)?.start
                }
            };
            let core = grubimg::core_at(core, lba)?;
            let mbr = table::read_at(disk, 0, 512)?;
            let mbr = grubimg::mbr_with_boot_code(&mbr, &grubimg::boot_img()?, lba)?;
            let mut f = OpenOptions::new()
                .write(true)
                .open(disk)
                .with_context(|| format!("opening {} to write", disk.display()))?;
            // The core image first: a run cut between the two leaves the
            // old MBR code, never new code pointing at a half-written core.
            f.seek(SeekFrom::Start(lba * SECTOR))?;
            f.write_all(&core)?;
            f.sync_data()?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&mbr)?;
            f.sync_data()?;
        }
        OpenOptions::new().write(true).open(disk)?.sync_all()?;
        Ok(())
    }
}

/// Adds a partition of `sectors` at `start` of type `ty`; returns it as
/// the table now lists it.
fn append(disk: &Path, start: u64, sectors: u64, ty: &str) -> Result<Part> {
    table::sfdisk(
        disk,
        &["--append"],
        &format!("start={start}, size={sectors}, type={ty}\n"),
    )?;
    let t = table::read(disk)?.context("the partition table sfdisk just wrote")?;
    t.parts
        .into_iter()
        .find(|p| p.start == start)
        .with_context(|| format!("no partition at sector {start} after sfdisk --append"))
}
