//! Everything that stops a boot: one variant per step, with the path and the
//! cause. [`crate::fatal`] prints the chain once, with [`BootError::found`]
//! (what was seen) and [`BootError::hint`] (what to do).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use terra_layout::record::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot mount an early filesystem: {line}")]
    EarlyMount {
        line: String,
        #[source]
        source: io::Error,
    },

    #[error("no partition labelled {label:?}{} appeared within {} s", device_note(.device), .waited.as_secs_f32())]
    NotFound {
        label: String,
        device: Option<String>,
        waited: Duration,
        /// One line per block device seen, with what its probe found.
        seen: Vec<String>,
    },

    #[error("{} partitions are labelled {label:?}: {}; refusing to guess", .devices.len(), .devices.join(" and "))]
    Ambiguous { label: String, devices: Vec<String> },

    #[error("cannot mount the partition {device} (ext4) at {}", .target.display())]
    MountPartition {
        device: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read the boot records {}", .path.display())]
    Metadata {
        path: PathBuf,
        #[source]
        source: LoadError,
    },

    #[error("no version is installed: {} lists none", .path.display())]
    NoVersions { path: PathBuf },

    #[error("no version could be mounted as the root")]
    NoVersionMounted {
        /// `NAME: why`, in the order tried.
        tried: Vec<String>,
    },

    #[error("cannot set up the new root: {line}")]
    NewRoot {
        line: String,
        #[source]
        source: io::Error,
    },

    #[error("refusing to switch root: {what}")]
    SwitchGuard { what: String },

    #[error("switch root failed: {step} {}", .path.display())]
    SwitchRoot {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot exec the handoff {path}")]
    Handoff {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("terra-init panicked: {message}")]
    Panic { message: String },
}

fn device_note(device: &Option<String>) -> String {
    device
        .as_ref()
        .map(|d| format!(" on {d} (terra.device=)"))
        .unwrap_or_default()
}

impl BootError {
    /// What was found, one line each (shown as `found:` lines).
    pub fn found(&self) -> Vec<String> {
        match self {
            BootError::NotFound { seen, .. } if seen.is_empty() => {
                vec!["no block devices at all (is the disk driver in the initramfs?)".into()]
            }
            BootError::NotFound { seen, .. } => seen.clone(),
            BootError::NoVersionMounted { tried } => tried.clone(),
            _ => Vec::new(),
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            BootError::EarlyMount { .. } => {
                "the kernel lacks proc, sysfs or tmpfs support; use a kernel built with them"
            }
            BootError::NotFound { .. } => {
                "attach the disk holding the Terra partition, or boot with terra.label=LABEL \
                 (or terra.device=/dev/X); a missing driver must be added with \
                 mkinitrd --module NAME; raise terra.timeout= for slow disks"
            }
            BootError::Ambiguous { .. } => {
                "boot with terra.device=/dev/X to choose one, or relabel the other \
                 (e2label /dev/X NEWLABEL)"
            }
            BootError::MountPartition { .. } => {
                "check the filesystem (e2fsck -f DEVICE) from a rescue system"
            }
            BootError::Metadata { .. } | BootError::NoVersions { .. } => {
                "install a version from a rescue system: terra --device DEVICE install REF"
            }
            BootError::NoVersionMounted { .. } => {
                "check the layers listed in ov/metadata.db exist; reinstall the version \
                 (terra install) or boot another with terra.version=NAME"
            }
            BootError::NewRoot { .. } => "check the partition's vlc/ and odisk",
            BootError::SwitchGuard { .. } | BootError::SwitchRoot { .. } => {
                "terra-init must run as /init of an initramfs (PID 1 on rootfs)"
            }
            BootError::Handoff { .. } => {
                "boot with terra.init=PATH naming a program that exists in the version"
            }
            BootError::Panic { .. } => {
                "this is a bug in terra-init; please report it with this log"
            }
        }
    }
}

/// The error and its causes, `: `-joined, each once.
pub fn chain(err: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.iter().any(|o| o.contains(&s)) {
            out.push(s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_was_looked_for() {
        let e = BootError::Ambiguous {
            label: "terra".into(),
            devices: vec!["/dev/vda".into(), "/dev/vdb1".into()],
        };
        assert_eq!(
            e.to_string(),
            "2 partitions are labelled \"terra\": /dev/vda and /dev/vdb1; refusing to guess"
        );
        let e = BootError::NotFound {
            label: "terra".into(),
            device: None,
            waited: Duration::from_millis(2500),
            seen: vec![],
        };
        assert_eq!(
            e.to_string(),
            "no partition labelled \"terra\" appeared within 2.5 s"
        );
        assert!(e.found()[0].contains("no block devices"));
        let e = BootError::MountPartition {
            device: "/dev/vda".into(),
            target: "/run/terra/partition".into(),
            source: io::Error::from_raw_os_error(22),
        };
        let c = chain(&e);
        assert_eq!(c.len(), 2);
        assert!(c[1].contains("Invalid argument"), "{c:?}");
    }
}
