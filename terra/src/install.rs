//! `terra install`: resolve, fetch and unpack the layers (in parallel), copy
//! the kernel, then write the version record LAST, atomically, and the boot
//! menu. Killed at any point, earlier versions are untouched and running the
//! same command again finishes the job.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use terra_layout::boot_state::Activated;
use terra_layout::partition::{is_boot_own_name, BOOT_OWN_NAMES};
use terra_layout::record::{check_name, BootState, ImageInfo};
use terra_layout::{Handoff, Metadata, Partition, VersionRecord};

use crate::content::{Fetched, Store};
use crate::hooks::{CrashPoint, Hooks};
use crate::image::{Image, Layer, Platform};
use crate::progress::Progress;
use crate::snapshot::{dir_size, sync_fs, Snapshots};
use crate::source::Source;

/// What to install, from where, and how.
pub struct Request<'a> {
    /// The reference as the user wrote it (recorded in the version).
    pub reference: String,
    pub source: &'a dyn Source,
    /// The version's name; `None` when the reference has no tag.
    pub name: Option<String>,
    pub platform: Platform,
    pub handoff: Handoff,
    pub force: bool,
    /// Layers fetched and unpacked at once.
    pub jobs: usize,
    /// `--activate`: make the version the default, pending with this many
    /// tries, in the same metadata replace that records it.
    pub activate: Option<u32>,
    /// Told at each [`CrashPoint`] (tests stop the install there).
    pub hooks: Arc<dyn Hooks>,
}

