//! The kernel and initramfs of a version, and the boot menu (grub.cfg).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use terra_layout::partition::is_boot_own_name;
use terra_layout::record::check_name;
use terra_layout::{Metadata, Partition, VersionRecord};

/// Copies the image's kernel and its initramfs (`boot/vmlinuz-V` and
/// `boot/initrd.img-V` of the same V, see [`pick_pair`]) to `boot/<name>/`
/// on the partition. Returns their partition-relative paths.
pub fn copy_boot_files(
    part: &Partition,
    name: &str,
    lowers: &[String],
) -> Result<(Option<String>, Option<String>)> {
    let files = merged_boot(part, lowers)?;
    let (kernel, initrd) = pick_pair(files.keys().map(String::as_str))?;
    let mut out = (None, None);
    for (file, slot) in [(kernel, &mut out.0), (initrd, &mut out.1)] {
        let Some(file) = file else { continue };
        let Some(src) = files.get(&file) else {
            continue;
        };
        let rel = format!("boot/{name}/{file}");
        let dest = part.root().join(&rel);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = dest.with_extension("tmp");
        fs::copy(src, &tmp)
            .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &dest)?;
        log::info!("boot files: {rel}");
        *slot = Some(rel);
    }
    Ok(out)
}

/// The regular files `vmlinuz-*` and `initrd.img-*` of the image's `/boot`
/// as the booted overlay shows it: layers top-most first, a name in a
/// higher layer hides it in lower ones (a whiteout, a 0/0 character device,
/// hides it altogether), and an opaque `/boot` hides every lower layer's.
fn merged_boot(part: &Partition, lowers: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut seen: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for l in lowers {
        let boot = part.resolve(l)?.join("boot");
        // A symlinked /boot in the image is not followed.
        if !fs::symlink_metadata(&boot).is_ok_and(|m| m.is_dir()) {
            if fs::symlink_metadata(&boot).is_ok() {
                break; // a file, link or whiteout hides the lower /boot
            }
            continue;
        }
        for e in fs::read_dir(&boot)?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !(n.starts_with(KERNEL) || n.starts_with(INITRD)) || seen.contains_key(&n) {
                continue;
            }
            let file = e.file_type().is_ok_and(|t| t.is_file());
            seen.insert(n, file.then(|| e.path()));
        }
        let opaque = rustix::fs::lgetxattr(&boot, "trusted.overlay.opaque", &mut [0u8; 4])
            .is_ok_and(|n| n == 1);
        if opaque {
            break;
        }
    }
    Ok(seen
        .into_iter()
        .filter_map(|(n, p)| Some((n, p?)))
        .collect())
}

const KERNEL: &str = "vmlinuz-";
const INITRD: &str = "initrd.img-";

/// An image's `/boot` that does not name one kernel and its initramfs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootPairError {
    #[error("the image's /boot has {0} but no vmlinuz-*: expected the kernel of the same version beside it")]
    NoKernel(String),
    #[error("the image's /boot has {kernel} but not {want} (its initramfs of that version); it has {found}")]
    NoInitrd {
        kernel: String,
        want: String,
        found: String,
    },
    #[error("the image's /boot has {0} and {1}, which name the same version: ambiguous")]
    Ambiguous(String, String),
}

