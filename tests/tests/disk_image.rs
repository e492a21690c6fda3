//! VM tier: the ready disk image (`scripts/disk-image`: `terra disk
//! layout`, `terra install`, `terra bootloader install`) boots by itself,
//! with no `-kernel`, through the firmware and GRUB to containerd: the raw
//! image under UEFI (OVMF), the qcow2 under BIOS (SeaBIOS). Prints the
//! time from the firmware's start to containerd answering. Needs
//! `scripts/build` first.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use terra_qemu::Firmware;
use terra_tests::bootdisk::{
    boot_to_containerd, check_terra_kernel_boot, disk_image, disk_image_log,
};

/// Everything before the terra partition (MBR, GPT, BIOS boot and EFI
/// system partitions: 1 + 1 + 64 MiB) and the last MiB (the backup GPT).
fn outside_terra_partition(disk: &Path) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(disk)?;
    let mut head = vec![0u8; 66 << 20];
    f.read_exact(&mut head)?;
    let mut tail = vec![0u8; 1 << 20];
    f.seek(SeekFrom::End(-(1 << 20)))?;
    f.read_exact(&mut tail)?;
    head.extend(tail);
    Ok(head)
}

/// The terra partition's ext4 UUID and the GPT's disk and partition GUIDs.
fn ids(disk: &Path) -> Result<String> {
    let out = Command::new("sfdisk").arg("--dump").arg(disk).output()?;
    let mut ids = String::from_utf8(out.stdout).context("sfdisk --dump")?;
    let ext4 = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value", "-O"])
        .arg((66u64 << 20).to_string())
        .arg(disk)
        .output()?;
    ids.push_str(&String::from_utf8_lossy(&ext4.stdout));
    Ok(ids.replace(&disk.display().to_string(), "DISK"))
}

/// Not a boot (root, about a minute): two builds from the same inputs have
/// the same GPT (disk and partition GUIDs), BIOS boot and EFI system
/// partitions byte for byte, and the same ext4 UUID; the script prints the
/// sizes. (The terra partition's bytes still differ:
/// docs/boot-menu.md says what.)
#[test]
fn two_builds_of_the_ready_disk_image_share_ids_and_boot_area() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("terra-diskimg-repro-")
        .tempdir()?;
    let mut built = Vec::new();
    for n in ["a", "b"] {
        let (raw, qcow2, log) = disk_image_log(&dir.path().join(n))?;
        for (kind, f) in [("raw:", &raw), ("qcow2:", &qcow2)] {
            ensure!(
                log.lines().any(|l| l.starts_with("disk-image: ")
                    && l.contains(kind)
                    && l.contains(&f.display().to_string())
                    && l.contains('M')),
                "scripts/disk-image printed no {kind} size line:\n{log}"
            );
        }
        println!("{n}: {log}");
        built.push((outside_terra_partition(&raw)?, ids(&raw)?));
    }
    ensure!(
        built[0].1 == built[1].1,
        "the ids differ:\n{}\n{}",
        built[0].1,
        built[1].1
    );
    ensure!(
        built[0].0 == built[1].0,
        "the boot area or the backup GPT differs between two builds"
    );
    Ok(())
}

#[test]
fn the_ready_disk_image_boots_under_uefi_and_bios_to_containerd() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("terra-diskimg-")
        .tempdir()?;
    let (raw, qcow2) = disk_image(&dir.path().join("out"))?;
    ensure!(raw.is_file() && qcow2.is_file());
    for (disk, firmware) in [(&raw, Firmware::Ovmf), (&qcow2, Firmware::SeaBios)] {
        let b = boot_to_containerd(disk, firmware, &dir.path().join(format!("{firmware:?}")))?;
        println!(
            "{firmware:?} {}: firmware start to containerd ready: {:.1} s",
            disk.display(),
            b.to_containerd.as_secs_f64()
        );
        check_terra_kernel_boot(&b.console)?;
    }
    Ok(())
}
