//! `terra gc`

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use oci_spec::image::ImageManifest;
use terra_layout::record::check_name;
use terra_layout::{Metadata, Partition};

use super::Global;
use crate::digest::Digest;

/// Drop snapshots, blobs, partial downloads and boot files no version uses.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, a: GcArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Write)?;
    let part = &target.part;
    let meta = Metadata::load(&part.metadata())?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut drop_it = |path: &Path| -> Result<()> {
        let size = if path.is_dir() {
            crate::snapshot::dir_size(path)
        } else {
            fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        };
        count += 1;
        bytes += size;
        log::info!(
            "{}{}",
            if a.dry_run {
                "would remove "
            } else {
                "removing "
            },
            path.display()
        );
        if a.dry_run {
            return Ok(());
        }
        if path.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        }
        .with_context(|| format!("removing {}", path.display()))
    };

    // Only names Terra gives are candidates: anything else under these
    // directories was put there by someone else and stays.
    let mut keep: HashSet<String> = HashSet::new();
    for (name, r) in &meta.versions {
        keep.extend(r.lowers.iter().cloned());
        keep.insert(format!("ov/snapshots/rw-{name}"));
    }
    for e in read_dir(&part.snapshots_dir()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.strip_prefix("sha256-").is_some_and(is_hex_digest)
            || name
                .strip_prefix("rw-")
                .is_some_and(|v| check_name(v).is_ok());
        if ours && !keep.contains(&format!("ov/snapshots/{name}")) {
            drop_it(&e.path())?;
        }
    }
    // Blobs: manifests, configs and layers of installed versions.
    let used = used_blobs(part, &meta);
    for e in read_dir(&part.blobs_dir()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_hex_digest(&name) && !used.contains(&name) {
            drop_it(&e.path())?;
        }
    }
    for e in read_dir(&part.ingest_dir()) {
        if is_hex_digest(&e.file_name().to_string_lossy()) {
            drop_it(&e.path())?;
        }
    }
    crate::snapshot::Snapshots::new(part).clear_tmp()?;
    // Boot files of versions no longer installed: `boot/<name>/` holding
    // only kernels and initrds Terra copied. GRUB's and the EFI directory
    // are never a version's.
    for e in read_dir(&part.boot_dir()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !meta.versions.contains_key(&name) && crate::menu::is_boot_files_dir(&e.path(), &name) {
            drop_it(&e.path())?;
        }
    }
    log::info!(
        "{} {count} entries, {:.1} MB",
        if a.dry_run { "would free" } else { "freed" },
        bytes as f64 / 1e6
    );
    Ok(())
}

/// 64 lowercase hex digits: the names of blobs, downloads and layer
/// snapshots.
fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn read_dir(dir: &Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default()
}

/// Hex digests of every blob an installed version needs.
fn used_blobs(part: &Partition, meta: &Metadata) -> HashSet<String> {
    let mut used = HashSet::new();
    for r in meta.versions.values() {
        let Some(img) = &r.image else { continue };
        let mut add = |d: &str| {
            if let Ok(d) = Digest::parse(d) {
                used.insert(d.hex().to_string());
            }
        };
        add(&img.digest);
        if let Some(c) = &img.config {
            add(c);
        }
        let Ok(digest) = Digest::parse(&img.digest) else {
            continue;
        };
        let Ok(bytes) = fs::read(part.blob(digest.hex())) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes) else {
            continue;
        };
        add(m.config().digest().as_ref());
        for l in m.layers() {
            add(l.digest().as_ref());
        }
    }
    used
}
