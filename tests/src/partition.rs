//! Terra partitions laid out from plain directories, without the installer.
//!
//! [`PartitionTree`] writes the tree of the contract in `terra-layout`:
//! layers as `ov/snapshots/sha256-<fake chain id>`, each version's writable
//! `rw-<name>/upper|work`, the records in `ov/metadata.db` (through
//! [`Metadata::store`]) and the shared `vlc/`. [`standard`] makes the two
//! versions the boot tests use.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use terra_layout::partition::{layer_snapshot, version_rw};
use terra_layout::record::{BootState, Handoff, Metadata, VersionRecord};
use terra_layout::Partition;

use crate::probe;

/// A partition tree being built in a directory.
pub struct PartitionTree {
    part: Partition,
    meta: Metadata,
}

impl PartitionTree {
    /// Starts an empty partition at `root` (created; it should be empty).
    pub fn new(root: &Path) -> Result<Self> {
        let part = Partition::new(root);
        for dir in [
            part.boot_dir(),
            part.blobs_dir(),
            part.ingest_dir(),
            part.snapshots_dir(),
            part.tmp_dir(),
            part.vlc_dir(),
        ] {
            mkdir(&dir)?;
        }
        Ok(Self {
            part,
            meta: Metadata::default(),
        })
    }

    pub fn root(&self) -> &Path {
        self.part.root()
    }

