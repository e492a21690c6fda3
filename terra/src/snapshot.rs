//! The snapshot store: each layer unpacked once into
//! `ov/snapshots/sha256-<chain id>`: decompress (streamed), hash the tar
//! against the config's diff_id, unpack into a temp dir under `tmp/`, flush
//! the filesystem, then rename into place. A crash leaves only a temp dir,
//! which the next install clears.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use terra_layout::Partition;

use crate::digest::HashingReader;
use crate::hooks::{Hooks, NoHooks};
use crate::image::{Compression, Layer};
use crate::progress::Bar;
use crate::unpack::{unpack, Stats, Whiteouts};

/// Opens a layer blob as the uncompressed tar stream.
pub fn open_layer<'a>(
    blob: &Path,
    compression: Compression,
    bar: Option<&'a Bar>,
) -> Result<Box<dyn Read + Send + 'a>> {
    let file = File::open(blob).with_context(|| format!("opening {}", blob.display()))?;
    let counted = Counted {
        inner: BufReader::with_capacity(1 << 20, file),
        bar,
    };
    Ok(match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::bufread::MultiGzDecoder::new(counted),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            1 << 18,
            zstd::stream::read::Decoder::with_buffer(counted).context("starting zstd")?,
        )),
    })
}

/// Counts compressed bytes read, for the unpack progress bar.
struct Counted<'a, R> {
    inner: R,
    bar: Option<&'a Bar>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Counted<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        if let Some(b) = self.bar {
            b.inc(n as u64);
        }
        self.inner.consume(n)
    }
}

/// Some writers (umoci 0.4) end a layer right after the last file's data,
/// without the padding and the two zero blocks; Go's reader accepts that, the
/// tar crate does not. After the real end this adds the missing zeros. They
/// are outside the hashing reader, so the diff_id check still sees exactly
/// the layer's bytes (a layer cut short still fails it).
struct EndPad<R> {
    inner: R,
    count: u64,
    pad: Option<u64>,
}

impl<R> EndPad<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            count: 0,
            pad: None,
        }
    }
}

impl<R: Read> Read for EndPad<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.count += n as u64;
                return Ok(n);
            }
            self.pad = Some(self.count.next_multiple_of(512) - self.count + 1024);
        }
        let left = self.pad.unwrap_or(0);
        let n = (left as usize).min(buf.len());
        buf[..n].fill(0);
        self.pad = Some(left - n as u64);
        Ok(n)
    }
}

/// Unpacks `blob` into `dir` (existing), checking the diff_id.
pub fn unpack_checked(
    blob: &Path,
    layer: &Layer,
    dir: &Path,
    mode: Whiteouts,
    bar: Option<&Bar>,
    hooks: &dyn Hooks,
) -> Result<Stats> {
    let tar = open_layer(blob, layer.compression, bar)?;
    let (stats, rest) = unpack(EndPad::new(HashingReader::new(tar)), dir, mode, hooks)?;
    let mut rest = rest.inner;
    // Trailing zero blocks after the tar's end still count in the digest.
    io::copy(&mut rest, &mut io::sink()).context("reading the end of the layer")?;
    let (got, _) = rest.finish();
    if got != layer.diff_id {
        bail!(
            "layer {}: uncompressed sha256 is {got}; the config's diff_id is {}",
            layer.digest,
            layer.diff_id
        );
    }
    Ok(stats)
}

/// The snapshots of a partition (`ov/snapshots/`), made through `tmp/`.
pub struct Snapshots {
    root: PathBuf,
    snapshots: PathBuf,
    tmp: PathBuf,
    /// Told at the unpack crash point.
    hooks: Arc<dyn Hooks>,
    /// Per unpacked temp dir: the directories its unpack created without a
    /// tar entry, for [`Snapshots::settle`].
    implicit: Mutex<HashMap<PathBuf, Vec<PathBuf>>>,
}

impl Snapshots {
    pub fn new(part: &Partition) -> Self {
        Self {
            root: part.root().to_path_buf(),
            snapshots: part.snapshots_dir(),
            tmp: part.tmp_dir(),
            hooks: Arc::new(NoHooks),
            implicit: Mutex::default(),
        }
    }

