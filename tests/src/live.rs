//! The live ISO (`scripts/iso`), driven like a person at the keyboard:
//! boot it from a CD or a USB stick, wait for the live shell on the serial
//! console, type the install commands, power off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use terra_qemu::{Firmware, Medium, Vm, VmConfig};

use crate::bootdisk::TO_CONTAINERD;
use crate::grubdisk::wait_for_text;
use crate::osimage::{os_image, terra_cli};
use crate::tools::workspace_root;

/// The ISO's size bar.
pub const MAX_ISO_BYTES: u64 = 150 * 1000 * 1000;

/// Runs `scripts/iso --out FILE` with the OS image of [`os_image`].
pub fn iso(out: &Path) -> Result<PathBuf> {
    iso_log(out)?;
    Ok(out.to_path_buf())
}

/// [`iso`], returning what the script printed on stderr (its log: the
/// ISO's size, the build time).
pub fn iso_log(out: &Path) -> Result<String> {
    let image = os_image()?;
    let script = workspace_root().join("scripts/iso");
    let res = Command::new(&script)
        .arg("--out")
        .arg(out)
        .arg("--oci")
        .arg(&image.oci)
        .env("TERRA_BIN", terra_cli())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !res.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            res.status,
            String::from_utf8_lossy(&res.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&res.stderr).into_owned())
}

/// How the ISO is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Cd,
    Usb,
}

/// Boots the ISO (`as_`) with `disks` attached, picks "Terra live shell"
/// if the menu's default is the installed system, waits for the shell,
/// types `commands` (one shell line) followed by a marker and `poweroff -f`,
/// and waits for the marker and the power-off. Returns the console.
pub fn live_shell(
    iso: &Path,
    as_: As,
    firmware: Firmware,
    disks: &[&Path],
    commands: &str,
) -> Result<Vec<String>> {
    let medium = match as_ {
        As::Cd => Medium::Cd(iso.to_path_buf()),
        As::Usb => Medium::Usb(iso.to_path_buf()),
    };
    let mut cfg = VmConfig::disk_boot()
        .medium(medium)
        .firmware(firmware)
        .memory_mb(1024)
        .echo(crate::boot::echo_requested());
    for d in disks {
        cfg = cfg.disk(d);
    }
    let mut vm = Vm::start(&cfg)?;
    wait_for_text(&vm, "Press enter to boot the selected OS", TO_CONTAINERD)?;
    // The live shell is the second entry; with no terra partition it is
    // the default already, and moving down from it stays on it.
    vm.send("\x1b[B\r")?;
    let medium_line = vm.wait_for("terra-live: ", TO_CONTAINERD)?;
    ensure!(
        medium_line.contains("mounted on /media/terra"),
        "{medium_line}"
    );
    vm.wait_for(
        "Enter 'help' for a list of built-in commands.",
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    // $((…)): the echoed command line is not the marker, only its output.
    vm.send(&format!(
        "{commands} && echo LIVE-DONE-$((40+2)); poweroff -f\n"
    ))?;
    vm.wait_for("LIVE-DONE-42", Duration::from_secs(300))
        .map_err(|e| anyhow::anyhow!("{e:#}\n(the live shell did not finish: {commands})"))?;
    vm.expect_poweroff(Duration::from_secs(60))?;
    Ok(vm.console.lines())
}

/// An ext4 disk labelled `images` holding the OS image's OCI layout as
/// `oci/` (a second version's source, as a stick a person brings).
pub fn images_disk(image: &Path) -> Result<()> {
    let tree = tempfile::tempdir()?;
    let src = &os_image()?.oci;
    let st = Command::new("cp")
        .arg("-r")
        .arg(src)
        .arg(tree.path().join("oci"))
        .status()?;
    ensure!(st.success(), "copying {}", src.display());
    crate::disk::ext4_image(tree.path(), "images", image, 160)
}

/// `terra list --json` of the terra partition (3) of a disk image, through
/// a loop device over its byte range.
pub fn list_json(disk: &Path) -> Result<serde_json::Value> {
    let out = Command::new("partx")
        .args(["-g", "-o", "START,SECTORS", "-n", "3"])
        .arg(disk)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [start, sectors] = nums[..] else {
        bail!("partx on {}: {text}", disk.display());
    };
    let lo = Command::new("losetup")
        .args(["--show", "-f", "-r", "-o"])
        .arg((start * 512).to_string())
        .arg("--sizelimit")
        .arg((sectors * 512).to_string())
        .arg(disk)
        .output()?;
    ensure!(
        lo.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&lo.stderr)
    );
    let dev = String::from_utf8_lossy(&lo.stdout).trim().to_string();
    let list = Command::new(terra_cli())
        .args(["--device", &dev, "list", "--json"])
        .output();
    let _ = Command::new("losetup").arg("-d").arg(&dev).status();
    let list = list?;
    ensure!(
        list.status.success(),
        "terra list: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    serde_json::from_slice(&list.stdout).context("terra list --json")
}

/// The sha256 of a file, in hex: how the reproducibility tests compare two
/// builds (and what they print, to compare with a build elsewhere).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}
