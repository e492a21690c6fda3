//! The initramfs images the boot tests use, built by Terra's own mkinitrd
//! (`target/release/mkinitrd` from `scripts/build`) for the cloud kernel.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use terra_layout::initramfs::{ModuleList, MODULES_FILE};
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
    mkinitrd(
        tools,
        &tools.kernel.modules_dir,
        &tools.init,
        &output,
        &extra,
    )?;
    Ok(output)
}

/// The modules of [`Flavor::Vm`], as paths in the initramfs, in the order
/// Terra loads them (its `/etc/terra/modules`).
pub fn vm_modules(tools: &Tools, dir: &Path) -> Result<Vec<String>> {
    module_list(&build(tools, dir, Flavor::VmPlain)?)
}

/// The module floor: an initramfs with `modules` (from [`vm_modules`]),
/// whose `/init` (the floor's hand-made ELF) only loads them in that order
/// and prints the clock: what the kernel alone spends on the modules.
/// Uncompressed, so unpacking costs next to nothing.
pub fn module_floor(tools: &Tools, dir: &Path, modules: &[String]) -> Result<PathBuf> {
    let init = dir.join("module-floor-init");
    std::fs::write(&init, module_floor_init_elf(modules))?;
    let output = dir.join("module-floor.img");
    mkinitrd(
        tools,
        &tools.kernel.modules_dir,
        &init,
        &output,
        &["--compress".as_ref(), "none".as_ref()],
    )?;
    Ok(output)
}

/// Terra's VM initramfs with the module signatures cut off: an experiment
/// that measures what checking them costs, not something Terra offers (the
/// kernel loads unsigned modules only with a taint, and refuses them under
/// Secure Boot lockdown). `modules` (from [`vm_modules`]) are copied from the
/// kernel's modules directory without their signatures into a modules
/// directory of their own, with the kernel's index files.
pub fn unsigned_vm(tools: &Tools, dir: &Path, modules: &[String]) -> Result<PathBuf> {
    let source = &tools.kernel.modules_dir;
    let unsigned = dir.join("unsigned-modules");
    std::fs::create_dir_all(&unsigned)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), unsigned.join(entry.file_name()))?;
        }
    }
    let prefix = format!("/lib/modules/{}/", tools.kernel.version);
    for m in modules {
        let rel = m
            .strip_prefix(&prefix)
            .with_context(|| format!("{m}: expected a path under {prefix}"))?;
        let signed = std::fs::read(source.join(rel))
            .with_context(|| format!("reading {}", source.join(rel).display()))?;
        let to = unsigned.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&to, without_signature(&signed).with_context(|| m.clone())?)?;
    }
    let output = dir.join("initramfs-vm-unsigned.img");
    mkinitrd(tools, &unsigned, &tools.init, &output, &[])?;
    Ok(output)
}

/// The magic that ends a signed module (scripts/sign-file.c).
const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

/// A module without its appended signature: the magic, before it a 12-byte
/// `struct module_signature` whose last 4 bytes are the signature's length
/// (big-endian), before that the signature.
fn without_signature(module: &[u8]) -> Result<&[u8]> {
    let body = module
        .strip_suffix(SIGNATURE_MAGIC)
        .context("expected a signed module (no \"~Module signature appended~\" at its end)")?;
    let info_at = body
        .len()
        .checked_sub(12)
        .context("expected a module_signature before the magic")?;
    let len_bytes: [u8; 4] = body[info_at + 8..info_at + 12].try_into()?;
    let sig_len = u32::from_be_bytes(len_bytes) as usize;
    let end = info_at
        .checked_sub(sig_len)
        .with_context(|| format!("a signature of {sig_len} bytes is longer than the module"))?;
    Ok(&module[..end])
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
        let is_list = entry.entry().name() == MODULES_FILE.trim_start_matches('/');
        let mut text = String::new();
        if is_list {
            entry.read_to_string(&mut text)?;
            // Read as stage 1 reads it.
            return Ok(ModuleList::parse(&text)
                .modules()
                .iter()
                .map(|m| m.path.clone())
                .collect());
        }
        rest = entry.finish()?;
    }
}

/// Runs mkinitrd for the VM module set from `modules_dir` with `init` as `/init`.
fn mkinitrd(
    tools: &Tools,
    modules_dir: &Path,
    init: &Path,
    output: &Path,
    extra: &[&std::ffi::OsStr],
) -> Result<()> {
    let mut cmd = Command::new(&tools.mkinitrd);
    cmd.arg("--kernel-version")
        .arg(&tools.kernel.version)
        .arg("--modules-dir")
        .arg(modules_dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_cut_off_at_its_recorded_length() {
        let mut module = b"ELF-body".to_vec();
        module.extend_from_slice(b"SIG!!");
        // struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], sig_len
        module.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        module.extend_from_slice(&5u32.to_be_bytes());
        module.extend_from_slice(SIGNATURE_MAGIC);
        assert_eq!(without_signature(&module).unwrap(), b"ELF-body");
    }

    #[test]
    fn an_unsigned_or_broken_module_is_an_error() {
        let err = without_signature(b"ELF-body").unwrap_err().to_string();
        assert!(err.contains("expected a signed module"), "{err}");
        let mut short = vec![0, 0, 0, 0, 0, 0, 0, 0];
        short.extend_from_slice(&99u32.to_be_bytes());
        short.extend_from_slice(SIGNATURE_MAGIC);
        let err = without_signature(&short).unwrap_err().to_string();
        assert!(err.contains("longer than the module"), "{err}");
    }
}
