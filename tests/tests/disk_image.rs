//! VM tier: the ready disk image (`scripts/disk-image`: `terra disk
//! layout`, `terra install`, `terra bootloader install`) boots by itself,
//! with no `-kernel`, through the firmware and GRUB to containerd: the raw
//! image under UEFI (OVMF), the qcow2 under BIOS (SeaBIOS). Prints the
//! time from the firmware's start to containerd answering. Needs
//! `scripts/build` first.

use anyhow::{ensure, Result};
use terra_qemu::Firmware;
use terra_tests::bootdisk::{boot_to_containerd, check_terra_kernel_boot, disk_image};

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
