//! `terra unpack REF DIR`

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::source::RegistryArgs;
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

pub fn run(a: UnpackArgs) -> Result<()> {
    let reference = Reference::parse(&a.reference)?;
    let source = a.registry.open(&reference)?;
    if let Ok(mut rd) = fs::read_dir(&a.dir) {
        if rd.next().is_some() {
            bail!("{} exists and is not empty", a.dir.display());
        }
    }
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
