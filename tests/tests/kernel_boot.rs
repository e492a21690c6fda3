//! QEMU tier: the Terra kernel (scripts/build-kernel; built in, no modules)
//! with Terra's initramfs (mkinitrd, which finds every module built in) boots the
//! standard test partition to the handoff: the same scenario as the boot
//! path's default test (tests/boot.rs); and with no modules it finds the
//! hardware of real machines: NICs (e1000e, virtio-net) and the partition on
//! an NVMe disk in one boot, on a USB stick (xHCI, usb-storage) in another;
//! and it runs stage 2 on Terra's real OS image: containerd answers and runs
//! a container (the stage 2 scenario of tests/stage2.rs).
//! The first run on a machine compiles the kernel (15-25 minutes on 2
//! busy cores); later runs take it from the cache.

use std::time::Duration;

use anyhow::{ensure, Result};
use terra_qemu::Vm;
use terra_tests::boot::{boot_probe, check_default_boot, lines_with, tail, Scenario};
use terra_tests::kernel::{self, Attach, NICS};
use terra_tests::probe::Report;
use terra_tests::{osimage, partition};

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

/// Boots the Terra kernel with the standard partition on a disk attached
/// as `attach` (no virtio disk at all) and `extra` QEMU arguments; checks
/// that stage 1 found the partition there and handed off to v1.
fn boot_from(attach: Attach, extra: Vec<String>, append: &str) -> Result<(Report, Vec<String>)> {
    let s = Scenario::new()?;
    let k = kernel::kernel()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let (initrd, _) = kernel::initramfs(s.tools, k, s.dir.path())?;
    let cfg = s
        .vm_on(&k.image, &initrd, &[], append)
        .extra_args(attach.qemu_args(&disk))
        .extra_args(extra);
    let (r, console) = boot_probe(&cfg)?;
    let t = tail(&console);
    let found = format!("terra: found partition terra on {}", attach.device());
    ensure!(
        !lines_with(&console, &found).is_empty(),
        "no '{found}':\n{t}"
    );
    ensure!(
        !lines_with(&console, "terra: handoff: exec /sbin/init").is_empty(),
        "no handoff:\n{t}"
    );
    ensure!(r.get("pid")? == "1", "the probe must be PID 1: {r:#?}");
    ensure!(r.get("hostname")? == partition::hostname_of("v1"), "{r:#?}");
    ensure!(r.mount_at("/")?.fstype == "overlay", "{r:#?}");
    let vlc = r.mount_at("/var/lib/containerd")?;
    ensure!(vlc.source == attach.device(), "vlc mount {vlc:?}");
    Ok((r, console))
}

#[test]
fn terra_kernel_finds_e1000e_and_virtio_net_and_boots_from_nvme() -> Result<()> {
    let (r, console) = boot_from(Attach::Nvme, kernel::nic_args(), "probe.net")?;
    // probe.net=IFACE:DRIVER for each interface; lo has no driver.
    let drivers: Vec<&str> = r
        .all("net")
        .iter()
        .filter_map(|l| l.split_once(':').map(|(_, d)| d))
        .collect();
    for (device, driver) in NICS {
        ensure!(
            drivers.contains(&driver),
            "no interface bound to {driver} (QEMU {device}): {drivers:?}\n{}",
            tail(&console)
        );
    }
    Ok(())
}

#[test]
fn terra_kernel_boots_from_a_usb_stick_on_xhci() -> Result<()> {
    let (_, console) = boot_from(Attach::UsbStick, Vec::new(), "")?;
    let t = tail(&console);
    ensure!(
        console.iter().any(|l| l.contains("using xhci_hcd")),
        "the stick is not on the xHCI controller:\n{t}"
    );
    ensure!(
        console
            .iter()
            .any(|l| l.contains("USB Mass Storage device detected")),
        "usb-storage did not take the stick:\n{t}"
    );
    Ok(())
}

#[test]
fn terra_kernel_runs_stage_2_containerd_and_a_container() -> Result<()> {
    // The image's test hook `basic` (osimage/rootfs): ctr version, import and
    // run a busybox image, report the container host's mounts, power off.
    const HOOK: &str = "terra: hook: TERRA-HOOK ";
    let wait = Duration::from_secs(240);
    let s = Scenario::new()?;
    let k = kernel::kernel()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let (initrd, _) = kernel::initramfs(s.tools, k, s.dir.path())?;
    let cfg = s
        .vm_on(&k.image, &initrd, &[&disk], "osimage.hook=basic")
        .memory_mb(1024);
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: containerd is ready", wait)?;
    vm.wait_for(&format!("{HOOK}poweroff"), wait)?;
    vm.wait_for("terra: powering off", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    let c = vm.console.lines();
    let t = tail(&c);
    let marker = |name: &str| {
        let prefix = format!("{HOOK}{name}=");
        c.iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
    };
    ensure!(
        c.iter()
            .any(|l| l.contains(&format!("Linux version {} ", k.version))),
        "not the Terra kernel:\n{t}"
    );
    ensure!(
        c.iter()
            .any(|l| l == "terra: hook: Hello from a container on Terra"),
        "no line from the container:\n{t}"
    );
    ensure!(marker("container-exit").as_deref() == Some("0"), "{t}");
    ensure!(marker("cgroup2").as_deref() == Some("yes"), "{t}");
    ensure!(marker("lo").as_deref() == Some("up"), "{t}");
    for m in [
        "/dev/pts",
        "/dev/mqueue",
        "/sys/kernel/security",
        "/sys/fs/bpf",
    ] {
        ensure!(
            c.iter()
                .any(|l| l.contains(&format!("TERRA-HOOK mounted={m}"))),
            "{m} is not mounted:\n{t}"
        );
    }
    osimage::fsck_clean(&disk)?;
    Ok(())
}
