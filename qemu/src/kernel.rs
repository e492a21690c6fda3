//! Finding the kernel the tests boot: Debian's `linux-image-cloud-amd64`.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A kernel image with its version and its modules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// `/boot/vmlinuz-<version>`.
    pub image: PathBuf,
    /// `uname -r` of that kernel, e.g. `6.1.0-57-cloud-amd64`.
    pub version: String,
    /// `/lib/modules/<version>`.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// The newest `/boot/vmlinuz-*-cloud-amd64` and `/lib/modules/<version>`.
    pub fn cloud() -> Result<Self> {
        Self::find(
            Path::new("/boot"),
            Path::new("/lib/modules"),
            "-cloud-amd64",
        )
    }

    /// The newest `BOOT/vmlinuz-*SUFFIX` whose modules are in `MODULES/<version>`.
    pub fn find(boot: &Path, modules: &Path, suffix: &str) -> Result<Self> {
        let entries =
            std::fs::read_dir(boot).with_context(|| format!("reading {}", boot.display()))?;
        let mut versions: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
            .filter(|v| v.ends_with(suffix))
            .collect();
        versions.sort_by(|a, b| version_cmp(a, b));
        let Some(version) = versions.pop() else {
            bail!(
                "no kernel {}/vmlinuz-*{suffix}: install linux-image-cloud-amd64 (scripts/setup)",
                boot.display()
            );
        };
        let modules_dir = modules.join(&version);
        if !modules_dir.is_dir() {
            bail!(
                "kernel {version} has no modules directory {}",
                modules_dir.display()
            );
        }
        Ok(Self {
            image: boot.join(format!("vmlinuz-{version}")),
            version,
            modules_dir,
        })
    }

    /// Debian's own initramfs-tools image for this kernel, if present.
    pub fn debian_initrd(&self) -> PathBuf {
        let boot = self.image.parent().unwrap_or(Path::new("/boot"));
        boot.join(format!("initrd.img-{}", self.version))
    }
}

/// Compares version strings the way people read them: runs of digits as
/// numbers (`6.1.0-57` is newer than `6.1.0-9`), everything else as text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..la]), trim_zeros(&b[..lb]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[la..], &b[lb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(
            version_cmp("6.1.0-57-cloud-amd64", "6.1.0-9-cloud-amd64"),
            Ordering::Greater
        );
        assert_eq!(version_cmp("6.10.0-1", "6.9.0-1"), Ordering::Greater);
        assert_eq!(version_cmp("6.1.0-1", "6.1.0-1"), Ordering::Equal);
        assert_eq!(version_cmp("6.1", "6.1.0"), Ordering::Less);
        assert_eq!(version_cmp("6.01", "6.1"), Ordering::Equal);
    }

    #[test]
    fn finds_the_newest_cloud_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let (boot, modules) = (dir.path().join("boot"), dir.path().join("modules"));
        std::fs::create_dir_all(&boot).unwrap();
        for v in [
            "6.1.0-9-cloud-amd64",
            "6.1.0-57-cloud-amd64",
            "6.2.0-1-amd64",
        ] {
            std::fs::write(boot.join(format!("vmlinuz-{v}")), "").unwrap();
            std::fs::create_dir_all(modules.join(v)).unwrap();
        }
        let k = Kernel::find(&boot, &modules, "-cloud-amd64").unwrap();
        assert_eq!(k.version, "6.1.0-57-cloud-amd64");
        assert_eq!(k.image, boot.join("vmlinuz-6.1.0-57-cloud-amd64"));
        assert_eq!(k.modules_dir, modules.join("6.1.0-57-cloud-amd64"));
    }

    #[test]
    fn says_what_to_install_when_no_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let err = Kernel::find(dir.path(), dir.path(), "-cloud-amd64").unwrap_err();
        assert!(err.to_string().contains("linux-image-cloud-amd64"), "{err}");
    }
}
