//! The boot records: `ov/metadata.db`, one JSON document for all versions.
//!
//! A record holds everything stage 1 needs and nothing it must compute: the
//! ordered lower dirs, the upper and work dirs, the handoff, the kernel and
//! initrd files. The installer writes the whole document atomically
//! ([`crate::atomic::write_atomic`]) and only after everything it names is on
//! disk, so stage 1 can trust what it reads (it still validates the paths).
//!
//! ```json
//! {
//!   "format": 1,
//!   "default": "v5",
//!   "versions": {
//!     "v5": {
//!       "lowers": ["ov/snapshots/sha256-3c…", "ov/snapshots/sha256-9f…"],
//!       "upper": "ov/snapshots/rw-v5/upper",
//!       "work": "ov/snapshots/rw-v5/work",
//!       "handoff": {"kind": "supervise"},
//!       "kernel": "boot/v5/vmlinuz-6.1.0-57-cloud-amd64",
//!       "initrd": "boot/v5/initrd.img-6.1.0-57-cloud-amd64",
//!       "image": {"reference": "docker.io/stellarproject/terraos:v5", "digest": "sha256:…", "config": "sha256:…"},
//!       "installed_at": 1764441600,
//!       "size": 231000000,
//!       "boot": {"tries_left": null, "good": false, "last_failure": null}
//!     }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::partition::{check_relative, EscapingPath};

/// The record format this code writes. Readers accept this one and older.
pub const FORMAT: u32 = 1;

/// The whole of `ov/metadata.db`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Format number of this document; see [`FORMAT`].
    pub format: u32,
    /// The version booted when the command line names none.
    #[serde(default)]
    pub default: Option<String>,
    /// The good default that `terra default` replaced with a pending
    /// version: where a rollback goes (see [`crate::boot_state`]). Not
    /// validated: a fallback that is no longer installed or good is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Every installed version, by name.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionRecord>,
}

/// One bootable version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Read-only layers, partition-relative, top-most first (overlayfs
    /// `lowerdir=` order: the first one wins).
    pub lowers: Vec<String>,
    /// This version's persistent writable layer.
    pub upper: String,
    /// overlayfs's work dir for `upper`, on the same filesystem.
    pub work: String,
    /// What runs as PID 1 once the root is switched.
    #[serde(default)]
    pub handoff: Handoff,
    /// Kernel image on the partition (for the boot menu), if the image had one.
    #[serde(default)]
    pub kernel: Option<String>,
    /// Initramfs on the partition (for the boot menu), if any.
    #[serde(default)]
    pub initrd: Option<String>,
    /// Where the version came from.
    #[serde(default)]
    pub image: Option<ImageInfo>,
    /// Unix seconds of the install; "newest" means the largest.
    #[serde(default)]
    pub installed_at: u64,
    /// Bytes used by the version's layers (shared ones included).
    #[serde(default)]
    pub size: u64,
    /// Boot counting state (see [`crate::boot_state`]).
    #[serde(default)]
    pub boot: BootState,
}

/// What stage 1 hands the new root to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Handoff {
    /// Terra's init stays PID 1 and supervises containerd (stage 2).
    #[default]
    Supervise,
    /// Exec a program as PID 1 in the new root.
    Exec {
        path: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

/// The image a version was installed from. Its identity is the manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub reference: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// Config digest, `sha256:…`.
    #[serde(default)]
    pub config: Option<String>,
}

/// Boot counting state of a version; what it means and who writes it is in
/// [`crate::boot_state`] ([`BootState::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BootState {
    /// Boots left before a pending version is given up on (`None`: not
    /// counting).
    #[serde(default)]
    pub tries_left: Option<u32>,
    /// Passed stage 2's health gate.
    #[serde(default)]
    pub good: bool,
    /// Why the last boot of this version did not become good.
    #[serde(default)]
    pub last_failure: Option<String>,
    /// Unix seconds when stage 1 gave up on it (set: the version is failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u64>,
}

/// Something wrong in `ov/metadata.db`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("ov/metadata.db is not a valid boot record document")]
    Parse(#[source] serde_json::Error),
    #[error("ov/metadata.db has format {found}; this build reads formats up to {FORMAT}")]
    UnsupportedFormat { found: u32 },
    #[error("version name {0:?} is not valid (expected 1-128 of A-Z a-z 0-9 . _ -, not starting with '.')")]
    BadName(String),
    #[error("version {version}: {source}")]
    Path {
        version: String,
        #[source]
        source: EscapingPath,
    },
    #[error("version {0} has no lower dirs")]
    NoLowers(String),
    #[error("the default version {0:?} is not installed")]
    UnknownDefault(String),
}

impl Default for Metadata {
    fn default() -> Self {
        Self {
            format: FORMAT,
            default: None,
            fallback: None,
            versions: BTreeMap::new(),
        }
    }
}

