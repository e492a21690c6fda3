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

/// What a command does with the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads (`list`): nothing is created or locked.
    Read,
    /// Changes a Terra partition (`default`, `remove`, `gc`): it must have
    /// `ov/metadata.db` already.
    Write,
    /// Installs: like [`Access::Write`], and may also start a new partition
    /// on an empty filesystem (nothing in it but `lost+found`).
    Install,
}

pub struct Where<'a> {
    pub root: Option<&'a Path>,
    pub device: Option<&'a Path>,
    pub label: &'a str,
}

impl Target {
    /// Opens the partition. Writing recognises the partition before anything
    /// is written to it ([`recognise`]), then creates the layout and takes
    /// the partition lock.
    pub fn open(w: &Where, access: Access) -> Result<Self> {
        let write = access != Access::Read;
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
            recognise(&t.part, access)?;
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
            restrict(&t.part)?;
        }
        Ok(t)
    }
}

/// Whether `part` may be written to: it is a Terra partition (it has
/// `ov/metadata.db`, or `tmp/terra.lock`, which terra makes before anything
/// else: a first install killed midway), or `access` is an install and the
/// filesystem is empty (nothing but `lost+found`, which `mkfs.ext4` makes).
/// Anything else is refused before a single directory is created, so a
/// mistyped `--root` cannot be filled with Terra's layout or lose files to
/// `gc`.
fn recognise(part: &Partition, access: Access) -> Result<()> {
    let root = part.root();
    if part.metadata().is_file() || lock_path(part).is_file() {
        return Ok(());
    }
    let others: Vec<String> = fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect();
    if others.is_empty() && access == Access::Install {
        log::info!(
            "{} is empty: starting a new Terra partition",
            root.display()
        );
        return Ok(());
    }
    let what = if others.is_empty() {
        "it is empty: nothing is installed (terra install makes it one)".to_string()
    } else {
        let mut shown = others;
        shown.sort();
        shown.truncate(5);
        format!("it holds {} and no ov/metadata.db", shown.join(", "))
    };
    bail!(
        "{} is not a Terra partition: {what}; refusing to write to it",
        root.display()
    )
}

/// Layers, boot files, content and scratch are the host's: only root reads
/// them (a layer may carry setuid binaries and device nodes; stage 1 also
/// mounts the partition nosuid,nodev). `vlc/` keeps its mode: it is
/// containerd's `/var/lib/containerd`.
fn restrict(part: &Partition) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = part.root();
    for d in ["boot", "content", "ov", "tmp"] {
        let p = root.join(d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", p.display()))?;
    }
    Ok(())
}

fn lock_path(part: &Partition) -> PathBuf {
    part.tmp_dir().join("terra.lock")
}

/// One writer at a time per partition. The holder writes its PID and
/// command line into the lock file, so a command that has to wait says
/// what it waits for (a stalled install, say).
fn lock(part: &Partition) -> Result<File> {
    use std::io::{Read, Seek, Write};
    let path = lock_path(part);
    // Not truncated on open: the holder's line stays readable.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = (&f).take(512).read_to_string(&mut holder);
        let holder = holder.trim();
        log::info!(
            "waiting for another terra command on this partition{}",
            if holder.is_empty() {
                String::new()
            } else {
                format!(" ({holder})")
            }
        );
        rustix::fs::flock(&f, FlockOperation::LockExclusive).context("locking the partition")?;
    }
    let args: Vec<String> = std::env::args().collect();
    let line = format!("pid {}: {}\n", std::process::id(), args.join(" "));
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(line.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(f)
}

/// The ext4 label of `dev`: `None` when it holds no ext4 filesystem.
fn ext4_label(dev: &mut File) -> std::io::Result<Option<String>> {
    Ok(match terra_layout::probe::probe(dev)? {
        Probe::Ext4 { label } => Some(label),
        Probe::Unknown => None,
    })
}

/// The partition table at the start of `dev`, if any: `a GPT` (the header
/// signature `EFI PART` at LBA 1, for 512 and 4096 byte sectors) or `an MBR`
/// (the boot signature 0x55AA at byte 510 and a non-empty entry). Two
/// signatures are all this needs; a partition table crate would parse the
/// whole table to tell the same.
fn partition_table(dev: &mut File) -> std::io::Result<Option<&'static str>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut head = vec![0u8; 4096 + 512];
    dev.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < head.len() {
        match dev.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    let at = |off: usize, sig: &[u8]| head.get(off..off + sig.len()) == Some(sig);
    if at(512, b"EFI PART") || at(4096, b"EFI PART") {
        return Ok(Some("a GPT"));
    }
    // Four 16-byte entries from byte 446; byte 4 of each is its type.
    let typed = (0..4).any(|i| head.get(446 + 16 * i + 4).is_some_and(|t| *t != 0));
    if at(510, &[0x55, 0xAA]) && typed {
        return Ok(Some("an MBR"));
    }
    Ok(None)
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
        // A whole disk: mkfs on it would wipe its partition table, so the
        // partition is what to name.
        None => match partition_table(&mut f)
            .with_context(|| format!("reading {}", dev.display()))?
        {
            Some(table) => bail!(
                "{} is a whole disk with {table} partition table, not a filesystem: give its Terra partition instead (lsblk {} lists them; for an image file, losetup -P --show -f {} makes them devices)",
                dev.display(),
                dev.display(),
                dev.display()
            ),
            None => bail!(
                "{} has no ext4 filesystem (expected the label {want:?}; mkfs.ext4 -L {want} {} makes one, erasing what it holds)",
                dev.display(),
                dev.display()
            ),
        },
    }
    let is_file = f.metadata()?.is_file();
    drop(f);
    crate::mounts::clean_stale();
    let dir = tempfile::Builder::new()
        .prefix(&crate::mounts::prefix())
        .tempdir()?;
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