    /// Adds a layer named `seed` (its fake chain id is sha256(seed)), filled
    /// by `fill` in its directory. Returns its record path.
    pub fn layer(&mut self, seed: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<String> {
        let rel = layer_snapshot(&fake_chain_id(seed));
        let dir = self.part.resolve(&rel)?;
        mkdir(&dir)?;
        fill(&dir).with_context(|| format!("filling layer {seed}"))?;
        Ok(rel)
    }

    /// Adds a version: `lowers` top-most first, handoff `exec /sbin/init`.
    pub fn version(&mut self, name: &str, lowers: &[String], installed_at: u64) -> Result<()> {
        let (upper, work) = version_rw(name);
        mkdir(&self.part.resolve(&upper)?)?;
        mkdir(&self.part.resolve(&work)?)?;
        self.meta.versions.insert(
            name.to_string(),
            VersionRecord {
                lowers: lowers.to_vec(),
                upper,
                work,
                handoff: Handoff::Exec {
                    path: "/sbin/init".into(),
                    args: vec![],
                },
                kernel: None,
                initrd: None,
                image: None,
                installed_at,
                size: 0,
                boot: BootState::default(),
            },
        );
        Ok(())
    }

    pub fn default_version(&mut self, name: &str) {
        self.meta.default = Some(name.to_string());
    }

    /// Puts a file in the shared `vlc/`.
    pub fn vlc_file(&self, name: &str, contents: &str) -> Result<()> {
        write(&self.part.vlc_dir().join(name), contents)
    }

    /// Writes `ov/metadata.db`; the tree is then ready for [`crate::disk`].
    pub fn finish(self) -> Result<PathBuf> {
        self.meta
            .store(&self.part.metadata())
            .context("writing ov/metadata.db")?;
        Ok(self.part.root().to_path_buf())
    }
}

/// A 64-hex-digit fake chain id: sha256 of the seed.
pub fn fake_chain_id(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hostname each standard version has in `/etc/hostname`.
pub fn hostname_of(version: &str) -> String {
    format!("terra-{version}")
}

/// The content of `vlc/shared-file` on the standard partition.
pub const VLC_FILE: (&str, &str) = ("shared-file", "from-vlc");

/// The layers of the standard partition, by seed.
pub const BASE_LAYER: &str = "base";
pub const WHITEOUT_LAYER: &str = "whiteouts";

/// The partition the boot tests use: versions `v1` (default, installed first)
/// and `v2`, each three layers: its own hostname layer on top of a shared
/// whiteout layer on top of a shared base (busybox and the probe).
pub fn standard(root: &Path, busybox: &Path) -> Result<PathBuf> {
    let mut tree = PartitionTree::new(root)?;
    let base = tree.layer(BASE_LAYER, |dir| base_layer(dir, busybox))?;
    let whiteouts = tree.layer(WHITEOUT_LAYER, whiteout_layer)?;
    for (name, installed_at) in [("v1", 1_000), ("v2", 2_000)] {
        let host = tree.layer(&format!("hostname-{name}"), |dir| {
            write(
                &dir.join("etc/hostname"),
                &format!("{}\n", hostname_of(name)),
            )
        })?;
        tree.version(name, &[host, whiteouts.clone(), base.clone()], installed_at)?;
    }
    tree.default_version("v1");
    tree.vlc_file(VLC_FILE.0, VLC_FILE.1)?;
    tree.finish()
}

/// A root filesystem's bottom layer: busybox with its applets in /bin, the
/// probe as /sbin/init, the mount points, and the files the whiteout layer hides.
pub fn base_layer(dir: &Path, busybox: &Path) -> Result<()> {
    for d in [
        "bin",
        "sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "var/lib/containerd",
        "opt/opaque",
    ] {
        mkdir(&dir.join(d))?;
    }
    std::fs::copy(busybox, dir.join("bin/busybox"))
        .with_context(|| format!("copying {}", busybox.display()))?;
    for applet in busybox_applets(busybox)? {
        if applet != "busybox" {
            symlink("busybox", dir.join("bin").join(&applet))?;
        }
    }
    write(&dir.join("sbin/init"), probe::SCRIPT)?;
    chmod(&dir.join("sbin/init"), 0o755)?;
    write(&dir.join("etc/hostname"), "terra-base\n")?;
    // Hidden by the whiteout layer: a whiteout and an opaque directory.
    write(&dir.join("etc/whiteme"), "lower file, must be hidden\n")?;
    write(
        &dir.join("opt/opaque/lower-file"),
        "hidden by the opaque dir\n",
    )?;
    Ok(())
}

/// OCI whiteouts as overlayfs sees them: `/etc/whiteme` as a 0/0 character
/// device, and `/opt/opaque` marked `trusted.overlay.opaque=y` with a file of its own.
pub fn whiteout_layer(dir: &Path) -> Result<()> {
    mkdir(&dir.join("etc"))?;
    mkdir(&dir.join("opt/opaque"))?;
    let whiteout = dir.join("etc/whiteme");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &whiteout,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .with_context(|| format!("mknod {} c 0 0 (needs root)", whiteout.display()))?;
    let opaque = dir.join("opt/opaque");
    rustix::fs::setxattr(
        &opaque,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .with_context(|| {
        format!(
            "setxattr trusted.overlay.opaque on {} (needs root)",
            opaque.display()
        )
    })?;
    write(&opaque.join("upper-file"), "seen\n")?;
    Ok(())
}

/// The applet names of a busybox binary (`busybox --list`).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list failed", busybox.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .map(str::to_string)
        .collect())
}

pub(crate) fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

pub(crate) fn write(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir(parent)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn standard_partition_follows_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let root = standard(&dir.path().join("p"), Path::new("/bin/busybox")).unwrap();
        let meta = Metadata::load(&Partition::new(&root).metadata()).unwrap();
        assert_eq!(meta.default.as_deref(), Some("v1"));
        assert_eq!(meta.versions.len(), 2);
        let v2 = &meta.versions["v2"];
        assert_eq!(v2.lowers.len(), 3);
        assert_eq!(v2.lowers[2], layer_snapshot(&fake_chain_id(BASE_LAYER)));
        for rel in v2.lowers.iter().chain([&v2.upper, &v2.work]) {
            assert!(root.join(rel).is_dir(), "{rel}");
        }
        let host = std::fs::read_to_string(root.join(&v2.lowers[0]).join("etc/hostname")).unwrap();
        assert_eq!(host, "terra-v2\n");
        let base = root.join(&v2.lowers[2]);
        assert!(base.join("bin/sh").is_symlink());
        assert!(std::fs::read_to_string(base.join("sbin/init"))
            .unwrap()
            .contains(probe::BEGIN));
        let wh = std::fs::symlink_metadata(root.join(&v2.lowers[1]).join("etc/whiteme")).unwrap();
        assert!(wh.file_type().is_char_device());
        let opq = rustix::fs::getxattr(
            root.join(&v2.lowers[1]).join("opt/opaque"),
            "trusted.overlay.opaque",
            &mut [0u8; 4][..],
        )
        .unwrap();
        assert_eq!(opq, 1);
        assert_eq!(
            std::fs::read_to_string(root.join("vlc/shared-file")).unwrap(),
            "from-vlc"
        );
    }
}
