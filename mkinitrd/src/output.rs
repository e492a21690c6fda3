//! Writing the image: all or nothing.
//!
//! The image is built in memory first, so a build that fails never touches
//! the output. The write itself goes to a temporary file beside the target,
//! is fsynced, and renamed over it ([`terra_layout::atomic::write_atomic`]):
//! a crash or error leaves either the previous image or the new one, never a
//! half file, and the temporary file is removed on error.
//!
//! An output that is a symlink (`/boot/initrd.img -> initrd.img-6.1.0-9`, as
//! Debian lays out `/boot`) is written through, deliberately: the file it
//! names is replaced, atomically as above, and the link stays, so what
//! points at the image keeps doing so.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Links followed before giving up (the kernel's own limit, ELOOP).
const MAX_LINKS: usize = 40;

/// Replaces `path` (or the file a symlink at `path` names) with `bytes`
/// atomically and durably. Returns the file written.
pub fn write_image(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let target = through_links(path)?;
    if target != path {
        eprintln!(
            "mkinitrd: {} is a symlink: writing through it to {}",
            path.display(),
            target.display()
        );
    }
    terra_layout::atomic::write_atomic(&target, bytes)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(target)
}

/// `path` with every symlink at its end followed (a dangling one too: the
/// file it names is created).
fn through_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)
                    .with_context(|| format!("reading the symlink {}", p.display()))?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    bail!("{}: more than {MAX_LINKS} symlinks", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_output_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("initrd.img-6.1.0-9");
        let link = dir.path().join("initrd.img");
        std::fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink("initrd.img-6.1.0-9", &link).unwrap();
        assert_eq!(write_image(&link, b"new").unwrap(), real);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A dangling link names the file to create; a plain path is itself.
        let dangling = dir.path().join("next");
        std::os::unix::fs::symlink("initrd.img-6.1.0-10", &dangling).unwrap();
        write_image(&dangling, b"x").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("initrd.img-6.1.0-10")).unwrap(),
            b"x"
        );
        let plain = dir.path().join("plain.img");
        assert_eq!(write_image(&plain, b"p").unwrap(), plain);
        // A loop is an error, not a hang.
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(write_image(&a, b"x").is_err());
    }
}
