//! VM tier: the ready disk image (`scripts/disk-image`: `terra disk
//! layout`, `terra install`, `terra bootloader install`) boots by itself,
//! with no `-kernel`, through the firmware and GRUB to containerd: the raw
//! image under UEFI (OVMF), the qcow2 under BIOS (SeaBIOS). Prints the
//! time from the firmware's start to containerd answering. Needs
//! `scripts/build` first.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Result};
use terra_qemu::Firmware;
use terra_tests::bootdisk::{
    boot_to_containerd, check_terra_kernel_boot, disk_image, disk_image_log,
};

/// Not a boot (root, about a minute): two builds from the same inputs are
/// the same bytes, the raw image and the qcow2, and e2fsck finds the
/// terra partition clean (the script checks); the script prints the sizes.
#[test]
fn two_builds_of_the_ready_disk_image_are_byte_identical() -> Result<()> {
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
        built.push((sha256(&raw)?, sha256(&qcow2)?));
    }
    if built[0] != built[1] {
        // Kept to look at (cmp -l a/terra.img b/terra.img shows where).
        let kept = dir.keep();
        bail!(
            "two builds differ (raw {} / {}, qcow2 {} / {}); the images are in {}",
            built[0].0,
            built[1].0,
            built[0].1,
            built[1].1,
            kept.display()
        );
    }
    println!("raw sha256 {}, qcow2 sha256 {}", built[0].0, built[0].1);
    Ok(())
}

fn sha256(f: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(f).output()?;
    ensure!(out.status.success(), "sha256sum {}", f.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
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
