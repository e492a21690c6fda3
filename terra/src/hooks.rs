//! Crash points: the moments of an install where a test stops it, to check
//! that a crash there leaves every earlier version bootable and that running
//! the same install again finishes the job.
//!
//! The library only *announces* the points, through a [`Hooks`] object the
//! caller injects; it never reads the environment. The `terra` binary
//! injects [`NoHooks`]; only the test binary `terra-crash` (built with the
//! `crash-points` feature) stops at the point `TERRA_CRASH_AT` names, so a
//! release binary cannot be made to hang by an environment variable.

use std::fmt;

/// Where an install can be stopped, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// 64 KiB into a blob download, the partial file synced.
    Download,
    /// 50 entries into a layer's unpack into `tmp/`.
    Unpack,
    /// Everything fetched and unpacked is synced; nothing renamed yet.
    Publish,
    /// Blobs and snapshots published; the version record not yet written.
    Record,
    /// The version record written; the boot menu not yet.
    Menu,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::Download,
        CrashPoint::Unpack,
        CrashPoint::Publish,
        CrashPoint::Record,
        CrashPoint::Menu,
    ];

    /// The name tests use (`TERRA_CRASH_AT=record`).
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::Download => "download",
            CrashPoint::Unpack => "unpack",
            CrashPoint::Publish => "publish",
            CrashPoint::Record => "record",
            CrashPoint::Menu => "menu",
        }
    }

    /// The point called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Told when an install reaches a crash point. Called from the fetch
/// workers too, hence `Sync`.
pub trait Hooks: Send + Sync {
    fn reached(&self, point: CrashPoint);
}

/// The hooks of a real install: none.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn reached(&self, _point: CrashPoint) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in CrashPoint::ALL {
            assert_eq!(CrashPoint::from_name(p.name()), Some(p));
        }
        assert_eq!(CrashPoint::from_name("nowhere"), None);
    }
}
