//! Freeing the initramfs: deleting a tree without crossing into mounts.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::kernel::Removed;

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