/// Pairs the kernel with its initramfs by version: the newest
/// `vmlinuz-V`, with `initrd.img-V`. A kernel alone (no initramfs at all in
/// the image) is taken alone; an initramfs of another version is never
/// paired with it, and the image is refused with the names it has.
pub fn pick_pair<'a>(
    names: impl Iterator<Item = &'a str>,
) -> Result<(Option<String>, Option<String>), BootPairError> {
    let (mut kernels, mut initrds): (Vec<&str>, Vec<&str>) = (vec![], vec![]);
    for n in names {
        if let Some(v) = n.strip_prefix(KERNEL) {
            kernels.push(v);
        } else if let Some(v) = n.strip_prefix(INITRD) {
            initrds.push(v);
        }
    }
    kernels.sort_by(|a, b| version_cmp(a, b));
    let Some(&newest) = kernels.last() else {
        return match initrds.first() {
            Some(i) => Err(BootPairError::NoKernel(format!("{INITRD}{i}"))),
            None => Ok((None, None)),
        };
    };
    if let [.., a, b] = kernels.as_slice() {
        if version_cmp(a, b).is_eq() {
            return Err(BootPairError::Ambiguous(
                format!("{KERNEL}{a}"),
                format!("{KERNEL}{b}"),
            ));
        }
    }
    let kernel = format!("{KERNEL}{newest}");
    if initrds.is_empty() {
        return Ok((Some(kernel), None));
    }
    if !initrds.contains(&newest) {
        initrds.sort_by(|a, b| version_cmp(a, b));
        let found: Vec<String> = initrds.iter().map(|i| format!("{INITRD}{i}")).collect();
        return Err(BootPairError::NoInitrd {
            kernel,
            want: format!("{INITRD}{newest}"),
            found: found.join(", "),
        });
    }
    Ok((Some(kernel), Some(format!("{INITRD}{newest}"))))
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

/// Removes the boot files `rec` names for version `name` (the files Terra
/// copied to `boot/<name>/`), then that directory if nothing else is left
/// in it: a file Terra did not put there is kept.
pub fn remove_boot_files(part: &Partition, name: &str, rec: &VersionRecord) -> Result<()> {
    if is_boot_own_name(name) {
        return Ok(()); // never a version's directory (older terra allowed the name)
    }
    let dir = part.boot_dir().join(name);
    let own = format!("boot/{name}/");
    for rel in [&rec.kernel, &rec.initrd].into_iter().flatten() {
        let Some(file) = rel.strip_prefix(&own) else {
            continue;
        };
        if file.contains('/') {
            continue;
        }
        let path = dir.join(file);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    if is_boot_files_dir(&dir, name) {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    } else if dir.exists() {
        log::warn!(
            "keeping {}: it holds files terra did not put there",
            dir.display()
        );
    }
    Ok(())
}

/// Whether `dir` (`boot/<name>/`) is what [`copy_boot_files`] makes: a
/// directory named like a version (not GRUB's or the EFI one) that holds
/// nothing but kernels and initrds (and their temporary copies).
pub fn is_boot_files_dir(dir: &Path, name: &str) -> bool {
    if check_name(name).is_err() || is_boot_own_name(name) {
        return false;
    }
    // A symlink is not followed: it is not what terra makes.
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().all(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        e.file_type().is_ok_and(|t| t.is_file())
            && (n.starts_with("vmlinuz-") || n.starts_with("initrd.img-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> Result<(Option<String>, Option<String>), BootPairError> {
        pick_pair(names.iter().copied())
    }

    #[test]
    fn kernel_and_initrd_are_paired_by_version() {
        let both = |k: &str, i: &str| Ok((Some(k.to_string()), Some(i.to_string())));
        assert_eq!(
            pair(&["vmlinuz-6.1.0-9", "vmlinuz-6.1.0-10", "initrd.img-6.1.0-10"]),
            both("vmlinuz-6.1.0-10", "initrd.img-6.1.0-10")
        );
        assert_eq!(
            pair(&["initrd.img-6.1.0-test", "vmlinuz-6.1.0-test2"]),
            Err(BootPairError::NoInitrd {
                kernel: "vmlinuz-6.1.0-test2".into(),
                want: "initrd.img-6.1.0-test2".into(),
                found: "initrd.img-6.1.0-test".into()
            })
        );
        assert_eq!(
            pair(&[
                "vmlinuz-6.1.0-11",
                "vmlinuz-6.1.0-10",
                "initrd.img-6.1.0-10"
            ]),
            Err(BootPairError::NoInitrd {
                kernel: "vmlinuz-6.1.0-11".into(),
                want: "initrd.img-6.1.0-11".into(),
                found: "initrd.img-6.1.0-10".into()
            })
        );
        assert_eq!(
            pair(&["initrd.img-6.1.0-1"]),
            Err(BootPairError::NoKernel("initrd.img-6.1.0-1".into()))
        );
        assert!(matches!(
            pair(&["vmlinuz-6.1.0-01", "vmlinuz-6.1.0-1", "initrd.img-6.1.0-1"]),
            Err(BootPairError::Ambiguous(..))
        ));
        assert_eq!(
            pair(&["vmlinuz-6.1"]),
            Ok((Some("vmlinuz-6.1".into()), None))
        );
        assert_eq!(pair(&["config-6.1"]), Ok((None, None)));
    }

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
