//! The kernel and initramfs of a version, and the boot menu (grub.cfg).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use terra_layout::{Metadata, Partition};

/// Copies the newest `boot/vmlinuz-*` and `boot/initrd.img-*` found in the
/// version's layers (top-most first) to `boot/<name>/` on the partition.
/// Returns their partition-relative paths.
pub fn copy_boot_files(
    part: &Partition,
    name: &str,
    lowers: &[String],
) -> Result<(Option<String>, Option<String>)> {
    let kernel = find(part, lowers, "vmlinuz-")?;
    let initrd = find(part, lowers, "initrd.img-")?;
    let mut out = (None, None);
    for (src, slot) in [(kernel, &mut out.0), (initrd, &mut out.1)] {
        let Some(src) = src else { continue };
        let file = src
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = format!("boot/{name}/{file}");
        let dest = part.root().join(&rel);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = dest.with_extension("tmp");
        fs::copy(&src, &tmp)
            .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &dest)?;
        log::info!("boot files: {rel}");
        *slot = Some(rel);
    }
    Ok(out)
}

/// The regular file `boot/PREFIX*` with the highest version, from the top-most
/// layer that has one (a whiteout hides lower ones).
fn find(part: &Partition, lowers: &[String], prefix: &str) -> Result<Option<std::path::PathBuf>> {
    for l in lowers {
        let boot = part.resolve(l)?.join("boot");
        // A symlinked /boot in the image is not followed.
        if !fs::symlink_metadata(&boot)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            continue;
        }
        let mut found: Vec<std::path::PathBuf> = fs::read_dir(&boot)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.path())
            .collect();
        found.sort_by(|a, b| version_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
        if let Some(last) = found.pop() {
            return Ok(Some(last));
        }
    }
    Ok(None)
}

/// Compares `6.1.0-9` < `6.1.0-10` (digits as numbers).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut num = String::new();
        let mut text = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                if !num.is_empty() {
                    out.push((num.parse().unwrap_or(0), std::mem::take(&mut text)));
                    num.clear();
                }
                text.push(c);
            }
        }
        out.push((num.parse().unwrap_or(0), text));
        out
    }
    parts(a).cmp(&parts(b))
}

/// Regenerates `boot/grub/grub.cfg` (atomically).
pub fn write(part: &Partition, meta: &Metadata) -> Result<()> {
    let cfg = terra_grub::render(meta, &terra_grub::MenuOptions::default());
    let path = part.grub_cfg();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    terra_layout::atomic::write_atomic(&path, cfg.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn remove_boot_files(part: &Partition, name: &str) -> Result<()> {
    let dir = part.boot_dir().join(name);
    if Path::new(&dir).exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = vec![
            "vmlinuz-6.1.0-10-amd64",
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-5.10.0-1",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                "vmlinuz-5.10.0-1",
                "vmlinuz-6.1.0-9-amd64",
                "vmlinuz-6.1.0-10-amd64"
            ]
        );
    }
}
