//! The `mkinitrd` command: build an initramfs, or list one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use mkinitrd::compress::{Compression, DEFAULT_ZSTD_LEVEL};
use mkinitrd::image::{self, FileSpec, Spec};
use mkinitrd::kmod::ModuleSet;
use mkinitrd::{list, output};

/// Builds Terra's initramfs: the static terra-init as /init, the kernel
/// modules it needs (with their dependencies, decompressed), and optionally
/// a busybox rescue shell. Reproducible: same inputs, same bytes.
#[derive(Debug, Parser)]
#[command(version, max_term_width = 100)]
pub struct Cli {
    /// The kernel release to build for, as in /lib/modules/KVER (e.g. 6.1.0-57-cloud-amd64).
    #[arg(
        short = 'k',
        long,
        value_name = "KVER",
        required_unless_present = "list"
    )]
    pub kernel_version: Option<String>,

    /// Where that kernel's modules are [default: /lib/modules/KVER].
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,

    /// A module to include (name or alias; `-` and `_` alike), with what it
    /// needs. Repeat it, or separate names with commas.
    #[arg(
        short = 'm',
        long = "module",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub modules: Vec<String>,

    /// The default set of modules: `vm` (virtio_pci, virtio_blk, overlay, virtio_net),
    /// `server` (also virtio_scsi, nvme, ahci, sd_mod, xhci_pci, usb_storage,
    /// uas, ext4, each if this kernel has it as a module) or `none`.
    #[arg(long, value_enum, value_name = "SET", default_value = "server")]
    pub module_set: ModuleSet,

    /// Parameters for a module, as in modprobe.d: "NAME OPTIONS" (e.g.
    /// "virtio_blk queue_depth=64"); init passes them to finit_module. Repeatable.
    #[arg(long, value_name = "\"NAME OPTIONS\"", value_parser = image::parse_module_options)]
    pub module_options: Vec<(String, String)>,

    /// The static init binary, stored as /init [default: terra-init next to
    /// mkinitrd, else the workspace's target/x86_64-unknown-linux-gnu/init/terra-init].
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,

    /// Add a rescue shell: a static busybox as /bin/busybox, /bin/sh and a few applets.
    #[arg(long)]
    pub shell: bool,

    /// The static busybox for --shell (implies --shell) [default: /bin/busybox, from busybox-static].
    #[arg(long, value_name = "PATH")]
    pub busybox: Option<PathBuf>,

    /// Copy a host file, symlink or directory into the initramfs, at DEST
    /// (absolute; default: the same path as SRC). Repeatable.
    #[arg(long = "file", value_name = "SRC[:DEST]")]
    pub files: Vec<FileSpec>,

    /// Where to write the image [default: ./initramfs-KVER.img]. Replaced
    /// atomically: a failed build leaves the previous file untouched.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How to compress the image.
    #[arg(long, value_enum, value_name = "HOW", default_value = "zstd")]
    pub compress: CompressKind,

    /// The zstd level (1-22).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ZSTD_LEVEL,
          value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,

    /// Print why each module is included (also stored in /etc/terra/modules.why).
    #[arg(long)]
    pub explain: bool,

    /// List the contents of an initramfs (any compression) and why its modules are there, then exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel_version", "modules", "init", "shell", "busybox", "files", "output", "explain"])]
    pub list: Option<PathBuf>,
}

