//! Which partition a command works on: `--root DIR` (mounted already, or a
//! plain directory), `--device DEV` (label checked, mounted for the command,
//! unmounted after, also on error), or the one stage 1 left mounted.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::FlockOperation;
use terra_layout::partition::RUNTIME_MOUNT;
use terra_layout::probe::Probe;
use terra_layout::Partition;

/// A partition ready to use; unmounts on drop when we mounted it.
pub struct Target {
    pub part: Partition,
    _lock: Option<File>,
    mounted: Option<tempfile::TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self._lock = None;
        if let Some(dir) = self.mounted.take() {
            rustix::fs::sync();
            if let Err(e) = rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::empty())
            {
                log::warn!(
                    "unmounting {}: {e}; detaching it lazily",
                    dir.path().display()
                );
                let _ = rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

pub struct Where<'a> {
    pub root: Option<&'a Path>,
    pub device: Option<&'a Path>,
    pub label: &'a str,
}

impl Target {
    /// Opens the partition; `write` takes the install lock and creates the layout.
    pub fn open(w: &Where, write: bool) -> Result<Self> {
        let (root, mounted) = match (w.root, w.device) {
            (Some(r), _) => (r.to_path_buf(), None),
            (None, Some(dev)) => {
                let dir = mount_device(dev, w.label, write)?;
                (dir.path().to_path_buf(), Some(dir))
            }
            (None, None) => {
                let p = PathBuf::from(RUNTIME_MOUNT);
                if !p.is_dir() {
                    bail!("no partition given: use --root DIR or --device DEV ({RUNTIME_MOUNT} is not there: not a running Terra system)");
                }
                (p, None)
            }
        };
        let mut t = Target {
            part: Partition::new(&root),
            _lock: None,
            mounted,
        };
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        if write {
            for d in [
                t.part.boot_dir(),
                t.part.blobs_dir(),
                t.part.ingest_dir(),
                t.part.snapshots_dir(),
                t.part.tmp_dir(),
                t.part.vlc_dir(),
            ] {
                fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            }
            t._lock = Some(lock(&t.part)?);
        }
        Ok(t)
    }
}

/// One writer at a time per partition.
fn lock(part: &Partition) -> Result<File> {
    let path = part.tmp_dir().join("terra.lock");
    let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        log::info!("waiting for another terra command on this partition");
        rustix::fs::flock(&f, FlockOperation::LockExclusive).context("locking the partition")?;
    }
    Ok(f)
}

/// The ext4 label of `dev`: `None` when it holds no ext4 filesystem.
fn ext4_label(dev: &mut File) -> std::io::Result<Option<String>> {
    Ok(match terra_layout::probe::probe(dev)? {
        Probe::Ext4 { label } => Some(label),
        Probe::Unknown => None,
    })
}

/// Mounts `dev` (read-only unless `write`) after checking its label.
fn mount_device(dev: &Path, want: &str, write: bool) -> Result<tempfile::TempDir> {
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    match ext4_label(&mut f).with_context(|| format!("reading {}", dev.display()))? {
        Some(l) if l == want => {}
        Some(l) => bail!(
            "{} is labelled {l:?}, not {want:?}: refusing to write to it (mkfs.ext4 -L {want} {} makes a Terra partition)",
            dev.display(),
            dev.display()
        ),
        None => bail!(
            "{} has no ext4 filesystem (expected the label {want:?}; mkfs.ext4 -L {want} {} makes one)",
            dev.display(),
            dev.display()
        ),
    }
    let is_file = f.metadata()?.is_file();
    drop(f);
    let dir = tempfile::Builder::new().prefix("terra-mnt-").tempdir()?;
    // An image file goes through a loop device that goes away on unmount
    // (mount -o loop sets LO_FLAGS_AUTOCLEAR).
    let mut cmd = std::process::Command::new("mount");
    cmd.args(["-t", "ext4"]);
    let mut opts = vec![if write { "rw" } else { "ro" }];
    if is_file {
        opts.push("loop");
    }
    cmd.args(["-o", &opts.join(",")]);
    let out = cmd
        .arg(dev)
        .arg(dir.path())
        .output()
        .context("running mount")?;
    if !out.status.success() {
        bail!(
            "mount -t ext4 {} {}: {}",
            dev.display(),
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    log::debug!("mounted {} at {}", dev.display(), dir.path().display());
    Ok(dir)
}
