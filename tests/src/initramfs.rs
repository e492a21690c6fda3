//! The initramfs images the boot tests use, built by Terra's own mkinitrd
//! (`target/release/mkinitrd` from `scripts/build`) for the cloud kernel.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use terra_qemu::floor::module_floor_init_elf;

use crate::disk::run;
use crate::tools::Tools;

/// Which initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `--module-set vm`: virtio and overlay, no shell.
    Vm,
    /// `--module-set vm --shell`: with busybox, so a fatal error starts the rescue shell.
    VmShell,
    /// `--module-set vm --compress lz4`: larger, faster to unpack.
    VmLz4,
    /// `--module-set vm --compress none`.
    VmPlain,
}

/// Builds one into `dir` and returns its path.
pub fn build(tools: &Tools, dir: &Path, flavor: Flavor) -> Result<PathBuf> {
    let (name, extra): (&str, Vec<&std::ffi::OsStr>) = match flavor {
        Flavor::Vm => ("initramfs-vm.img", vec![]),
        Flavor::VmShell => (
            "initramfs-vm-shell.img",
            vec![
                "--shell".as_ref(),
                "--busybox".as_ref(),
                tools.busybox.as_os_str(),
            ],
        ),
        Flavor::VmLz4 => (
            "initramfs-vm-lz4.img",
            vec!["--compress".as_ref(), "lz4".as_ref()],
        ),
        Flavor::VmPlain => (
            "initramfs-vm-plain.img",
            vec!["--compress".as_ref(), "none".as_ref()],
        ),
    };
    let output = dir.join(name);
    mkinitrd(tools, &tools.init, &output, &extra)?;
    Ok(output)
}

/// The module floor: an initramfs with the modules of [`Flavor::Vm`], in the
/// order Terra loads them, whose `/init` (the floor's hand-made ELF) only
/// loads them and prints the clock: what the kernel alone spends on the
/// modules. Uncompressed, so unpacking costs next to nothing. Returns the
/// image and the modules' names.
pub fn module_floor(tools: &Tools, dir: &Path) -> Result<(PathBuf, Vec<String>)> {
    let terra = build(tools, dir, Flavor::VmPlain)?;
    let paths = module_list(&terra)?;
    let init = dir.join("module-floor-init");
    std::fs::write(&init, module_floor_init_elf(&paths))?;
    let output = dir.join("module-floor.img");
    mkinitrd(
        tools,
        &init,
        &output,
        &["--compress".as_ref(), "none".as_ref()],
    )?;
    let names = paths
        .iter()
        .filter_map(|p| Path::new(p).file_stem())
        .map(|s| s.to_string_lossy().replace('-', "_"))
        .collect();
    Ok((output, names))
}

/// The module paths listed in `/etc/terra/modules` of an uncompressed image.
fn module_list(image: &Path) -> Result<Vec<String>> {
    let data = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let mut rest = &data[..];
    loop {
        let mut entry = cpio::NewcReader::new(rest)
            .with_context(|| format!("{}: expected an uncompressed newc cpio", image.display()))?;
        if entry.entry().is_trailer() {
            bail!("{}: no etc/terra/modules in it", image.display());
        }
        let is_list = entry.entry().name() == "etc/terra/modules";
        let mut text = String::new();
        if is_list {
            entry.read_to_string(&mut text)?;
            return Ok(text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
                .collect());
        }
        rest = entry.finish()?;
    }
}

/// Runs mkinitrd for the VM module set with `init` as `/init`.
fn mkinitrd(tools: &Tools, init: &Path, output: &Path, extra: &[&std::ffi::OsStr]) -> Result<()> {
    let mut cmd = Command::new(&tools.mkinitrd);
    cmd.arg("--kernel-version")
        .arg(&tools.kernel.version)
        .arg("--modules-dir")
        .arg(&tools.kernel.modules_dir)
        .args(["--module-set", "vm", "--init"])
        .arg(init)
        .arg("--output")
        .arg(output)
        .args(extra);
    run(&mut cmd)?;
    if !output.is_file() {
        bail!("{cmd:?} succeeded but wrote no {}", output.display());
    }
    Ok(())
}
