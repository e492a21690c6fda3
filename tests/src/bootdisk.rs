//! Disks that boot by themselves through the firmware and GRUB: the ready
//! disk image of `scripts/disk-image` (laid out by `terra disk layout`,
//! GRUB from `terra bootloader install`), booted under OVMF (UEFI) or
//! SeaBIOS with no `-kernel`, read on the serial console.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use terra_qemu::qmp::Qmp;
use terra_qemu::{Firmware, Vm, VmConfig};

use crate::grubdisk::wait_for_text;
use crate::osimage::{os_image, terra_cli};
use crate::tools::workspace_root;

/// From QEMU's start to containerd answering: about 15 s (OVMF) and 10 s
/// (SeaBIOS) here under TCG, the menu's 5 s included; the rest is room for
/// a loaded machine.
pub const TO_CONTAINERD: Duration = Duration::from_secs(180);

/// Runs `scripts/disk-image --out DIR` with the OS image of
/// [`os_image`]; returns the raw and qcow2 images.
pub fn disk_image(out: &Path) -> Result<(PathBuf, PathBuf)> {
    disk_image_log(out).map(|(raw, qcow2, _)| (raw, qcow2))
}

/// [`disk_image`], also returning what the script printed on stderr (its
/// log: the sizes, the build time).
pub fn disk_image_log(out: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let image = os_image()?;
    let script = workspace_root().join("scripts/disk-image");
    let res = Command::new(&script)
        .arg("--out")
        .arg(out)
        .arg("--oci")
        .arg(format!("{}:latest", image.oci.display()))
        .env("TERRA_BIN", terra_cli())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !res.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            script.display(),
            res.status,
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
    }
    Ok((
        out.join("terra.img"),
        out.join("terra.qcow2"),
        String::from_utf8_lossy(&res.stderr).into_owned(),
    ))
}

/// A boot that reached containerd.
pub struct Booted {
    pub console: Vec<String>,
    /// From QEMU's start (the firmware's first instruction) to
    /// `terra: containerd is ready` on the console.
    pub to_containerd: Duration,
}

/// Boots `disk` through `firmware` and GRUB (the default entry, nobody
/// types) to containerd answering, then ends it in order with ctrl-alt-del
/// (stage 2 reboots, and `-no-reboot` makes QEMU exit).
pub fn boot_to_containerd(disk: &Path, firmware: Firmware, scratch: &Path) -> Result<Booted> {
    let cfg = VmConfig::disk_boot().disk(disk).firmware(firmware);
    boot_version(cfg, scratch, None, "v1")
}

/// Boots `cfg` (a disk boot), waits for GRUB's menu of the disk and types
/// `keys` there, then waits for `version` to boot to containerd, pass its
/// health gate, and end in order with ctrl-alt-del.
pub fn boot_version(
    cfg: VmConfig,
    scratch: &Path,
    keys: Option<&str>,
    version: &str,
) -> Result<Booted> {
    std::fs::create_dir_all(scratch)?;
    let cfg = cfg
        .memory_mb(1024)
        .qmp(scratch)
        .echo(crate::boot::echo_requested());
    let mut vm = Vm::start(&cfg)?;
    wait_for_text(&vm, "Press enter to boot the selected OS", TO_CONTAINERD)?;
    if let Some(keys) = keys {
        vm.send(keys)?;
    }
    vm.wait_for(&format!("terra: booting version {version}"), TO_CONTAINERD)?;
    vm.wait_for("terra: containerd is ready", TO_CONTAINERD)?;
    let to_containerd = vm.elapsed();
    vm.wait_for("terra: health gate passed", TO_CONTAINERD)?;
    // Boot counting writes its mark right after the gate.
    std::thread::sleep(Duration::from_secs(1));
    let mut qmp = Qmp::connect(&scratch.join("qmp.sock"), Duration::from_secs(10))?;
    let keys: Vec<serde_json::Value> = ["ctrl", "alt", "delete"]
        .iter()
        .map(|k| serde_json::json!({"type": "qcode", "data": k}))
        .collect();
    qmp.execute("send-key", serde_json::json!({ "keys": keys }))?;
    vm.wait_for("terra: rebooting", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    Ok(Booted {
        console: vm.console.lines(),
        to_containerd,
    })
}

/// What every boot of the ready image shows: the Terra kernel that v1's
/// image carries, started by GRUB from `boot/v1/`, the partition found as
/// the disk's third partition, v1 booted.
pub fn check_terra_kernel_boot(console: &[String]) -> Result<()> {
    let t = crate::boot::tail(console);
    let has = |s: &str| console.iter().any(|l| l.contains(s));
    ensure!(
        has("Linux version ") && has("-terra "),
        "not the Terra kernel:\n{t}"
    );
    let cmdline = console
        .iter()
        .find(|l| l.contains("Command line: "))
        .context("no kernel command line on the console")?;
    ensure!(
        cmdline.contains("BOOT_IMAGE=/boot/v1/vmlinuz-") && cmdline.contains("terra.version=v1"),
        "{cmdline}"
    );
    ensure!(has("terra: found partition terra on /dev/vda3"), "{t}");
    ensure!(has("terra: booting version v1"), "{t}");
    ensure!(
        has("Terra v1 (default)"),
        "GRUB's menu does not show v1:\n{t}"
    );
    Ok(())
}

/// `target/release/terra ARGS`: (success, stdout + stderr).
pub fn terra(args: &[&str]) -> Result<(bool, String)> {
    let bin = terra_cli();
    let out = Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}