    /// The same store, telling `hooks` when an unpack reaches its crash point.
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Where `layer`'s snapshot lives.
    pub fn dir(&self, layer: &Layer) -> PathBuf {
        self.root.join(terra_layout::partition::layer_snapshot(
            layer.chain_id.as_ref(),
        ))
    }

    /// Whether `layer` is unpacked already.
    pub fn has(&self, layer: &Layer) -> bool {
        self.dir(layer).is_dir()
    }

    /// Unpacks `layer` into `tmp/unpack-<chain id>` unless its snapshot
    /// exists; returns the temp dir, to [`Snapshots::publish`] once the
    /// filesystem is synced.
    pub fn unpack_to_tmp(&self, layer: &Layer, blob: &Path, bar: &Bar) -> Result<Option<PathBuf>> {
        if self.has(layer) {
            bar.finish_with("already unpacked");
            return Ok(None);
        }
        let tmp = self
            .tmp
            .join(format!("{TMP_PREFIX}{}", layer.chain_id.hex()));
        if fs::symlink_metadata(&tmp).is_ok() {
            fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let hooks = self.hooks.as_ref();
        match unpack_checked(blob, layer, &tmp, Whiteouts::Overlay, Some(bar), hooks) {
            Ok(stats) => {
                if !stats.implicit.is_empty() {
                    let Ok(mut m) = self.implicit.lock() else {
                        let _ = fs::remove_dir_all(&tmp);
                        bail!("internal: the implicit-directory table was poisoned");
                    };
                    m.insert(tmp.clone(), stats.implicit);
                }
                bar.finish_with(&format!("unpacked ({} entries)", stats.entries));
                Ok(Some(tmp))
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Once every missing layer of `layers` (bottom first) is unpacked into
    /// `tmp/`: places what a layer wrote through a symlink of the layers
    /// below where that symlink leads ([`crate::lowers::settle`]), bottom
    /// first, so each layer settles against settled ones.
    pub fn settle(&self, layers: &[Layer]) -> Result<()> {
        let mut implicit = match self.implicit.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(_) => bail!("internal: the implicit-directory table was poisoned"),
        };
        if implicit.is_empty() {
            return Ok(());
        }
        let tmp_of = |l: &Layer| self.tmp.join(format!("{TMP_PREFIX}{}", l.chain_id.hex()));
        for (i, layer) in layers.iter().enumerate() {
            let tmp = tmp_of(layer);
            let Some(dirs) = implicit.remove(&tmp) else {
                continue;
            };
            let lowers = crate::lowers::View {
                layers: layers[..i]
                    .iter()
                    .rev()
                    .map(|l| {
                        let t = tmp_of(l);
                        if t.is_dir() {
                            t
                        } else {
                            self.dir(l)
                        }
                    })
                    .collect(),
                whiteouts: true,
            };
            crate::lowers::settle(&tmp, &dirs, &lowers)
                .with_context(|| format!("unpacking layer {}", layer.digest))?;
        }
        Ok(())
    }

    /// Renames an unpacked temp dir to its snapshot name. The caller has
    /// synced the filesystem: everything under the name is on disk before
    /// it appears.
    pub fn publish(&self, layer: &Layer, tmp: &Path) -> Result<()> {
        let final_dir = self.dir(layer);
        fs::rename(tmp, &final_dir)
            .with_context(|| format!("moving {} to {}", tmp.display(), final_dir.display()))
    }

    /// Makes the published names durable.
    pub fn sync_names(&self) -> Result<()> {
        terra_layout::atomic::fsync_dir(&self.snapshots)
            .with_context(|| format!("syncing {}", self.snapshots.display()))
    }

    /// Removes leftovers of an interrupted install in `tmp/` (the caller
    /// holds the partition lock, so no install is running).
    pub fn clear_tmp(&self) -> Result<()> {
        let Ok(rd) = fs::read_dir(&self.tmp) else {
            return Ok(());
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                log::debug!("removing the leftover {}", e.path().display());
                fs::remove_dir_all(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
        Ok(())
    }
}

/// Unpacks in progress are `tmp/unpack-<chain id hex>`.
const TMP_PREFIX: &str = "unpack-";

/// syncfs(2) on the filesystem holding `path`: one call flushes every file
/// of the unpack (cheaper than an fsync per file, same guarantee).
pub fn sync_fs(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs on {}", path.display()))
}

/// Bytes of regular files under `dir` (not following symlinks).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    total
}
