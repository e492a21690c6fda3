//! The programs the QEMU tests need, found once: QEMU, Debian's cloud kernel,
//! busybox-static, and Terra's own binaries built by `scripts/build`.
//!
//! A missing one is an error with what to do, never a skipped test: the
//! tests must not pass on a machine where they did not boot anything.
//! Tests never run cargo themselves (it would wait forever on the build lock
//! that `cargo test` holds).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use terra_qemu::Kernel;

/// Everything a QEMU test boots with.
#[derive(Debug, Clone)]
pub struct Tools {
    pub kernel: Kernel,
    /// A static busybox (test images and the rescue shell).
    pub busybox: PathBuf,
    /// The static terra-init (`TERRA_INIT` overrides).
    pub init: PathBuf,
    /// mkinitrd (`TERRA_MKINITRD` overrides).
    pub mkinitrd: PathBuf,
}

/// The tools, looked up once per test binary.
pub fn tools() -> Result<&'static Tools> {
    static TOOLS: OnceLock<std::result::Result<Tools, String>> = OnceLock::new();
    TOOLS
        .get_or_init(|| Tools::find().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

impl Tools {
    fn find() -> Result<Self> {
        let setup = "install it with scripts/setup";
        let qemu = terra_qemu::vm::qemu_binary();
        if which(&qemu).is_none() {
            bail!("{} not found: {setup} (qemu-system-x86)", qemu.display());
        }
        let kernel = Kernel::cloud().context(setup)?;
        let busybox =
            PathBuf::from(std::env::var_os("TERRA_BUSYBOX").unwrap_or("/bin/busybox".into()));
        if !busybox.is_file() {
            bail!("{} not found: {setup} (busybox-static)", busybox.display());
        }
        if !is_static_elf(&busybox)? {
            bail!(
                "{} is not static: {setup} (busybox-static)",
                busybox.display()
            );
        }
        let init = built(
            "TERRA_INIT",
            target_dir().join("x86_64-unknown-linux-gnu/init/terra-init"),
        )?;
        let mkinitrd = built("TERRA_MKINITRD", target_dir().join("release/mkinitrd"))?;
        Ok(Self {
            kernel,
            busybox,
            init,
            mkinitrd,
        })
    }
}

/// A binary of ours: the override from `var`, else the default path; it must exist.
fn built(var: &str, default: PathBuf) -> Result<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    if !path.is_file() {
        bail!(
            "{} is missing: run scripts/build first (or set {var})",
            path.display()
        );
    }
    Ok(path)
}

/// Finds a program on PATH (or checks a path given with a slash).
pub fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether an ELF64 file has no PT_INTERP program header (no dynamic loader).
pub fn is_static_elf(path: &Path) -> Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if data.get(..5) != Some(b"\x7fELF\x02") {
        bail!("{} is not a 64-bit ELF file", path.display());
    }
    let phoff = u64_at(0x20).unwrap_or(0) as usize;
    let phentsize = u16_at(0x36).unwrap_or(0) as usize;
    let phnum = u16_at(0x38).unwrap_or(0) as usize;
    const PT_INTERP: u32 = 3;
    let has_interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
            .unwrap_or(false)
    });
    Ok(!has_interp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_elves() {
        assert!(
            !is_static_elf(Path::new("/bin/sh")).unwrap(),
            "/bin/sh is dynamic"
        );
        let dir = tempfile::tempdir().unwrap();
        let floor = dir.path().join("init");
        std::fs::write(&floor, terra_qemu::floor::floor_init_elf()).unwrap();
        assert!(is_static_elf(&floor).unwrap());
    }

    #[test]
    fn missing_binaries_say_run_scripts_build() {
        let err = built("TERRA_TEST_UNSET_VAR", "/nonexistent/terra-init".into()).unwrap_err();
        assert!(err.to_string().contains("run scripts/build"), "{err}");
    }
}
