//! QEMU tier: the Terra kernel (scripts/build-kernel; built in, no modules)
//! with Terra's initramfs (mkinitrd, which finds every module built in) boots the
//! standard test partition to the handoff: the same scenario as the boot
//! path's default test (tests/boot.rs). The first run on a machine compiles
//! the kernel (about 10 minutes on 2 cores); later runs take it from the cache.

use anyhow::{ensure, Result};
use terra_tests::boot::{boot_probe, check_default_boot, lines_with, tail, Scenario};
use terra_tests::kernel;

#[test]
fn terra_kernel_boots_the_default_version_to_the_handoff() -> Result<()> {
    let s = Scenario::new()?;
    let k = kernel::kernel()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let (initrd, explain) = kernel::initramfs(s.tools, k, s.dir.path())?;
    // mkinitrd's server set, checked against modules.builtin: all built in.
    for module in [
        "virtio_pci",
        "virtio_blk",
        "nvme",
        "ahci",
        "sd_mod",
        "overlay",
        "ext4",
    ] {
        ensure!(
            explain.contains(&format!("{module}: built into the kernel")),
            "{module} is not built in according to mkinitrd:\n{explain}"
        );
    }
    let (r, console) = boot_probe(&s.vm_on(&k.image, &initrd, &[&disk], ""))?;
    let t = tail(&console);

    ensure!(
        console
            .iter()
            .any(|l| l.contains(&format!("Linux version {} ", k.version))),
        "not the Terra kernel {}:\n{t}",
        k.version
    );
    check_default_boot(&r, &console)?;
    // Everything is built in: the initramfs has no module, and init tried none.
    let list = std::process::Command::new(&s.tools.mkinitrd)
        .arg("--list")
        .arg(&initrd)
        .output()?;
    ensure!(list.status.success(), "mkinitrd --list failed: {list:?}");
    let list = String::from_utf8_lossy(&list.stdout);
    ensure!(!list.contains(".ko"), "modules in the initramfs:\n{list}");
    ensure!(
        lines_with(&console, "terra: cannot load module").is_empty(),
        "a module load was attempted:\n{t}"
    );
    Ok(())
}
