//! `terra unpack REF DIR`

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::source::RegistryArgs;
use super::Global;
use crate::content::Store;
use crate::hooks::NoHooks;
use crate::image::Platform;
use crate::reference::Reference;
use crate::unpack::Whiteouts;

/// Unpack a whole image flat into DIR, whiteouts applied.
///
/// To inspect an image or build a root filesystem. DIR must not exist or be
/// empty; when the image is refused, DIR is left as it was.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    pub reference: String,
    pub dir: PathBuf,
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(g: &Global, a: UnpackArgs) -> Result<()> {
    if g.root.is_some() || g.device.is_some() {
        bail!("unpack writes to DIR, not to a partition: --root and --device do not apply to it");
    }
    let reference = Reference::parse(&a.reference)?;
    check_dir(&a.dir)?;
    let source = a.registry.open(&reference)?;
    let parent = match a.dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    // Everything happens beside DIR (same filesystem) and DIR appears by rename.
    let work = tempfile::Builder::new()
        .prefix(".terra-unpack-")
        .tempdir_in(&parent)?;
    let store = Store::new(work.path().join("blobs"), work.path().join("ingest"))?;
    let image = crate::image::resolve(source.as_ref(), &store, &Platform::parse(&a.platform)?)?;
    let rootfs = work.path().join("rootfs");
    fs::create_dir(&rootfs)?;
    let progress = crate::progress::Progress::new();
    for layer in &image.layers {
        let short = layer.digest.short();
        let bar = progress.bar(format!("fetch {short}"), layer.size);
        let blob = store.fetch(source.as_ref(), &layer.digest, layer.size, &bar)?;
        let bar = progress.bar(format!("unpack {short}"), layer.size);
        let (mode, hooks) = (Whiteouts::Apply, &NoHooks);
        crate::snapshot::unpack_checked(&blob, layer, &rootfs, mode, Some(&bar), hooks)
            .with_context(|| format!("unpacking layer {}", layer.digest))?;
        bar.finish_with("unpacked");
    }
    fs::rename(&rootfs, &a.dir)
        .with_context(|| format!("moving the result to {}", a.dir.display()))?;
    log::info!(
        "unpacked {} ({} layers) into {}",
        reference,
        image.layers.len(),
        a.dir.display()
    );
    Ok(())
}

/// DIR, checked before any work: the result is renamed to DIR at the end,
/// which works only for a name that does not exist or an empty directory
/// that is not a mount point.
fn check_dir(dir: &Path) -> Result<()> {
    let m = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    if !m.is_dir() {
        bail!(
            "{} exists and is not a directory: give a new name or an empty directory",
            dir.display()
        );
    }
    if fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let parent = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let parent_dev = parent
        .parent()
        .map(|p| fs::metadata(p).map(|pm| pm.dev()))
        .transpose()?;
    if parent_dev.is_some_and(|d| d != m.dev()) || parent.parent().is_none() {
        bail!(
            "{} is a mount point: the unpacked image is renamed into place at the end, which cannot replace a mount point; give a new directory inside it",
            dir.display()
        );
    }
    Ok(())
}
