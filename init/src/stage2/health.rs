//! Boot counting's last step: once containerd answers, this version is good.

use terra_layout::partition::RUNTIME_MOUNT;
use terra_layout::{Metadata, Partition};

/// Sets `boot.good` of the booted version in `ov/metadata.db` (atomically; left
/// alone when already good). Failures are logged: the system runs anyway.
pub fn mark_boot_good(version: &str) {
    let path = Partition::new(RUNTIME_MOUNT).metadata();
    let mut meta = match Metadata::load(&path) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("boot counting: reading {}: {e}", path.display());
            return;
        }
    };
    let Some(rec) = meta.versions.get_mut(version) else {
        log::warn!(
            "boot counting: version {version} is not in {}",
            path.display()
        );
        return;
    };
    if rec.boot.good {
        return;
    }
    rec.boot.good = true;
    match meta.store(&path) {
        Ok(()) => log::info!("boot counting: version {version} marked good"),
        Err(e) => log::warn!("boot counting: writing {}: {e}", path.display()),
    }
}
