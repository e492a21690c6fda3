//! The initramfs images the boot tests use, built by Terra's own mkinitrd
//! (`target/release/mkinitrd` from `scripts/build`) for the cloud kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tools::Tools;

/// Which initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `--module-set vm`: virtio and overlay, no shell.
    Vm,
    /// `--module-set vm --shell`: with busybox, so a fatal error starts the rescue shell.
    VmShell,
}

/// Builds one into `dir` and returns its path.
pub fn build(tools: &Tools, dir: &Path, flavor: Flavor) -> Result<PathBuf> {
    let name = match flavor {
        Flavor::Vm => "initramfs-vm.img",
        Flavor::VmShell => "initramfs-vm-shell.img",
    };
    let output = dir.join(name);
    let mut cmd = Command::new(&tools.mkinitrd);
    cmd.arg("--kernel-version")
        .arg(&tools.kernel.version)
        .arg("--modules-dir")
        .arg(&tools.kernel.modules_dir)
        .args(["--module-set", "vm", "--init"])
        .arg(&tools.init)
        .arg("--output")
        .arg(&output);
    if flavor == Flavor::VmShell {
        cmd.arg("--shell").arg("--busybox").arg(&tools.busybox);
    }
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() || !output.is_file() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(output)
}
