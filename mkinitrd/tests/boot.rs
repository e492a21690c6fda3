//! The image really boots: Debian's cloud kernel under QEMU (TCG) unpacks
//! our archive, runs /init (here a busybox script standing in for
//! terra-init) and the modules load in the order of /etc/terra/modules,
//! after which the virtio (and, with the server set, virtio-scsi) disks appear.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{mkinitrd, run};

const PROBE_INIT: &str = r#"#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo PROBE-BEGIN
/bin/busybox grep -v '^#' /etc/terra/modules | while read m opts; do
  /bin/busybox insmod $m $opts && echo "loaded $m"
done
echo "disks: $(/bin/busybox ls /sys/block | /bin/busybox tr '\n' ' ')"
echo PROBE-END
/bin/busybox poweroff -f
"#;

fn boot(set: &str, extra_qemu: &[&str]) -> Option<(String, String)> {
    let (kver, _) = common::cloud_kernel()?;
    let qemu = common::tool("qemu-system-x86_64")?;
    let timeout = common::tool("timeout")?;
    let kernel = Path::new("/boot").join(format!("vmlinuz-{kver}"));
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("probe-init");
    fs::write(&init, PROBE_INIT).unwrap();
    let img = dir.path().join("initrd.img");
    let (ok, _, err) = run(mkinitrd()
        .args(["-k", &kver, "--module-set", set, "--shell"])
        .arg("--init")
        .arg(&init)
        .arg("-o")
        .arg(&img));
    assert!(ok, "{err}");
    let disk = dir.path().join("disk.raw");
    fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(timeout)
        .arg("180")
        .arg(qemu)
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&img)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .args(
            extra_qemu
                .iter()
                .map(|a| a.replace("DISK", &disk.to_string_lossy())),
        )
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        console.contains("PROBE-END"),
        "the probe did not finish:\n{console}"
    );
    let listing = mkinitrd::list::read(&fs::read(&img).unwrap()).unwrap();
    let modules = listing
        .members
        .iter()
        .find(|m| m.name == "etc/terra/modules")
        .unwrap();
    Some((console, String::from_utf8_lossy(&modules.data).into_owned()))
}

/// Every module of the load order was loaded, in that order.
fn assert_loaded_in_order(console: &str, order: &str) {
    let loaded: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("loaded "))
        .collect();
    let expected: Vec<&str> = order.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(loaded, expected, "console:\n{console}");
}

#[test]
fn vm_set_boots_and_finds_the_virtio_disk() {
    let Some((console, order)) = boot("vm", &["-drive", "file=DISK,format=raw,if=virtio"]) else {
        return;
    };
    assert_loaded_in_order(&console, &order);
    assert!(console.contains("disks: vda"), "{console}");
}

#[test]
fn server_set_boots_and_finds_virtio_and_scsi_disks() {
    let Some((console, order)) = boot(
        "server",
        &[
            "-drive",
            "file=DISK,format=raw,if=virtio",
            "-device",
            "virtio-scsi-pci,id=scsi",
            "-drive",
            "file=DISK,format=raw,if=none,id=sd,file.locking=off,readonly=on",
            "-device",
            "scsi-hd,drive=sd",
        ],
    ) else {
        return;
    };
    assert_loaded_in_order(&console, &order);
    assert!(
        order.contains("virtio_scsi.ko") && order.contains("sd_mod.ko"),
        "{order}"
    );
    let disks = console
        .lines()
        .find(|l| l.contains("disks:"))
        .unwrap_or_default();
    assert!(disks.contains("vda") && disks.contains("sda"), "{console}");
}
