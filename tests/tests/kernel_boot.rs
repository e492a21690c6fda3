//! QEMU tier: the Terra kernel (scripts/build-kernel; built in, no modules)
//! with Terra's initramfs (mkinitrd, which finds every module built in) boots the
//! standard test partition to the handoff: the same scenario as the boot
//! path's default test (tests/boot.rs). The first run on a machine compiles
//! the kernel (about 10 minutes on 2 cores); later runs take it from the cache.

use anyhow::{ensure, Result};
use terra_qemu::VmConfig;
use terra_tests::boot::{boot_probe, lines_with, tail, Scenario};
use terra_tests::kernel;
use terra_tests::partition::hostname_of;

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
    let cfg = VmConfig::new(&k.image)
        .initrd(&initrd)
        .disk(&disk)
        .echo(std::env::var_os("TERRA_TEST_ECHO").is_some_and(|v| v == "1"));
    let (r, console) = boot_probe(&cfg)?;
    let t = tail(&console);

    ensure!(
        console
            .iter()
            .any(|l| l.contains(&format!("Linux version {} ", k.version))),
        "not the Terra kernel {}:\n{t}",
        k.version
    );
    ensure!(
        !lines_with(&console, "terra: found partition terra on /dev/vda").is_empty(),
        "no 'found partition' line:\n{t}"
    );
    ensure!(
        !lines_with(&console, "terra: booting version v1 (default)").is_empty(),
        "v1 is the default:\n{t}"
    );
    ensure!(
        !lines_with(&console, "terra: handoff: exec /sbin/init").is_empty(),
        "no handoff line:\n{t}"
    );
    ensure!(r.get("pid")? == "1", "the probe must be PID 1: {r:#?}");
    ensure!(r.get("hostname")? == hostname_of("v1"), "{r:#?}");
    let root = r.mount_at("/")?;
    ensure!(root.fstype == "overlay", "root is {root:?}");
    let vlc = r.mount_at("/var/lib/containerd")?;
    ensure!(
        vlc.fstype == "ext4" && vlc.source == "/dev/vda",
        "vlc mount {vlc:?}"
    );
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
