//! Where things live on a Terra partition.
//!
//! ```text
//! boot/                  kernels, initrds, grub/grub.cfg
//! content/blobs/sha256/  verified OCI blobs (config, manifests, layers)
//! content/ingest/        partial downloads; never read at boot
//! odisk                  extra mounts, fstab format (see `odisk`)
//! ov/metadata.db         the boot records of all versions (JSON, replaced atomically)
//! ov/snapshots/sha256-<chain id hex>/   one unpacked layer, shared, read-only at boot
//! ov/snapshots/rw-<version>/upper|work  the writable layer of one version
//! tmp/                   scratch space for install
//! vlc/                   bound onto /var/lib/containerd, shared by every version
//! ```
//!
//! Every path in a boot record is relative to the partition root; this module
//! turns those into real paths and refuses any that would leave the partition.

use std::path::{Component, Path, PathBuf};

/// The default filesystem label of a Terra partition.
pub const DEFAULT_LABEL: &str = "terra";

/// Where stage 1 mounts the partition; it stays there in the running system
/// (stage 1 moves `/run` into the new root), so `terra` can manage versions.
pub const RUNTIME_MOUNT: &str = "/run/terra/partition";

/// The boot timeline stage 1 leaves for the running system.
pub const TIMELINE_FILE: &str = "/run/terra/boot.json";

/// The mount plan stage 1 applied, in shell form, for a person to read.
pub const MOUNTS_FILE: &str = "/run/terra/mounts";

/// A Terra partition, mounted (or laid out as a plain directory) at `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    root: PathBuf,
}

/// A path in a record that is not a plain relative path inside the partition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("path {path:?} in a boot record must be relative and stay inside the partition")]
pub struct EscapingPath {
    pub path: String,
}

impl Partition {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn boot_dir(&self) -> PathBuf {
        self.root.join("boot")
    }

    pub fn grub_cfg(&self) -> PathBuf {
        self.root.join("boot/grub/grub.cfg")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("content/blobs/sha256")
    }

    /// The path of a blob given its hex sha256 digest (without `sha256:`).
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.blobs_dir().join(hex)
    }

    pub fn ingest_dir(&self) -> PathBuf {
        self.root.join("content/ingest")
    }

    pub fn odisk(&self) -> PathBuf {
        self.root.join("odisk")
    }

    pub fn metadata(&self) -> PathBuf {
        self.root.join("ov/metadata.db")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("ov/snapshots")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The machine config, shared by every version (`machine`).
    pub fn machine_config(&self) -> PathBuf {
        self.root.join(crate::machine::MACHINE_CONFIG)
    }

    /// The last machine config stage 2 read without error.
    pub fn machine_last_good(&self) -> PathBuf {
        self.root.join(crate::machine::LAST_GOOD)
    }

    /// sshd's host keys, made on the first boot and kept across versions.
    pub fn ssh_host_keys(&self) -> PathBuf {
        self.root.join(crate::machine::SSH_HOST_KEYS)
    }

    pub fn vlc_dir(&self) -> PathBuf {
        self.root.join("vlc")
    }

    /// Resolves a record's relative path against the partition root,
    /// refusing absolute paths and `..`.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, EscapingPath> {
        check_relative(rel)?;
        Ok(self.root.join(rel))
    }
}

/// The record path of a layer snapshot, keyed by its chain id
/// (`sha256:<hex>`, or just `<hex>`).
pub fn layer_snapshot(chain_id: &str) -> String {
    let hex = chain_id.strip_prefix("sha256:").unwrap_or(chain_id);
    format!("ov/snapshots/sha256-{hex}")
}

/// Names under `boot/` that belong to the partition itself and never to a
/// version: GRUB's directory, and where an EFI system partition is mounted.
/// A version's boot files live in `boot/<version>/`, so a version may not
/// take one of these names (compared ignoring case, as FAT does).
pub const BOOT_OWN_NAMES: [&str; 2] = ["grub", "efi"];

/// Whether `name` is one of [`BOOT_OWN_NAMES`].
pub fn is_boot_own_name(name: &str) -> bool {
    BOOT_OWN_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The record paths of a version's writable layer: (upper, work).
pub fn version_rw(name: &str) -> (String, String) {
    (
        format!("ov/snapshots/rw-{name}/upper"),
        format!("ov/snapshots/rw-{name}/work"),
    )
}

/// Accepts only plain relative paths: no root, no `..`, not empty.
pub fn check_relative(rel: &str) -> Result<(), EscapingPath> {
    let path = Path::new(rel);
    let plain = !rel.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if plain {
        Ok(())
    } else {
        Err(EscapingPath {
            path: rel.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_under_the_root() {
        let p = Partition::new("/mnt/terra");
        assert_eq!(
            p.resolve("ov/snapshots/sha256-ab").unwrap(),
            PathBuf::from("/mnt/terra/ov/snapshots/sha256-ab")
        );
        assert_eq!(p.metadata(), PathBuf::from("/mnt/terra/ov/metadata.db"));
    }

    #[test]
    fn refuses_paths_that_leave_the_partition() {
        let p = Partition::new("/mnt/terra");
        for bad in ["/etc", "../x", "ov/../../x", "", "ov/.."] {
            assert!(p.resolve(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(layer_snapshot("sha256:abc"), "ov/snapshots/sha256-abc");
        assert_eq!(
            version_rw("v5"),
            (
                "ov/snapshots/rw-v5/upper".to_string(),
                "ov/snapshots/rw-v5/work".to_string()
            )
        );
    }
}
