//! One layer, unpacked once into `ov/snapshots/sha256-<chain id>`: decompress
//! (streamed), hash the tar against the config's diff_id, unpack into a temp
//! dir under `tmp/`, flush the filesystem, then rename into place. A crash
//! leaves only a temp dir, which the next install clears.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::digest::{hex_of, HashingReader};
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
) -> Result<Stats> {
    let want = hex_of(&layer.diff_id)?;
    let tar = open_layer(blob, layer.compression, bar)?;
    let (stats, rest) = unpack(EndPad::new(HashingReader::new(tar)), dir, mode)?;
    let mut rest = rest.inner;
    // Trailing zero blocks after the tar's end still count in the digest.
    io::copy(&mut rest, &mut io::sink()).context("reading the end of the layer")?;
    let (got, _) = rest.finish();
    if got != want {
        bail!(
            "layer {}: uncompressed sha256 is sha256:{got}; the config's diff_id is {}",
            layer.digest,
            layer.diff_id
        );
    }
    Ok(stats)
}

/// Unpacks `layer` into `tmp/unpack-<chain id>` unless its snapshot exists;
/// returns the temp dir, to [`publish`] once the filesystem is synced.
pub fn unpack_to_tmp(
    part: &terra_layout::Partition,
    layer: &Layer,
    blob: &Path,
    bar: &Bar,
) -> Result<Option<PathBuf>> {
    if snapshot_dir(part, layer)?.is_dir() {
        bar.finish_with("already unpacked");
        return Ok(None);
    }
    let hex = hex_of(&layer.chain_id)?;
    let tmp = part.tmp_dir().join(format!("unpack-{hex}"));
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    match unpack_checked(blob, layer, &tmp, Whiteouts::Overlay, Some(bar)) {
        Ok(stats) => {
            bar.finish_with(&format!("unpacked ({} entries)", stats.entries));
            Ok(Some(tmp))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Renames an unpacked temp dir to its snapshot name. The caller has synced
/// the filesystem: everything under the name is on disk before it appears.
pub fn publish(part: &terra_layout::Partition, layer: &Layer, tmp: &Path) -> Result<()> {
    let final_dir = snapshot_dir(part, layer)?;
    fs::rename(tmp, &final_dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), final_dir.display()))
}

pub fn snapshot_dir(part: &terra_layout::Partition, layer: &Layer) -> Result<PathBuf> {
    hex_of(&layer.chain_id)?;
    Ok(part
        .root()
        .join(terra_layout::partition::layer_snapshot(&layer.chain_id)))
}

/// syncfs(2) on the filesystem holding `path`: one call flushes every file
/// of the unpack (cheaper than an fsync per file, same guarantee).
pub fn sync_fs(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs on {}", path.display()))
}
