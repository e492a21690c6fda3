//! Step 4: load the kernel modules mkinitrd put in the initramfs.
//!
//! The list ([`terra_layout::initramfs::MODULES_FILE`], read with
//! [`ModuleList::parse`], the same type mkinitrd writes it with) names them
//! in load order, dependencies first. Each is loaded with finit_module(2)
//! (the kernel reads the file itself: no copy through userspace). Already
//! loaded (EEXIST) is fine; a missing or failing module is a warning,
//! because the disk may not need it.

use std::io;
use std::path::Path;
use std::time::Instant;

use terra_layout::initramfs::ModuleList;

use crate::env::Env;

/// What loading did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub loaded: usize,
    pub already: usize,
    pub failed: Vec<String>,
}

/// Loads every module of the list, in order.
pub fn load_all(env: &Env) -> Loaded {
    let mut out = Loaded::default();
    let text = match std::fs::read_to_string(&env.paths.modules) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::debug!("no {}: no modules to load", env.paths.modules.display());
            return out;
        }
        Err(e) => {
            log::warn!(
                "cannot read {}: {e}; loading no modules",
                env.paths.modules.display()
            );
            return out;
        }
    };
    for m in ModuleList::parse(&text).modules() {
        let t = Instant::now();
        match env.kernel.finit_module(Path::new(&m.path), &m.params) {
            Ok(()) => {
                out.loaded += 1;
                log::debug!(
                    "insmod {} {}({:.1} ms)",
                    m.path,
                    if m.params.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", m.params)
                    },
                    t.elapsed().as_secs_f64() * 1000.0
                );
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => {
                out.already += 1;
                log::debug!("module {} is already loaded", m.name());
            }
            Err(e) => {
                log::warn!("cannot load module {} ({}): {e}", m.name(), m.path);
                out.failed.push(m.name().to_string());
            }
        }
    }
    log::debug!(
        "modules: {} loaded, {} already there, {} failed",
        out.loaded,
        out.already,
        out.failed.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Paths;
    use crate::kernel::fake::Fake;
    use terra_layout::initramfs::{NodeKind, SKELETON};

    #[test]
    fn loads_in_order_and_failures_are_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("modules");
        std::fs::write(&list, "/m/a.ko\n/m/bad.ko\n/m/c.ko x=1\n").unwrap();
        let k = Fake::failing(&["bad.ko"]);
        let paths = Paths {
            modules: list,
            ..Paths::default()
        };
        let env = Env::new(paths, &k, Instant::now());
        let loaded = load_all(&env);
        assert_eq!(
            k.calls(),
            ["insmod /m/a.ko", "insmod /m/bad.ko", "insmod /m/c.ko x=1"]
        );
        assert_eq!(loaded.loaded, 2);
        assert_eq!(loaded.failed, ["bad"]);
    }

    /// What mkinitrd writes (comments, options) is what stage 1 loads.
    #[test]
    fn loads_the_list_as_mkinitrd_writes_it() {
        let mut written = ModuleList::new();
        written
            .comment("Kernel modules for 6.1, in load order.")
            .unwrap();
        written.push("/lib/modules/6.1/virtio.ko", "").unwrap();
        written
            .push("/lib/modules/6.1/virtio_blk.ko", "queue_depth=64")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("modules");
        std::fs::write(&list, written.render()).unwrap();
        let k = Fake::default();
        let paths = Paths {
            modules: list,
            ..Paths::default()
        };
        let env = Env::new(paths, &k, Instant::now());
        assert_eq!(load_all(&env).loaded, 2);
        assert_eq!(
            k.calls(),
            [
                "insmod /lib/modules/6.1/virtio.ko",
                "insmod /lib/modules/6.1/virtio_blk.ko queue_depth=64"
            ]
        );
    }

    /// Stage 1 reads the list where mkinitrd writes it and mounts on
    /// directories mkinitrd creates (the skeleton both take from
    /// terra-layout).
    #[test]
    fn default_paths_are_in_the_initramfs_skeleton() {
        let p = Paths::default();
        let dirs: Vec<&Path> = SKELETON
            .iter()
            .filter(|n| n.kind == NodeKind::Dir)
            .map(|n| Path::new(n.path))
            .collect();
        let used = [
            p.modules.parent(),
            Some(p.newroot.as_path()),
            Some(p.proc.as_path()),
            Some(p.sys.as_path()),
            Some(p.dev.as_path()),
            Some(p.run.as_path()),
        ];
        for dir in used {
            let dir = dir.unwrap();
            assert!(
                dirs.contains(&dir),
                "{} is not in the skeleton",
                dir.display()
            );
        }
    }

    #[test]
    fn no_list_means_no_modules() {
        let k = Fake::default();
        let paths = Paths {
            modules: "/nonexistent/modules".into(),
            ..Paths::default()
        };
        let env = Env::new(paths, &k, Instant::now());
        assert_eq!(load_all(&env), Loaded::default());
        assert!(k.calls().is_empty());
    }
}