impl Metadata {
    /// Parses and validates a document.
    pub fn parse(json: &str) -> Result<Self, RecordError> {
        let meta: Metadata = serde_json::from_str(json).map_err(RecordError::Parse)?;
        meta.validate()?;
        Ok(meta)
    }

    /// Serializes (pretty, so a person can read it on the partition).
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail (string keys only).
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Reads `path`; a missing file is an empty document.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(LoadError::Record),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(LoadError::Io(e)),
        }
    }

    /// Validates, then replaces `path` atomically and durably.
    pub fn store(&self, path: &Path) -> Result<(), LoadError> {
        self.validate().map_err(LoadError::Record)?;
        crate::atomic::write_atomic(path, self.to_json().as_bytes()).map_err(LoadError::Io)
    }

    /// Checks names, paths and the default.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.format > FORMAT {
            return Err(RecordError::UnsupportedFormat { found: self.format });
        }
        for (name, rec) in &self.versions {
            check_name(name)?;
            rec.validate().map_err(|source| RecordError::Path {
                version: name.clone(),
                source,
            })?;
            if rec.lowers.is_empty() {
                return Err(RecordError::NoLowers(name.clone()));
            }
        }
        match &self.default {
            Some(d) if !self.versions.contains_key(d) => {
                Err(RecordError::UnknownDefault(d.clone()))
            }
            _ => Ok(()),
        }
    }
}

impl VersionRecord {
    fn validate(&self) -> Result<(), EscapingPath> {
        for p in self.lowers.iter().chain([&self.upper, &self.work]) {
            check_relative(p)?;
        }
        for p in self.kernel.iter().chain(self.initrd.iter()) {
            check_relative(p)?;
        }
        Ok(())
    }
}

/// Reading or writing `ov/metadata.db`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading or writing ov/metadata.db")]
    Io(#[source] std::io::Error),
    #[error(transparent)]
    Record(RecordError),
}

/// Version names become path components and GRUB menu entries: keep them plain.
pub fn check_name(name: &str) -> Result<(), RecordError> {
    let ok = (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadName(name.to_string()))
    }
}

/// A minimal valid record installed at `installed_at`, for the tests of
/// this crate.
#[cfg(test)]
pub(crate) fn test_record(installed_at: u64) -> VersionRecord {
    VersionRecord {
        lowers: vec!["ov/snapshots/sha256-aa".into()],
        upper: "ov/snapshots/rw-x/upper".into(),
        work: "ov/snapshots/rw-x/work".into(),
        handoff: Handoff::default(),
        kernel: None,
        initrd: None,
        image: None,
        installed_at,
        size: 0,
        boot: BootState::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_record as rec;

    fn meta() -> Metadata {
        let mut m = Metadata::default();
        m.versions.insert("v1".into(), rec(10));
        m.versions.insert("v2".into(), rec(20));
        m.versions.insert("v3".into(), rec(15));
        m.default = Some("v1".into());
        m
    }

    #[test]
    fn round_trips_through_json() {
        let m = meta();
        assert_eq!(Metadata::parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn minimal_document_parses_with_defaults() {
        let m = Metadata::parse(
            r#"{"format":1,"versions":{"a":{"lowers":["l"],"upper":"u","work":"w"}}}"#,
        )
        .unwrap();
        assert_eq!(m.versions["a"].handoff, Handoff::Supervise);
        assert_eq!(m.default, None);
    }

    #[test]
    fn exec_handoff_is_tagged() {
        let h: Handoff = serde_json::from_str(r#"{"kind":"exec","path":"/sbin/init"}"#).unwrap();
        assert_eq!(
            h,
            Handoff::Exec {
                path: "/sbin/init".into(),
                args: vec![]
            }
        );
    }

    #[test]
    fn refuses_bad_documents() {
        let cases = [
            ("not json", "not a valid"),
            (r#"{"format":99}"#, "format 99"),
            (
                r#"{"format":1,"versions":{"a":{"lowers":["/etc"],"upper":"u","work":"w"}}}"#,
                "inside the partition",
            ),
            (
                r#"{"format":1,"versions":{"a":{"lowers":["l"],"upper":"../u","work":"w"}}}"#,
                "inside the partition",
            ),
            (
                r#"{"format":1,"versions":{"a/b":{"lowers":["l"],"upper":"u","work":"w"}}}"#,
                "not valid",
            ),
            (
                r#"{"format":1,"versions":{"a":{"lowers":[],"upper":"u","work":"w"}}}"#,
                "no lower dirs",
            ),
            (r#"{"format":1,"default":"x"}"#, "not installed"),
        ];
        for (json, want) in cases {
            let err = Metadata::parse(json).unwrap_err();
            let text = format!(
                "{err} {}",
                std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            assert!(text.contains(want), "{json}: got {text:?}, want {want:?}");
        }
    }

    #[test]
    fn missing_file_is_empty_and_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        assert_eq!(Metadata::load(&path).unwrap(), Metadata::default());
        meta().store(&path).unwrap();
        assert_eq!(Metadata::load(&path).unwrap(), meta());
    }
}
