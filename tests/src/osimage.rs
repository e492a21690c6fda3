//! Terra's real OS image on a test disk, for the stage 2 tests.
//!
//! `osimage/build` makes the image from Debian packages (containerd, runc,
//! busybox-static, libc) plus the `terra` CLI and the test hook; this module
//! runs it once per test binary (it is cached between runs), lays its
//! unpacked layers out as a Terra partition with two versions whose handoff
//! is `supervise` (stage 2), and checks disk images with `e2fsck -fn`.
//!
//! The scenario of a boot is chosen with `osimage.hook=NAME` on the kernel
//! command line (see `osimage/rootfs/usr/lib/terra/hook`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use terra_layout::record::{Handoff, Metadata};
use terra_layout::Partition;

use crate::partition::PartitionTree;
use crate::tools::{target_dir, workspace_root};

/// The OS image as `osimage/build` left it.
#[derive(Debug, Clone)]
pub struct OsImage {
    /// The OCI image layout (`terra install oci:PATH:latest`).
    pub oci: PathBuf,
    /// The unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
}

/// Size of the test disks: the image's layers are about 180 MB.
pub const DISK_MIB: u64 = 512;

/// The `terra` CLI put into the image (`TERRA_CLI` overrides).
pub fn terra_cli() -> PathBuf {
    std::env::var_os("TERRA_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/terra"))
}

/// Builds the image (once per test binary; `osimage/build` caches by
/// package versions, so this is quick after the first run).
pub fn os_image() -> Result<&'static OsImage> {
    static IMAGE: OnceLock<std::result::Result<OsImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            build(&target_dir().join("terra-tests/osimage")).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn build(out: &Path) -> Result<OsImage> {
    let terra = terra_cli();
    if !terra.is_file() {
        bail!(
            "{} is missing: run scripts/build first (or set TERRA_CLI)",
            terra.display()
        );
    }
    let script = workspace_root().join("osimage/build");
    let output = Command::new(&script)
        .arg("--no-cargo")
        .arg("--terra-bin")
        .arg(&terra)
        .arg("--out")
        .arg(out)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let list = std::fs::read_to_string(out.join("layers.txt")).context("reading layers.txt")?;
    Ok(OsImage {
        oci: out.join("oci"),
        layers: list.lines().map(PathBuf::from).collect(),
    })
}

/// Lays the image out at `root` as versions `names` (the first is the
/// default), sharing its layers, with the `supervise` handoff.
pub fn partition_tree(root: &Path, image: &OsImage, names: &[&str]) -> Result<PathBuf> {
    let mut tree = PartitionTree::new(root)?;
    let mut lowers = Vec::new();
    for layer in &image.layers {
        let seed = format!("osimage-{}", layer.display());
        let rel = tree.layer(&seed, |dir| copy_tree(layer, dir))?;
        lowers.insert(0, rel); // top-most first
    }
    for (i, name) in names.iter().enumerate() {
        tree.version(name, &lowers, 1_000 * (i as u64 + 1))?;
    }
    if let Some(first) = names.first() {
        tree.default_version(first);
    }
    let root = tree.finish()?;
    // The test partition builder writes exec handoffs; these versions run stage 2.
    let part = Partition::new(&root);
    let mut meta = Metadata::load(&part.metadata())?;
    for rec in meta.versions.values_mut() {
        rec.handoff = Handoff::Supervise;
    }
    meta.store(&part.metadata())?;
    Ok(root)
}

/// `cp -a SRC/. DST/`: owners, modes, links and device nodes kept.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(format!("{}/", dst.display()))
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("cp -a {} {} failed", src.display(), dst.display());
    }
    Ok(())
}

/// The partition tree of the OS image with versions v1 (default) and v2,
/// made once per test binary under the target dir.
pub fn shared_tree() -> Result<&'static Path> {
    static TREE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = target_dir().join("terra-tests/osimage-tree");
        (|| -> Result<PathBuf> {
            if root.exists() {
                std::fs::remove_dir_all(&root)
                    .with_context(|| format!("removing {}", root.display()))?;
            }
            partition_tree(&root, os_image()?, &["v1", "v2"])
        })()
        .map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A fresh disk image of the shared tree at `image`.
pub fn disk(image: &Path) -> Result<PathBuf> {
    crate::disk::ext4_image(shared_tree()?, "terra", image, DISK_MIB)?;
    Ok(image.to_path_buf())
}

/// Random instants for power-cut tests: a small LCG (no crate for 20
/// numbers), seeded from `TERRA_CUT_SEED` or the clock; the seed is printed
/// so that a failed run can be replayed.
pub struct CutInstants(u64);

impl CutInstants {
    pub fn from_env() -> Self {
        let seed = std::env::var("TERRA_CUT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("power cuts: TERRA_CUT_SEED={seed}");
        Self(seed)
    }

    /// The next number of milliseconds, below `max_ms`.
    pub fn next_below(&mut self, max_ms: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % max_ms
    }
}

/// The boot records on the disk, read without mounting (debugfs).
pub fn records(disk: &Path) -> Result<terra_layout::Metadata> {
    let text = crate::disk::debugfs(disk, "cat /ov/metadata.db")?;
    Ok(terra_layout::Metadata::parse(&text)?)
}

/// After a power cut: `e2fsck -fp` (replays the journal, fixes only what a
/// crash may leave), then `e2fsck -fn` must find nothing.
pub fn replay_and_check(disk: &Path) -> Result<()> {
    let out = Command::new("e2fsck").arg("-fp").arg(disk).output()?;
    anyhow::ensure!(
        matches!(out.status.code(), Some(0 | 1)),
        "e2fsck -fp ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("e2fsck").arg("-fn").arg(disk).output()?;
    anyhow::ensure!(
        out.status.success(),
        "e2fsck -fn after the replay ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// Checks that the ext4 filesystem in `image` was left clean: `e2fsck -fn`
/// finds nothing and no journal needs replaying. Returns e2fsck's report.
pub fn fsck_clean(image: &Path) -> Result<String> {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .context("running e2fsck")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || report.contains("journal") {
        bail!("e2fsck -fn {} ({}):\n{report}", image.display(), out.status);
    }
    let head = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .context("running dumpe2fs")?;
    let head = String::from_utf8_lossy(&head.stdout);
    let state = head
        .lines()
        .find(|l| l.starts_with("Filesystem state:"))
        .unwrap_or("");
    let features = head
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or("");
    if !state.contains("clean")
        || state.contains("not clean")
        || features.contains("needs_recovery")
    {
        bail!(
            "{} was not unmounted cleanly: {state}; {features}",
            image.display()
        );
    }
    Ok(report)
}
