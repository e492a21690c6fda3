//! VM tier: the original install flow, end to end, like a person at the
//! keyboard, under UEFI (OVMF, the ISO as a CD) and BIOS (SeaBIOS, the ISO
//! as a USB stick): boot the live ISO with a blank disk, lay it out,
//! install the OS image from the ISO, install the boot loader, power off;
//! boot the disk alone (GRUB's menu, the Terra kernel, containerd); install
//! a second version from an OCI layout on another disk and make it the
//! default, boot it, boot the first one from the menu. Then the ISO on the
//! installed machine boots the installed default and changes nothing but
//! what a normal boot writes. Needs `scripts/build` first.

use std::path::Path;

use anyhow::{ensure, Result};
use terra_qemu::{Firmware, Medium, VmConfig};
use terra_tests::bootdisk::{boot_to_containerd, boot_version, check_terra_kernel_boot};
use terra_tests::live::{
    images_disk, iso, iso_log, list_json, live_shell, sha256_file, As, MAX_ISO_BYTES,
};

const INSTALL: &str = "terra disk layout /dev/vda && terra --device /dev/vda3 install oci:/media/terra/oci:latest --name v1 && terra bootloader install /dev/vda";
const SECOND: &str = "! terra bootloader install /dev/vda3 && mkdir -p /mnt && mount -o ro /dev/vdb /mnt && terra --device /dev/vda3 install oci:/mnt/oci:latest --name v2 && terra --device /dev/vda3 default v2";
/// Down arrow and Enter on GRUB's serial menu: the second entry.
const SECOND_ENTRY: &str = "\x1b[B\r";

fn sparse(path: &Path, bytes: u64) -> Result<()> {
    std::fs::File::create(path)?.set_len(bytes)?;
    Ok(())
}

/// Everything on the disk before the terra partition (MBR, GPT, BIOS boot
/// and EFI system partitions): 1 + 1 + 64 MiB.
fn boot_area(disk: &Path) -> Result<Vec<u8>> {
    let mut all = std::fs::read(disk)?;
    all.truncate(66 * 1024 * 1024);
    Ok(all)
}

/// Not a boot (seconds): two builds of the ISO from the same inputs are the
/// same, byte for byte, and the script prints the ISO's size.
#[test]
fn two_builds_of_the_live_iso_are_byte_identical() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("terra-iso-repro-")
        .tempdir()?;
    let mut sums = Vec::new();
    for n in ["a.iso", "b.iso"] {
        let out = dir.path().join(n);
        let log = iso_log(&out)?;
        let size = std::fs::metadata(&out)?.len();
        ensure!(
            log.lines()
                .any(|l| l.starts_with(&format!("iso: {}: ", out.display())) && l.contains('M')),
            "scripts/iso printed no size line for {}:\n{log}",
            out.display()
        );
        let sum = sha256_file(&out)?;
        println!("{n}: {size} bytes, sha256 {sum}");
        sums.push(sum);
    }
    ensure!(
        sums[0] == sums[1],
        "two ISO builds from the same inputs differ: {} and {}",
        sums[0],
        sums[1]
    );
    Ok(())
}

fn full_flow(firmware: Firmware, as_: As, iso_on_installed: bool) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("terra-live-").tempdir()?;
    let p = |n: &str| dir.path().join(n);
    let iso = iso(&p("terra.iso"))?;
    let size = std::fs::metadata(&iso)?.len();
    println!("ISO: {size} bytes");
    ensure!(
        size <= MAX_ISO_BYTES,
        "the ISO is {size} bytes, over {MAX_ISO_BYTES}"
    );
    let disk = p("disk.img");
    sparse(&disk, 2 << 30)?;

    live_shell(&iso, as_, firmware, &[&disk], INSTALL)?;
    let b = boot_to_containerd(&disk, firmware, &p("boot1"))?;
    check_terra_kernel_boot(&b.console)?;
    println!(
        "{firmware:?}: firmware start to containerd: {:.1} s",
        b.to_containerd.as_secs_f64()
    );

    let images = p("images.img");
    images_disk(&images)?;
    let console = live_shell(&iso, as_, firmware, &[&disk, &images], SECOND)?;
    // A partition given where the disk belongs is refused, naming it.
    let t = terra_tests::boot::tail(&console);
    ensure!(
        console
            .iter()
            .any(|l| l.contains("/dev/vda3 is partition 3 of a disk")),
        "{t}"
    );
    let disk_only = || VmConfig::disk_boot().disk(&disk).firmware(firmware);
    let b = boot_version(disk_only(), &p("boot2"), None, "v2")?;
    ensure!(
        b.console.iter().any(|l| l.contains("Terra v2 (default)")),
        "GRUB's menu does not show v2 as the default"
    );
    // GRUB's entry names the version: stage 1 boots it as requested (a
    // pending try: the default just made).
    let t = terra_tests::boot::tail(&b.console);
    let requested = "terra: booting version v2 (requested";
    ensure!(b.console.iter().any(|l| l.contains(requested)), "{t}");
    let b = boot_version(disk_only(), &p("boot3"), Some(SECOND_ENTRY), "v1")?;
    let t = terra_tests::boot::tail(&b.console);
    let v1_kernel = "BOOT_IMAGE=/boot/v1/vmlinuz-";
    ensure!(b.console.iter().any(|l| l.contains(v1_kernel)), "{t}");

    if iso_on_installed {
        let area = boot_area(&disk)?;
        let records = list_json(&disk)?;
        let cfg = VmConfig::disk_boot()
            .medium(Medium::Cd(iso.clone()))
            .disk(&disk)
            .firmware(firmware);
        let b = boot_version(cfg, &p("boot4"), None, "v2")?;
        ensure!(
            b.console
                .iter()
                .any(|l| l.contains("terra: found partition terra on /dev/vda3")),
            "not the installed system"
        );
        ensure!(
            boot_area(&disk)? == area,
            "booting the ISO changed the boot area"
        );
        ensure!(
            list_json(&disk)? == records,
            "booting the ISO changed the records"
        );
    }
    Ok(())
}

#[test]
fn install_from_the_iso_as_a_cd_under_uefi() -> Result<()> {
    full_flow(Firmware::Ovmf, As::Cd, false)
}

#[test]
fn install_from_the_iso_as_a_usb_stick_under_bios_then_boot_the_iso_again() -> Result<()> {
    full_flow(Firmware::SeaBios, As::Usb, true)
}

/// The other medium under each firmware, to the live shell and its tools:
/// the ISO as a USB stick under UEFI, as a CD under BIOS.
#[test]
fn the_iso_boots_to_the_live_shell_as_the_other_medium_under_each_firmware() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("terra-live-").tempdir()?;
    let iso = iso(&dir.path().join("terra.iso"))?;
    let disk = dir.path().join("disk.img");
    sparse(&disk, 1 << 30)?;
    let check = "terra --version && mkfs.ext4 -V && sfdisk --version && test -f /media/terra/oci/index.json && terra bootloader install --dry-run /dev/vda; test $? = 1";
    for (firmware, as_) in [(Firmware::Ovmf, As::Usb), (Firmware::SeaBios, As::Cd)] {
        let console = live_shell(&iso, as_, firmware, &[&disk], check)?;
        let t = terra_tests::boot::tail(&console);
        let refusal = "has no partition table and no terra partition";
        ensure!(
            console.iter().any(|l| l.contains(refusal)),
            "{firmware:?} {as_:?}:\n{t}"
        );
    }
    Ok(())
}
