//! The Terra kernel for the tests: built by `scripts/build-kernel` (cached by
//! the hash of its inputs, so only the first run on a machine compiles), and
//! its initramfs: Terra's mkinitrd with no modules, everything is built in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::tools::{workspace_root, Tools};

/// One build of the Terra kernel (the directory `scripts/build-kernel` prints).
#[derive(Debug, Clone)]
pub struct TerraKernel {
    /// The output directory in the kernel cache.
    pub dir: PathBuf,
    /// `dir/bzImage`.
    pub image: PathBuf,
    /// `dir/config`: the full .config.
    pub config: PathBuf,
    /// The kernel release, e.g. `6.12.117-terra`.
    pub version: String,
    /// `dir/modules`: no modules, only `modules.builtin` (mkinitrd's
    /// `--modules-dir` for this kernel).
    pub modules_dir: PathBuf,
}

/// Runs `scripts/build-kernel ARGS` and returns the directory it prints.
fn build_kernel(args: &[&str]) -> Result<PathBuf> {
    let script = workspace_root().join("scripts/build-kernel");
    let out = Command::new(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            script.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(dir) = stdout.lines().last().map(PathBuf::from) else {
        bail!("{} printed no output directory", script.display());
    };
    Ok(dir)
}

/// The full .config of the Terra kernel (a few seconds: no compile).
pub fn config() -> Result<PathBuf> {
    let config = build_kernel(&["--config-only"])?.join("config");
    if !config.is_file() {
        bail!("scripts/build-kernel made no {}", config.display());
    }
    Ok(config)
}

/// The Terra kernel, built once per test binary (long the first time on a
/// machine: 15-25 minutes on 2 busy cores; instant from the cache).
pub fn kernel() -> Result<&'static TerraKernel> {
    static KERNEL: OnceLock<std::result::Result<TerraKernel, String>> = OnceLock::new();
    KERNEL
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn build() -> Result<TerraKernel> {
    let dir = build_kernel(&[])?;
    let version = std::fs::read_to_string(dir.join("version"))
        .with_context(|| format!("reading {}/version", dir.display()))?
        .trim()
        .to_string();
    let k = TerraKernel {
        image: dir.join("bzImage"),
        config: dir.join("config"),
        modules_dir: dir.join("modules"),
        dir,
        version,
    };
    if !k.image.is_file() {
        bail!("scripts/build-kernel made no {}", k.image.display());
    }
    Ok(k)
}

/// Terra's initramfs for this kernel: mkinitrd's default module set
/// (`server`: virtio, nvme, ahci, sd, xhci, usb-storage, overlay, ext4)
/// resolved against the kernel's `modules.builtin`: every one is built in,
/// so the image holds no module. `--explain`'s output is returned with it.
pub fn initramfs(tools: &Tools, kernel: &TerraKernel, dir: &Path) -> Result<(PathBuf, String)> {
    let output = dir.join("initramfs-terra-kernel.img");
    let mut cmd = Command::new(&tools.mkinitrd);
    cmd.arg("--kernel-version")
        .arg(&kernel.version)
        .arg("--modules-dir")
        .arg(&kernel.modules_dir)
        .arg("--explain")
        .arg("--init")
        .arg(&tools.init)
        .arg("--output")
        .arg(&output);
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() || !output.is_file() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((output, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// How the driver tests attach the terra disk: the buses the Terra kernel
/// must boot from with nothing but itself (no modules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// An NVMe controller (`nvme`): the disk is `/dev/nvme0n1`.
    Nvme,
    /// A USB stick (`usb-storage`) on an xHCI controller: `/dev/sda`.
    UsbStick,
}

impl Attach {
    /// The device node stage 1 finds the partition on.
    pub fn device(self) -> &'static str {
        match self {
            Attach::Nvme => "/dev/nvme0n1",
            Attach::UsbStick => "/dev/sda",
        }
    }

    /// QEMU arguments that attach `disk` this way.
    pub fn qemu_args(self, disk: &Path) -> Vec<String> {
        // Commas in QEMU option values are doubled.
        let file = disk.display().to_string().replace(',', ",,");
        let drive = format!("file={file},format=raw,if=none,id=terra");
        let mut args = vec!["-drive".to_string(), drive];
        match self {
            Attach::Nvme => args.extend(["-device".into(), "nvme,drive=terra,serial=terra".into()]),
            Attach::UsbStick => args.extend([
                "-device".into(),
                "qemu-xhci,id=xhci".into(),
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=terra,removable=on".into(),
            ]),
        }
        args
    }
}

/// The NICs the driver test gives a guest, as (QEMU device, the Linux driver
/// that must bind to it): e1000e (desktops, laptops, QEMU's q35 default) and
/// virtio-net (VMs and clouds), each on QEMU's user network.
pub const NICS: [(&str, &str); 2] = [("e1000e", "e1000e"), ("virtio-net-pci", "virtio_net")];

/// QEMU arguments for [`NICS`].
pub fn nic_args() -> Vec<String> {
    NICS.iter()
        .enumerate()
        .flat_map(|(i, (device, _))| {
            [
                "-netdev".to_string(),
                format!("user,id=net{i}"),
                "-device".to_string(),
                format!("{device},netdev=net{i}"),
            ]
        })
        .collect()
}
