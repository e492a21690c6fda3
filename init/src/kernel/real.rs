//! [`Kernel`] on the real kernel, through `nix` and `std`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};

use super::{Kernel, Mount, Node, Removed};

/// The running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Real;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

impl Kernel for Real {
    fn mount(&self, m: &Mount) -> io::Result<()> {
        nix::mount::mount(
            Some(m.source.as_str()),
            &m.target,
            m.fstype.as_deref(),
            m.flags,
            m.data.as_deref(),
        )?;
        Ok(())
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        Ok(umount2(target, MntFlags::MNT_DETACH)?)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn mknod(&self, path: &Path, kind: Node, major: u64, minor: u64, mode: u32) -> io::Result<()> {
        let kind = match kind {
            Node::Block => SFlag::S_IFBLK,
            Node::Char => SFlag::S_IFCHR,
        };
        let perm = Mode::from_bits_truncate(mode);
        Ok(nix::sys::stat::mknod(
            path,
            kind,
            perm,
            makedev(major, minor),
        )?)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
        Ok(())
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chroot(path)?)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(path)?)
    }

    fn exec(&self, path: &str, args: &[String]) -> io::Error {
        let run = || -> io::Result<()> {
            let path = cstring(path)?;
            let argv = args
                .iter()
                .map(|a| cstring(a))
                .collect::<io::Result<Vec<_>>>()?;
            nix::unistd::execv(&path, &argv)?;
            Ok(())
        };
        match run() {
            Err(e) => e,
            Ok(()) => io::Error::other("execv returned"),
        }
    }

    fn finit_module(&self, path: &Path, params: &str) -> io::Result<()> {
        let file = fs::File::open(path)?;
        let params = cstring(params)?;
        Ok(finit_module(&file, &params, ModuleInitFlags::empty())?)
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn device_of(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.dev())
    }

    fn fs_magic(&self, path: &Path) -> io::Result<u64> {
        // f_type is a signed word in glibc; the magic numbers are positive.
        Ok(nix::sys::statfs::statfs(path)?.filesystem_type().0 as u64)
    }

    fn remove_tree(&self, root: &Path, dev: u64) -> io::Result<Removed> {
        remove_tree(root, dev)
    }
}

/// Deletes what is under `root` on filesystem `dev`; `root` itself stays.
/// Entries on another filesystem (mount points) are left alone, and so is
/// everything below them. A file that cannot be deleted is counted, not
/// fatal: it only costs memory.
pub fn remove_tree(root: &Path, dev: u64) -> io::Result<Removed> {
    let mut removed = Removed::default();
    remove_children(root, dev, &mut removed)?;
    Ok(removed)
}

fn remove_children(dir: &Path, dev: u64, r: &mut Removed) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            r.failed += 1;
            continue;
        };
        if meta.dev() != dev {
            r.skipped_mounts += 1;
            continue;
        }
        let done = if meta.is_dir() {
            if remove_children(&path, dev, r).is_err() {
                r.failed += 1;
            }
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match done {
            Ok(()) => r.files += 1,
            Err(_) => r.failed += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_everything_on_the_same_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/b/c/f"), "x").unwrap();
        fs::write(root.join("init"), "x").unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("a/link")).unwrap();
        let dev = fs::metadata(root).unwrap().dev();
        let r = remove_tree(root, dev).unwrap();
        assert_eq!(r.files, 6);
        assert_eq!(r.failed, 0);
        assert!(root.exists());
        assert_eq!(fs::read_dir(root).unwrap().count(), 0);
    }

    #[test]
    fn leaves_other_filesystems_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "x").unwrap();
        let r = remove_tree(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            r,
            Removed {
                files: 0,
                skipped_mounts: 1,
                failed: 0
            }
        );
        assert!(dir.path().join("f").exists());
    }
}
