//! Step 4: load the kernel modules mkinitrd put in the initramfs.
//!
//! `/etc/terra/modules` lists them in load order, dependencies first:
//! `<absolute path>[ <parameters>]` per line, `#` comments and blank lines
//! ignored. Each is loaded with finit_module(2) (the kernel reads the file
//! itself: no copy through userspace). Already loaded (EEXIST) is fine; a
//! missing or failing module is a warning, because the disk may not need it.

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use crate::env::Env;

/// One line of the module list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLine {
    pub path: PathBuf,
    pub params: String,
}

impl ModuleLine {
    /// `virtio_blk` for `/lib/modules/K/kernel/drivers/block/virtio_blk.ko`.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        let file = file.unwrap_or_default();
        file.strip_suffix(".ko").unwrap_or(&file).to_string()
    }
}

/// Parses the module list. Pure.
pub fn parse(text: &str) -> Vec<ModuleLine> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (path, params) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            ModuleLine {
                path: PathBuf::from(path),
                params: params.trim().to_string(),
            }
        })
        .collect()
}

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
    for m in parse(&text) {
        let t = Instant::now();
        match env.kernel.finit_module(&m.path, &m.params) {
            Ok(()) => {
                out.loaded += 1;
                log::debug!(
                    "insmod {} {}({:.1} ms)",
                    m.path.display(),
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
                log::warn!(
                    "cannot load module {} ({}): {e}",
                    m.name(),
                    m.path.display()
                );
                out.failed.push(m.name());
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

    #[test]
    fn parses_paths_params_and_comments() {
        let text = "# load order\n\n/lib/modules/6.1/virtio.ko\n  /lib/modules/6.1/loop.ko max_loop=8 max_part=2 \n#x\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].path, PathBuf::from("/lib/modules/6.1/virtio.ko"));
        assert_eq!(m[0].params, "");
        assert_eq!(m[1].params, "max_loop=8 max_part=2");
        assert_eq!(m[1].name(), "loop");
    }

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