/// Installs `req` onto `part` (whose lock the caller holds).
pub fn install(part: &Partition, req: &Request) -> Result<()> {
    let started = Instant::now();
    let installed_at = install_time()?;
    let store = Store::of(part)?.with_hooks(req.hooks.clone());
    let snapshots = Snapshots::new(part).with_hooks(req.hooks.clone());
    let image = crate::image::resolve(req.source, &store, &req.platform)
        .with_context(|| format!("resolving {}", req.reference))?;
    let name = req.name.clone().ok_or_else(|| {
        anyhow!(
            "{} has no tag to name the version: give --name",
            req.reference
        )
    })?;
    check_name(&name)?;
    if is_boot_own_name(&name) {
        bail!(
            "version name {name:?} is taken by the partition itself (boot/{name} is not a version's; reserved: {}): give another with --name",
            BOOT_OWN_NAMES.join(", ")
        );
    }
    if already_installed(part, req, &name, &image)? {
        if let Some(tries) = req.activate {
            // Installed before: activating it is what `terra default` does.
            let mut meta = Metadata::load(&part.metadata())?;
            let done = meta.activate(&name, tries)?;
            meta.store(&part.metadata())?;
            crate::menu::write(part, &meta)?;
            log_activated(&meta, &name, done);
        }
        return Ok(());
    }
    log::info!(
        "installing {} ({}, {} layers) as version {name}",
        req.reference,
        image.manifest_digest,
        image.layers.len()
    );
    let made = fetch_and_unpack(part, &store, &snapshots, req, &image).and_then(|made| {
        prepare_version(part, req, &name, &image, installed_at).map(|r| (made, r))
    });
    let (made, record) = match made {
        Ok(x) => x,
        Err(e) if is_no_space(&e) => return Err(give_back_space(part, &image, e)),
        Err(e) => return Err(e),
    };
    let size = record.size;
    let (meta, activated) = write_record(part, req, &name, record)?;
    let default = meta.default.as_deref() == Some(name.as_str());
    log::info!(
        "installed version {name}: {} new of {} layers, {:.1} MB, in {:.2} s{}",
        made,
        image.layers.len(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        if default && activated.is_none() {
            " (default)"
        } else {
            ""
        }
    );
    if let Some(done) = activated {
        log_activated(&meta, &name, done);
    }
    Ok(())
}

/// What `terra default` and `terra install --activate` say they did.
pub fn log_activated(meta: &Metadata, name: &str, done: Activated) {
    match done {
        Activated::Good => log::info!("default version: {name} (good)"),
        Activated::Ungated => log::info!(
            "default version: {name} (hands off to another init: no health gate, not counted)"
        ),
        Activated::Pending { tries } => log::info!(
            "default version: {name} (pending, {tries} tries; falls back to {})",
            meta.fallback.as_deref().unwrap_or("no good version")
        ),
    }
}

/// True when version `name` is installed from this very image already (and
/// its layers are there); an error when it is installed from another image
/// and `--force` was not given.
fn already_installed(part: &Partition, req: &Request, name: &str, image: &Image) -> Result<bool> {
    let meta = Metadata::load(&part.metadata())?;
    let Some(old) = meta.versions.get(name) else {
        return Ok(false);
    };
    let same = old
        .image
        .as_ref()
        .is_some_and(|i| i.digest == image.manifest_digest.as_ref());
    if same && !req.force && lowers_present(part, old) {
        // A run killed between the record and the menu left a stale menu:
        // every run leaves the menu matching the records.
        crate::menu::write(part, &meta)?;
        log::info!(
            "version {name} is already installed from {} (no change)",
            image.manifest_digest
        );
        return Ok(true);
    }
    if !same && !req.force {
        bail!(
            "version {name} is already installed from another image ({}); use --force to replace it or --name for another name",
            old.image.as_ref().map(|i| i.digest.as_str()).unwrap_or("unknown")
        );
    }
    Ok(false)
}

/// Everything the record will name, made and synced: the boot files copied
/// out of the layers, the writable upper and work dirs. Returns the record.
fn prepare_version(
    part: &Partition,
    req: &Request,
    name: &str,
    image: &Image,
    installed_at: u64,
) -> Result<VersionRecord> {
    let lowers: Vec<String> = image
        .layers
        .iter()
        .rev() // overlayfs: top-most first
        .map(|l| terra_layout::partition::layer_snapshot(l.chain_id.as_ref()))
        .collect();
    let (kernel, initrd) = crate::menu::copy_boot_files(part, name, &lowers)?;
    let (upper, work) = terra_layout::partition::version_rw(name);
    keep_aside_if_replaced(part, name, image)?;
    for d in [&upper, &work] {
        let p = part.resolve(d)?;
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    }
    let size = lowers
        .iter()
        .map(|l| dir_size(&part.root().join(l)))
        .sum::<u64>();
    sync_fs(part.root())?;
    Ok(VersionRecord {
        lowers,
        upper,
        work,
        handoff: req.handoff.clone(),
        kernel,
        initrd,
        image: Some(ImageInfo {
            reference: req.reference.clone(),
            digest: image.manifest_digest.to_string(),
            config: Some(image.config_digest.to_string()),
        }),
        installed_at,
        size,
        boot: BootState::default(),
    })
}

/// `--force` over a version installed from another image: its writable
/// layer (what people wrote in it) is moved to `ov/snapshots/kept-NAME-SECS`,
/// which nothing of terra deletes, and the new image starts with an empty
/// one. A reinstall of the same image keeps the layer in place.
fn keep_aside_if_replaced(part: &Partition, name: &str, image: &Image) -> Result<()> {
    let meta = Metadata::load(&part.metadata())?;
    let Some(old) = meta.versions.get(name) else {
        return Ok(());
    };
    if old
        .image
        .as_ref()
        .is_some_and(|i| i.digest == image.manifest_digest.as_ref())
    {
        return Ok(());
    }
    let rw = part.snapshots_dir().join(format!("rw-{name}"));
    if !rw.exists() {
        return Ok(());
    }
    let kept = part.snapshots_dir().join(format!("kept-{name}-{}", now()));
    fs::rename(&rw, &kept)
        .with_context(|| format!("moving {} to {}", rw.display(), kept.display()))?;
    terra_layout::atomic::fsync_dir(&part.snapshots_dir())
        .with_context(|| format!("syncing {}", part.snapshots_dir().display()))?;
    log::warn!(
        "version {name} is replaced by another image: its writable layer (what was written in it) is kept in {}; delete it when no longer needed",
        kept.display()
    );
    Ok(())
}

/// The record, last (everything it names is on disk), then the boot menu.
/// With `--activate`, the version is made pending in the same replace: a
/// crash leaves it either not installed or installed and pending, never
/// installed but not activated. Returns the metadata written and what
/// activating did.
fn write_record(
    part: &Partition,
    req: &Request,
    name: &str,
    record: VersionRecord,
) -> Result<(Metadata, Option<Activated>)> {
    let mut meta = Metadata::load(&part.metadata())?;
    meta.versions.insert(name.to_string(), record);
    if meta.default.is_none() && req.activate.is_none() {
        meta.default = Some(name.to_string());
    }
    let activated = match req.activate {
        Some(tries) => Some(meta.activate(name, tries)?),
        None => None,
    };
    req.hooks.reached(CrashPoint::Record);
    meta.store(&part.metadata())?;
    req.hooks.reached(CrashPoint::Menu);
    crate::menu::write(part, &meta)?;
    Ok((meta, activated))
}

fn lowers_present(part: &Partition, rec: &VersionRecord) -> bool {
    rec.lowers
        .iter()
        .all(|l| part.resolve(l).map(|p| p.is_dir()).unwrap_or(false))
}

/// Fetches and unpacks every layer whose snapshot is missing, `jobs` at a
/// time; each layer is fetched (hashed as it arrives), verified, then
/// unpacked into `tmp/`. Then one `syncfs` makes all of it durable, and only
/// then do the blobs and snapshots get their names. Returns how many
/// snapshots were made.
fn fetch_and_unpack(
    part: &Partition,
    store: &Store,
    snapshots: &Snapshots,
    req: &Request,
    image: &Image,
) -> Result<usize> {
    // Layers whose snapshot is missing, grouped by blob: an image may list
    // the same blob twice (empty layers); it is fetched once.
    let mut todo: Vec<Vec<&Layer>> = Vec::new();
    for l in &image.layers {
        if snapshots.has(l) {
            continue;
        }
        match todo.iter_mut().find(|g| g[0].digest == l.digest) {
            Some(g) => g.push(l),
            None => todo.push(vec![l]),
        }
    }
    // Biggest first: the longest job starts at once and the small ones fill in.
    todo.sort_by_key(|g| std::cmp::Reverse(g[0].size));
    let progress = Progress::new();
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    type Unpacked<'a> = Vec<(&'a Layer, Option<PathBuf>)>;
    let done: Mutex<Vec<(Fetched, Unpacked)>> = Mutex::new(Vec::new());
    let workers = req.jobs.clamp(1, todo.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(group) = todo.get(i) else { break };
                if errors.lock().map(|e| !e.is_empty()).unwrap_or(true) {
                    break; // stop early; the first error is reported
                }
                match one_blob(store, snapshots, req.source, group, &progress) {
                    Ok((fetched, unpacked)) => {
                        if let Ok(mut d) = done.lock() {
                            d.push((fetched, unpacked));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut errs) = errors.lock() {
                            errs.push(e);
                        }
                    }
                }
            });
        }
    });
    let done = done.into_inner().unwrap_or_default();
    let mut errs = errors.into_inner().unwrap_or_default();
    if !errs.is_empty() {
        for (_, unpacked) in &done {
            for t in unpacked.iter().filter_map(|(_, t)| t.as_ref()) {
                let _ = fs::remove_dir_all(t);
            }
        }
        return Err(errs.remove(0));
    }
    if done.is_empty() {
        return Ok(0);
    }
    // Paths through symlinks of lower layers need those layers unpacked.
    if let Err(e) = snapshots.settle(&image.layers) {
        for (_, unpacked) in &done {
            for t in unpacked.iter().filter_map(|(_, t)| t.as_ref()) {
                let _ = fs::remove_dir_all(t);
            }
        }
        return Err(e);
    }
    sync_fs(part.root())?;
    req.hooks.reached(CrashPoint::Publish);
    let mut made = 0;
    for (fetched, unpacked) in &done {
        store.commit(fetched)?;
        for (layer, tmp) in unpacked {
            if let Some(t) = tmp {
                snapshots.publish(layer, t)?;
                made += 1;
            }
        }
    }
    store.sync_names()?;
    snapshots.sync_names()?;
    Ok(made)
}

