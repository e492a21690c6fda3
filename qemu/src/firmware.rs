//! The machine's firmware: SeaBIOS (QEMU's default, a BIOS) or OVMF
//! (UEFI, Debian's `ovmf` package). OVMF keeps its variables in a second
//! flash image that the guest writes, so each VM gets its own copy of the
//! template, made when it starts and removed with it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Which firmware boots the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firmware {
    /// SeaBIOS, QEMU's built-in BIOS.
    #[default]
    SeaBios,
    /// OVMF (UEFI), code read-only and a private copy of the variables.
    Ovmf,
}

/// OVMF's code image; `TERRA_OVMF_CODE` overrides.
pub fn ovmf_code() -> PathBuf {
    std::env::var_os("TERRA_OVMF_CODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/OVMF/OVMF_CODE.fd"))
}

/// OVMF's variables template; `TERRA_OVMF_VARS` overrides.
pub fn ovmf_vars() -> PathBuf {
    std::env::var_os("TERRA_OVMF_VARS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/OVMF/OVMF_VARS.fd"))
}

/// Copies the variables template into `dir`; returns the copy.
pub fn private_vars(dir: &Path) -> Result<PathBuf> {
    let src = ovmf_vars();
    let code = ovmf_code();
    anyhow::ensure!(
        code.is_file() && src.is_file(),
        "{} or {} is missing: install ovmf (scripts/setup)",
        code.display(),
        src.display()
    );
    let dest = dir.join("OVMF_VARS.fd");
    std::fs::copy(&src, &dest).with_context(|| format!("copying {}", src.display()))?;
    Ok(dest)
}

/// QEMU's arguments for OVMF with the variables at `vars`.
pub fn ovmf_args(vars: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            ovmf_code().display()
        ),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ]
}
