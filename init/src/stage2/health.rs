//! The good mark: once containerd answers, this version is marked good in its
//! boot record. (Boot counting, which will read the mark, is planned.)

use std::path::Path;

use terra_layout::{Metadata, Partition};

use crate::env::Env;

/// Sets `boot.good` of the booted version in the running system's
/// partition (`Paths::partition`, `/run/terra/partition`).
pub fn mark_boot_good(env: &Env, version: &str) {
    mark_good_at(&env.paths.partition, version);
}

/// Sets `boot.good` of `version` in `ov/metadata.db` under `root`
/// (atomically; left alone when already good). Failures are logged: the
/// system runs anyway. Returns whether the record was written.
pub fn mark_good_at(root: &Path, version: &str) -> bool {
    let path = Partition::new(root).metadata();
    let mut meta = match Metadata::load(&path) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("boot counting: reading {}: {e}", path.display());
            return false;
        }
    };
    let Some(rec) = meta.versions.get_mut(version) else {
        log::warn!(
            "boot counting: version {version} is not in {}",
            path.display()
        );
        return false;
    };
    if rec.boot.good {
        return false;
    }
    rec.boot.good = true;
    match meta.store(&path) {
        Ok(()) => {
            log::info!("boot counting: version {version} marked good");
            true
        }
        Err(e) => {
            log::warn!("boot counting: writing {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terra_layout::record::{BootState, Handoff, VersionRecord};

    fn record(tries: Option<u32>) -> VersionRecord {
        VersionRecord {
            lowers: vec!["ov/snapshots/sha256-a".into()],
            upper: "ov/snapshots/rw-v1/upper".into(),
            work: "ov/snapshots/rw-v1/work".into(),
            handoff: Handoff::Supervise,
            kernel: None,
            initrd: None,
            image: None,
            installed_at: 1,
            size: 0,
            boot: BootState {
                tries_left: tries,
                good: false,
                last_failure: None,
                failed_at: None,
            },
        }
    }

    #[test]
    fn marks_the_booted_version_good_once() {
        let dir = tempfile::tempdir().unwrap();
        let part = Partition::new(dir.path());
        std::fs::create_dir_all(dir.path().join("ov")).unwrap();
        let mut meta = Metadata::default();
        meta.versions.insert("v1".into(), record(Some(2)));
        meta.versions.insert("v2".into(), record(None));
        meta.store(&part.metadata()).unwrap();

        assert!(mark_good_at(dir.path(), "v1"));
        let after = Metadata::load(&part.metadata()).unwrap();
        assert!(after.versions["v1"].boot.good);
        assert_eq!(after.versions["v1"].boot.tries_left, Some(2));
        assert!(!after.versions["v2"].boot.good);
        // Already good: nothing written.
        assert!(!mark_good_at(dir.path(), "v1"));
    }

    #[test]
    fn unknown_versions_and_missing_partitions_are_survived() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!mark_good_at(dir.path(), "v1"));
        assert!(!mark_good_at(&dir.path().join("nope"), "v1"));
    }
}
