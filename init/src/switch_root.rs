//! Step 9: switch root, the way a careful initramfs does.
//!
//! Each step has its own error; the order matters and is unit-tested with
//! the recording fake:
//! 1. guards, before anything destructive: we are PID 1 (only PID 1 may take
//!    over the root), the new root is another filesystem (else we would
//!    delete what we are about to boot), and `/` is the initramfs (ramfs or
//!    tmpfs by statfs magic: we never delete a real disk's files);
//! 2. move /dev, /proc, /sys and /run into the new root (moving, not
//!    re-mounting: devtmpfs nodes, and the partition mounted under /run,
//!    stay as they are);
//! 3. delete the initramfs's files, staying on `/`'s filesystem: rootfs
//!    cannot be unmounted, so this is the only way to give its memory back;
//!    it comes after the moves so that their now-empty mount points go too;
//! 4. chdir into the new root and move it onto `/` (mount --move . /),
//!    then chroot "." and chdir "/" so that `/` and the cwd are the new root.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::env::Env;
use crate::error::BootError;

/// include/uapi/linux/magic.h
const RAMFS_MAGIC: u64 = 0x8584_58f6;
const TMPFS_MAGIC: u64 = 0x0102_1994;

fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

pub fn run(env: &Env) -> Result<(), BootError> {
    let k = env.kernel;
    let p = &env.paths;
    let fail = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BootError::SwitchRoot { step, path, source }
    };

    // 1. Guards.
    let pid = k.pid();
    if pid != 1 {
        return Err(BootError::SwitchGuard {
            what: format!("we are PID {pid}, not PID 1"),
        });
    }
    let root_dev = k.device_of(&p.root).map_err(fail("stat", &p.root))?;
    let new_dev = k.device_of(&p.newroot).map_err(fail("stat", &p.newroot))?;
    if root_dev == new_dev {
        return Err(BootError::SwitchGuard {
            what: format!("nothing is mounted at {}", p.newroot.display()),
        });
    }
    let magic = k.fs_magic(&p.root).map_err(fail("statfs", &p.root))?;
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return Err(BootError::SwitchGuard {
            what: format!(
                "/ is not an initramfs (filesystem magic {magic:#x}, not ramfs or tmpfs)"
            ),
        });
    }

    // 2. Move the kernel's filesystems (and /run with the partition) over.
    for dir in [&p.dev, &p.proc, &p.sys, &p.run] {
        let target = under(&p.newroot, dir);
        k.mkdir_all(&target, 0o755)
            .map_err(fail("mkdir", &target))?;
        log::debug!("mount --move {} {}", dir.display(), target.display());
        k.move_mount(dir, &target)
            .map_err(fail("mount --move", dir))?;
    }

    // 3. Free the initramfs. Not fatal: leftovers only cost memory.
    match k.remove_tree(&p.root, root_dev) {
        Ok(r) if r.failed == 0 => log::debug!("freed the initramfs: {} entries deleted", r.files),
        Ok(r) => log::warn!(
            "freeing the initramfs: {} entries could not be deleted",
            r.failed
        ),
        Err(e) => log::warn!("cannot free the initramfs: {e}"),
    }

    // 4. The new root becomes /.
    k.chdir(&p.newroot).map_err(fail("chdir", &p.newroot))?;
    k.move_mount(Path::new("."), &p.root)
        .map_err(fail("mount --move . ", &p.root))?;
    k.chroot(Path::new("."))
        .map_err(fail("chroot", Path::new(".")))?;
    crate::fatal::SWITCHED.store(true, Ordering::SeqCst);
    k.chdir(Path::new("/"))
        .map_err(fail("chdir", Path::new("/")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Paths;
    use crate::kernel::fake::Fake;
    use std::time::Instant;

    fn fake() -> Fake {
        let mut k = Fake::default();
        k.devices.insert("/newroot".into(), 2);
        k
    }

    #[test]
    fn moves_frees_then_pivots_in_order() {
        let k = fake();
        let env = Env::new(Paths::default(), &k, Instant::now());
        run(&env).unwrap();
        assert_eq!(
            k.calls(),
            [
                "mkdir -p -m 755 /newroot/dev",
                "mount --move /dev /newroot/dev",
                "mkdir -p -m 755 /newroot/proc",
                "mount --move /proc /newroot/proc",
                "mkdir -p -m 755 /newroot/sys",
                "mount --move /sys /newroot/sys",
                "mkdir -p -m 755 /newroot/run",
                "mount --move /run /newroot/run",
                "rm -rf --one-file-system / (dev 1)",
                "cd /newroot",
                "mount --move . /",
                "chroot .",
                "cd /",
            ]
        );
    }

    #[test]
    fn guards_refuse_before_touching_anything() {
        let mut k = fake();
        k.pid = 42;
        let env = Env::new(Paths::default(), &k, Instant::now());
        assert!(run(&env).unwrap_err().to_string().contains("PID 42"));

        let k = Fake::default(); // nothing mounted at /newroot
        let env = Env::new(Paths::default(), &k, Instant::now());
        assert!(run(&env)
            .unwrap_err()
            .to_string()
            .contains("nothing is mounted at /newroot"));
        assert!(k.calls().is_empty());

        let mut k = fake();
        k.magic.insert("/".into(), 0xEF53);
        let env = Env::new(Paths::default(), &k, Instant::now());
        let err = run(&env).unwrap_err().to_string();
        assert!(
            err.contains("not an initramfs (filesystem magic 0xef53"),
            "{err}"
        );
        assert!(k.calls().is_empty());
    }

    #[test]
    fn a_failed_move_stops_with_its_own_error() {
        let mut k = Fake::failing(&["--move /sys"]);
        k.devices.insert("/newroot".into(), 2);
        let env = Env::new(Paths::default(), &k, Instant::now());
        let err = run(&env).unwrap_err().to_string();
        assert_eq!(err, "switch root failed: mount --move /sys");
        assert!(!k.calls().iter().any(|c| c.starts_with("rm ")));
    }
}
