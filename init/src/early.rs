//! Step 1: the early filesystems, as data.
//!
//! Each entry is idempotent (skipped when something is already mounted
//! there, so a retry after a fatal error does not stack mounts) and logged as
//! its shell line with `terra.debug`.

use std::path::PathBuf;

use nix::mount::MsFlags;

use crate::env::{Env, Paths};
use crate::error::BootError;
use crate::kernel::Mount;

/// Which of [`Paths`] an entry mounts on (or under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Proc,
    Sys,
    Dev,
    Run,
}

impl At {
    fn path(self, p: &Paths) -> PathBuf {
        match self {
            At::Proc => p.proc.clone(),
            At::Sys => p.sys.clone(),
            At::Dev => p.dev.clone(),
            At::Run => p.run.clone(),
        }
    }
}

/// One mount of a table: this one of stage 1 and stage 2's container-host
/// table (`stage2::mounts`) alike. Printed through [`Mount::to_shell`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub source: &'static str,
    pub fstype: &'static str,
    pub at: At,
    /// The mount point below `at` (`fs/cgroup`), or `""` for `at` itself.
    pub sub: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
    /// Stage 1: a failed optional entry is a warning, a required one is
    /// fatal. Stage 2: an error or a warning, the boot goes on.
    pub required: bool,
    /// Stage 2: mounted by a thread of its own (nothing needs it soon).
    pub background: bool,
}

impl Entry {
    /// Where it is mounted.
    pub fn target(&self, p: &Paths) -> PathBuf {
        let at = self.at.path(p);
        if self.sub.is_empty() {
            at
        } else {
            at.join(self.sub)
        }
    }

    /// The mount(2) call it makes.
    pub fn mount(&self, p: &Paths) -> Mount {
        Mount::new(self.source, self.target(p), self.fstype)
            .flags(self.flags)
            .data(self.data)
    }
}

/// nosuid, nodev, noexec: what a filesystem of the kernel's needs no more of.
pub const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

const fn early(fstype: &'static str, at: At, flags: MsFlags, data: &'static str) -> Entry {
    Entry {
        source: fstype,
        fstype,
        at,
        sub: "",
        flags,
        data,
        required: true,
        background: false,
    }
}

const EARLY: [Entry; 4] = [
    early("proc", At::Proc, SAFE, ""),
    early("sysfs", At::Sys, SAFE, ""),
    // Optional: without devtmpfs, stage 1 makes the nodes it needs itself
    // (from /sys/class/block/X/dev).
    Entry {
        required: false,
        ..early("devtmpfs", At::Dev, MsFlags::MS_NOSUID, "mode=0755")
    },
    early(
        "tmpfs",
        At::Run,
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        "mode=0755",
    ),
];

/// Mounts /proc, /sys, /dev and /run.
pub fn mount_all(env: &Env) -> Result<(), BootError> {
    for e in &EARLY {
        let target = e.target(&env.paths);
        let m = e.mount(&env.paths);
        if env.kernel.is_mountpoint(&target) {
            log::debug!("# already mounted: {}", target.display());
            continue;
        }
        let done = env.mkdir(&target, 0o755).and_then(|()| env.mount(&m));
        match done {
            Ok(()) => {}
            Err(source) if e.required => {
                return Err(BootError::EarlyMount {
                    line: m.to_shell(),
                    source,
                })
            }
            Err(err) => log::warn!("{}: {err} (optional; continuing)", m.to_shell()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::Fake;
    use std::time::Instant;

    #[test]
    fn mounts_the_table_in_order() {
        let k = Fake::default();
        let env = Env::new(Paths::default(), &k, Instant::now());
        mount_all(&env).unwrap();
        let mounts: Vec<String> = k
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("mount"))
            .collect();
        assert_eq!(
            mounts,
            [
                "mount -t proc -o nosuid,nodev,noexec proc /proc",
                "mount -t sysfs -o nosuid,nodev,noexec sysfs /sys",
                "mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev",
                "mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run",
            ]
        );
        assert_eq!(env.plan.borrow().len(), 4);
    }

    #[test]
    fn skips_what_is_mounted_and_tolerates_optional_failures() {
        let mut k = Fake::failing(&["devtmpfs"]);
        k.devices.insert("/proc".into(), 7);
        let env = Env::new(Paths::default(), &k, Instant::now());
        mount_all(&env).unwrap();
        let calls = k.calls().join("\n");
        assert!(!calls.contains("proc /proc"), "{calls}");
        assert!(calls.contains("tmpfs /run"), "{calls}");

        let k = Fake::failing(&["sysfs"]);
        let env = Env::new(Paths::default(), &k, Instant::now());
        let err = mount_all(&env).unwrap_err();
        assert!(err.to_string().contains("mount -t sysfs"), "{err}");
    }
}