/// Fetches one blob and unpacks the layers that use it.
#[allow(clippy::type_complexity)]
fn one_blob<'a>(
    store: &Store,
    snapshots: &Snapshots,
    src: &dyn Source,
    group: &[&'a Layer],
    progress: &Progress,
) -> Result<(Fetched, Vec<(&'a Layer, Option<PathBuf>)>)> {
    let Some(first) = group.first() else {
        bail!("internal: an empty group of layers");
    };
    let short = first.digest.short();
    let bar = progress.bar(format!("fetch {short}"), first.size);
    let fetched = store
        .fetch_verified(src, &first.digest, first.size, &bar)
        .with_context(|| format!("fetching layer {}", first.digest))?;
    let mut unpacked = Vec::new();
    for layer in group {
        let bar = progress.bar(format!("unpack {short}"), layer.size);
        match snapshots
            .unpack_to_tmp(layer, fetched.path(), &bar)
            .with_context(|| format!("unpacking layer {}", layer.digest))
        {
            Ok(tmp) => unpacked.push((*layer, tmp)),
            Err(e) => {
                for t in unpacked
                    .iter()
                    .filter_map(|(_, t): &(&Layer, Option<PathBuf>)| t.as_ref())
                {
                    let _ = fs::remove_dir_all(t);
                }
                return Err(e);
            }
        }
    }
    Ok((fetched, unpacked))
}

/// Whether the partition ran out of space (or inodes, or quota).
fn is_no_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            // ENOSPC, EDQUOT
            io.kind() == std::io::ErrorKind::StorageFull
                || matches!(io.raw_os_error(), Some(28 | 122))
        })
    })
}

/// After running out of space: the partial downloads of this image and the
/// unpacks in `tmp/` are removed (keeping them to resume would keep the
/// partition full, and on a running system containerd shares it), and the
/// error says so and how to free more. Nothing any version uses is touched.
fn give_back_space(part: &Partition, image: &Image, e: anyhow::Error) -> anyhow::Error {
    let mut freed = 0u64;
    for l in &image.layers {
        let partial = part.ingest_dir().join(l.digest.hex());
        if let Ok(m) = fs::metadata(&partial) {
            if fs::remove_file(&partial).is_ok() {
                freed += m.len();
            }
        }
    }
    let tmp = Snapshots::new(part);
    let before = dir_size(&part.tmp_dir());
    if tmp.clear_tmp().is_ok() {
        freed += before.saturating_sub(dir_size(&part.tmp_dir()));
    }
    e.context(format!(
        "the partition is full: removed this install's partial downloads and unpacks ({:.1} MB); `terra gc` frees layers and blobs no version uses, `terra remove NAME` a version",
        freed as f64 / 1e6
    ))
}

/// The install time recorded for the version: now, or `SOURCE_DATE_EPOCH`
/// when it is set (reproducible-builds.org), so that an image built twice
/// from the same inputs (`scripts/disk-image`) records the same time.
pub fn install_time() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse().map_err(|_| {
            anyhow!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970; unset it to record the time of the install"
            )
        }),
        Err(_) => Ok(now()),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
