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

/// Which of [`Paths`] an entry mounts on.
#[derive(Debug, Clone, Copy)]
enum At {
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

struct Early {
    fstype: &'static str,
    at: At,
    flags: MsFlags,
    data: &'static str,
    /// A failed optional entry is a warning; a required one is fatal.
    required: bool,
}

const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

const EARLY: [Early; 4] = [
    Early {
        fstype: "proc",
        at: At::Proc,
        flags: SAFE,
        data: "",
        required: true,
    },
    Early {
        fstype: "sysfs",
        at: At::Sys,
        flags: SAFE,
        data: "",
        required: true,
    },
    // Optional: without devtmpfs, stage 1 makes the nodes it needs itself
    // (from /sys/class/block/X/dev).
    Early {
        fstype: "devtmpfs",
        at: At::Dev,
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
        required: false,
    },
    Early {
        fstype: "tmpfs",
        at: At::Run,
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
        required: true,
    },
];

/// Mounts /proc, /sys, /dev and /run.
pub fn mount_all(env: &Env) -> Result<(), BootError> {
    for e in &EARLY {
        let target = e.at.path(&env.paths);
        let m = Mount::new(e.fstype, &target, e.fstype)
            .flags(e.flags)
            .data(e.data);
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
