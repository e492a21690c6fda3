//! The content store: `content/blobs/sha256/<hex>` holds verified blobs only;
//! downloads go to `content/ingest/<hex>` first, are hashed as they arrive,
//! resumed after an interruption, and renamed into place once their size and
//! sha256 match the descriptor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, HashingWriter};
use crate::hooks::{CrashPoint, Hooks, NoHooks};
use crate::progress::Bar;
use crate::source::Source;

/// A verified blob: in the store already, or still in `content/ingest/`.
pub struct Fetched {
    pub dest: PathBuf,
    pub pending: Option<PathBuf>,
}

impl Fetched {
    /// Where to read the blob now.
    pub fn path(&self) -> &Path {
        self.pending.as_deref().unwrap_or(&self.dest)
    }
}

/// A resumed download that did not verify (tried again from zero).
#[derive(Debug, thiserror::Error)]
#[error("the resumed download did not verify")]
struct Resumed;

/// The verified blobs of `content/blobs/sha256/` and the partial downloads
/// of `content/ingest/`.
pub struct Store {
    blobs: PathBuf,
    ingest: PathBuf,
    /// Told at [`CrashPoint::Download`].
    hooks: Arc<dyn Hooks>,
}

impl Store {
    pub fn new(blobs: PathBuf, ingest: PathBuf) -> Result<Self> {
        for d in [&blobs, &ingest] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(Self {
            blobs,
            ingest,
            hooks: Arc::new(NoHooks),
        })
    }

    /// The store of a partition (`content/`).
    pub fn of(part: &terra_layout::Partition) -> Result<Self> {
        Self::new(part.blobs_dir(), part.ingest_dir())
    }

    /// The same store, telling `hooks` when a download reaches its crash point.
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// A blob is present when its file exists with the expected size (only
    /// verified blobs are ever renamed into the store).
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.path(digest)).is_ok_and(|m| m.len() == size)
    }

    /// Stores small verified bytes (a manifest we already hold in memory).
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        if &Digest::of(bytes) != digest {
            bail!("internal: bytes do not match {digest}");
        }
        if self.has(digest, bytes.len() as u64) {
            return Ok(());
        }
        terra_layout::atomic::write_atomic(&self.path(digest), bytes)
            .with_context(|| format!("writing blob {digest}"))
    }

    /// Fetches a blob into the store unless present; verifies size and
    /// sha256 before it becomes visible, and makes it durable. Returns its path.
    pub fn fetch(
        &self,
        src: &dyn Source,
        digest: &Digest,
        size: u64,
        bar: &Bar,
    ) -> Result<PathBuf> {
        let fetched = self.fetch_verified(src, digest, size, bar)?;
        if let Some(partial) = &fetched.pending {
            File::open(partial)?.sync_all()?;
        }
        self.commit(&fetched)?;
        self.sync_names()?;
        Ok(fetched.dest)
    }

    /// Makes the names [`Store::commit`] gave durable.
    pub fn sync_names(&self) -> Result<()> {
        terra_layout::atomic::fsync_dir(&self.blobs)
            .with_context(|| format!("syncing {}", self.blobs.display()))
    }

    /// Downloads and verifies a blob, leaving it in `content/ingest/` (not
    /// yet synced): [`Fetched::path`] is where to read it now, and
    /// [`Store::commit`] moves it into the store once the caller has made it
    /// durable (one `syncfs` for everything an install wrote).
    pub fn fetch_verified(
        &self,
        src: &dyn Source,
        digest: &Digest,
        size: u64,
        bar: &Bar,
    ) -> Result<Fetched> {
        let dest = self.path(digest);
        if self.has(digest, size) {
            bar.finish_with("present");
            return Ok(Fetched {
                dest,
                pending: None,
            });
        }
        let partial = self.ingest.join(digest.hex());
        match self.download(src, digest, size, &partial, bar) {
            Err(e) if e.downcast_ref::<Resumed>().is_some() => {
                // What an earlier run left did not survive (a crash before its
                // data reached the disk): start over once.
                log::warn!("{digest}: the resumed download did not verify; fetching it again");
                fs::remove_file(&partial)?;
                self.download(src, digest, size, &partial, bar)?;
            }
            other => other?,
        }
        bar.finish_with("verified");
        Ok(Fetched {
            dest,
            pending: Some(partial),
        })
    }

    /// Moves a verified download into the store (its data must be durable).
    pub fn commit(&self, f: &Fetched) -> Result<()> {
        if let Some(partial) = &f.pending {
            fs::rename(partial, &f.dest)
                .with_context(|| format!("moving {} to {}", partial.display(), f.dest.display()))?;
        }
        Ok(())
    }

    fn download(
        &self,
        src: &dyn Source,
        digest: &Digest,
        size: u64,
        partial: &Path,
        bar: &Bar,
    ) -> Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(partial)
            .with_context(|| format!("opening {}", partial.display()))?;
        let mut have = file.metadata()?.len();
        if have > size {
            file.set_len(0)?;
            have = 0;
        }
        let resumed_from = have;
        // Hash what an earlier run left, then ask only for the rest.
        let mut hasher = Sha256::new();
        if have > 0 {
            let mut f = File::open(partial)?;
            io::copy(&mut (&mut f).take(have), &mut hasher)?;
            log::debug!("resuming {digest} at {have} of {size} bytes");
        }
        let (reader, start) = if have == size {
            (Box::new(io::empty()) as Box<dyn Read + Send>, size)
        } else {
            src.blob(digest, have)?
        };
        let resumed = start > 0 && resumed_from > 0;
        if start != have {
            file.set_len(0)?;
            hasher = Sha256::new();
            have = 0;
        }
        bar.set_position(have);
        let mut out = HashingWriter::new(
            BarWriter {
                file,
                bar,
                written: 0,
                hooks: self.hooks.as_ref(),
            },
            hasher,
            have,
        );
        // One byte more than expected tells a too-long blob from a right one.
        let mut limited = reader.take(size - have + 1);
        io::copy(&mut limited, &mut out)
            .with_context(|| format!("downloading {digest} into {}", partial.display()))?;
        let count = out.count;
        let got = Digest::from_hasher(out.hasher);
        if count != size {
            if count > size {
                let _ = fs::remove_file(partial);
            }
            bail!("blob {digest}: expected {size} bytes, got {count} (truncated or wrong blob)");
        }
        if &got != digest {
            if resumed {
                return Err(Resumed.into());
            }
            let _ = fs::remove_file(partial);
            bail!("blob {digest}: sha256 is {got}; the descriptor says {digest}");
        }
        Ok(())
    }

    /// Reads a small verified blob (config).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.path(digest);
        fs::read(&p).with_context(|| format!("reading {}", p.display()))
    }
}

struct BarWriter<'a> {
    file: File,
    /// Bytes written by this run (for the test crash point).
    written: u64,
    bar: &'a Bar,
    hooks: &'a dyn Hooks,
}

impl Write for BarWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bar.inc(n as u64);
        self.written += n as u64;
        if self.written >= 64 << 10 && self.written - n as u64 <= 64 << 10 {
            self.file.sync_all()?;
            self.hooks.reached(CrashPoint::Download);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