/// The `--compress` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressKind {
    /// zstd (the kernel needs CONFIG_RD_ZSTD).
    Zstd,
    /// gzip (CONFIG_RD_GZIP).
    Gzip,
    /// lz4, legacy frames (CONFIG_RD_LZ4): larger, fastest to unpack at boot.
    Lz4,
    /// No compression.
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.list {
        Some(file) => run_list(file),
        None => run_build(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mkinitrd: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_list(file: &Path) -> Result<()> {
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let listing = list::read(&data).with_context(|| format!("reading {}", file.display()))?;
    std::io::stdout().write_all(listing.render().as_bytes())?;
    Ok(())
}

fn run_build(cli: &Cli) -> Result<()> {
    let started = Instant::now();
    let Some(kver) = cli.kernel_version.clone() else {
        bail!("--kernel-version is required");
    };
    if kver.is_empty() || kver.contains('/') {
        bail!("--kernel-version {kver:?} is not a kernel release name");
    }
    let spec = Spec {
        modules_dir: cli
            .modules_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/lib/modules").join(&kver)),
        modules: cli.modules.clone(),
        module_set: cli.module_set,
        module_options: cli.module_options.iter().cloned().collect(),
        init: match &cli.init {
            Some(path) => path.clone(),
            None => default_init()?,
        },
        busybox: match (&cli.busybox, cli.shell) {
            (Some(path), _) => Some(path.clone()),
            (None, true) => Some(PathBuf::from("/bin/busybox")),
            (None, false) => None,
        },
        files: cli.files.clone(),
        mtime: source_date_epoch()?,
        kernel_version: kver.clone(),
    };
    let output = cli
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("initramfs-{kver}.img")));
    let compression = match cli.compress {
        CompressKind::Zstd => Compression::Zstd(cli.zstd_level),
        CompressKind::Gzip => Compression::Gzip,
        CompressKind::Lz4 => Compression::Lz4,
        CompressKind::None => Compression::None,
    };

    let image = image::build(&spec)?;
    if cli.explain {
        print!("{}", image.modules.why_text());
    }
    let cpio = image.archive.write_newc(Vec::new())?;
    let bytes = compression.compress(&cpio)?;
    let written = output::write_image(&output, &bytes)?;
    eprintln!(
        "mkinitrd: wrote {}: {} bytes ({}; {} uncompressed), {} entries, {} modules, in {} ms",
        written.display(),
        bytes.len(),
        compression.describe(),
        cpio.len(),
        image.archive.len(),
        image.modules.load.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// SOURCE_DATE_EPOCH (reproducible-builds.org) or 0.
fn source_date_epoch() -> Result<u32> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds (0..2^32)")
        }),
        _ => Ok(0),
    }
}

/// terra-init next to this executable, else where scripts/build puts it.
fn default_init() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("terra-init"));
        // target/release/mkinitrd -> target/x86_64-unknown-linux-gnu/init/terra-init
        candidates.push(dir.join("../x86_64-unknown-linux-gnu/init/terra-init"));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/x86_64-unknown-linux-gnu/init/terra-init"),
    );
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "no init found; looked for {} (build it with scripts/build, or pass --init PATH)",
        looked.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_command_line() {
        let cli = Cli::try_parse_from([
            "mkinitrd",
            "-k",
            "6.1.0",
            "-m",
            "nvme,ahci",
            "--module",
            "fs-overlay",
            "--module-set",
            "vm",
            "--shell",
            "--file",
            "/etc/hostname",
            "--file",
            "x.conf:/etc/x.conf",
            "--compress",
            "gzip",
            "-o",
            "out.img",
            "--explain",
        ])
        .unwrap();
        assert_eq!(cli.kernel_version.as_deref(), Some("6.1.0"));
        assert_eq!(cli.modules, ["nvme", "ahci", "fs-overlay"]);
        assert_eq!(cli.module_set, ModuleSet::Vm);
        assert!(cli.shell && cli.explain);
        assert_eq!(cli.files[0].dest, "/etc/hostname");
        assert_eq!(cli.files[1].src, PathBuf::from("x.conf"));
        assert_eq!(cli.compress, CompressKind::Gzip);
        assert_eq!(cli.zstd_level, DEFAULT_ZSTD_LEVEL);
    }

    #[test]
    fn rejects_bad_combinations() {
        assert!(
            Cli::try_parse_from(["mkinitrd"]).is_err(),
            "kernel version required"
        );
        assert!(Cli::try_parse_from(["mkinitrd", "--list", "x", "-k", "1"]).is_err());
        assert!(Cli::try_parse_from(["mkinitrd", "--list", "x"]).is_ok());
        assert!(Cli::try_parse_from(["mkinitrd", "-k", "1", "--file", "rel.conf"]).is_err());
        assert!(Cli::try_parse_from(["mkinitrd", "-k", "1", "--zstd-level", "23"]).is_err());
        assert!(Cli::try_parse_from(["mkinitrd", "-k", "1", "--module-set", "desktop"]).is_err());
    }
}
