//! Kernel modules: which files a set of module names needs, in load order.
//!
//! [`parse`] reads depmod's index files, [`ModuleDb`] holds them for one
//! kernel, [`resolve`] turns requested names into a load order with a reason
//! for every module, and [`ModuleSet`] names the default sets.

pub mod parse;
pub mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use parse::{normalize, Alias, DepEntry, SoftDep};
pub use resolve::{resolve, Request, Resolution, Root};

/// A module file known to `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Path relative to the modules directory, as on disk (maybe compressed).
    pub path: String,
    /// Canonical names of the modules it needs (modules.dep order).
    pub deps: Vec<String>,
}

/// The module index of one kernel: what `modules.dep`, `modules.softdep`,
/// `modules.alias`, `modules.builtin` (and `modules.builtin.modinfo`) say.
#[derive(Debug, Clone, Default)]
pub struct ModuleDb {
    /// Loadable modules by canonical name.
    pub modules: BTreeMap<String, Module>,
    /// Canonical names of the modules compiled into the kernel.
    pub builtin: BTreeSet<String>,
    /// Aliases of loadable modules (`modules.alias`).
    pub aliases: Vec<Alias>,
    /// Aliases of built-in modules (`modules.builtin.modinfo`).
    pub builtin_aliases: Vec<Alias>,
    /// Soft dependencies by canonical module name (lines merged).
    pub softdeps: BTreeMap<String, SoftDep>,
}

/// What a name stands for in one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Loadable modules (one for a module name, maybe several for an alias).
    Modules(Vec<String>),
    /// Compiled into the kernel: nothing to load.
    Builtin(String),
    /// Neither.
    Unknown,
}

impl ModuleDb {
    /// Builds the index from already-read file contents (any may be empty).
    pub fn from_texts(
        dep: &str,
        softdep: &str,
        alias: &str,
        builtin: &str,
        builtin_modinfo: &[u8],
    ) -> Result<Self> {
        let mut db = ModuleDb::default();
        for entry in parse::parse_modules_dep(dep)? {
            db.modules.insert(
                entry.name(),
                Module {
                    deps: entry.deps.iter().map(|d| parse::module_name(d)).collect(),
                    path: entry.path,
                },
            );
        }
        for sd in parse::parse_modules_softdep(softdep)? {
            let merged = db
                .softdeps
                .entry(sd.module.clone())
                .or_insert_with(|| SoftDep {
                    module: sd.module.clone(),
                    ..SoftDep::default()
                });
            merged.pre.extend(sd.pre);
            merged.post.extend(sd.post);
        }
        db.aliases = parse::parse_modules_alias(alias)?;
        db.builtin = parse::parse_modules_builtin(builtin).into_iter().collect();
        db.builtin_aliases = parse::parse_builtin_modinfo(builtin_modinfo);
        Ok(db)
    }

    /// Reads the index files of `dir` (e.g. `/lib/modules/6.1.0-57-cloud-amd64`).
    /// `modules.dep` is required (run `depmod KVER` if it is missing); the
    /// others are optional.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("modules directory {} does not exist", dir.display());
        }
        let dep_path = dir.join("modules.dep");
        let dep = fs::read_to_string(&dep_path).with_context(|| {
            format!(
                "reading {} (run `depmod KVER` to create it)",
                dep_path.display()
            )
        })?;
        let optional = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            }
        };
        let text = |bytes: Vec<u8>, name: &str| -> Result<String> {
            String::from_utf8(bytes)
                .with_context(|| format!("{name} in {} is not UTF-8", dir.display()))
        };
        let softdep = text(optional("modules.softdep")?, "modules.softdep")?;
        let alias = text(optional("modules.alias")?, "modules.alias")?;
        let builtin = text(optional("modules.builtin")?, "modules.builtin")?;
        let modinfo = optional("modules.builtin.modinfo")?;
        Self::from_texts(&dep, &softdep, &alias, &builtin, &modinfo)
            .with_context(|| format!("in {}", dir.display()))
    }

    /// What `name` (a module name or an alias; `-` and `_` alike) means here.
    pub fn lookup(&self, name: &str) -> Lookup {
        let canonical = normalize(name);
        if self.modules.contains_key(&canonical) {
            return Lookup::Modules(vec![canonical]);
        }
        if self.builtin.contains(&canonical) {
            return Lookup::Builtin(canonical);
        }
        let mut found: Vec<String> = self
            .aliases
            .iter()
            .filter(|a| a.matches(name))
            .map(|a| a.module.clone())
            .filter(|m| self.modules.contains_key(m))
            .collect();
        if !found.is_empty() {
            found.sort();
            found.dedup();
            return Lookup::Modules(found);
        }
        if let Some(a) = self.builtin_aliases.iter().find(|a| a.matches(name)) {
            return Lookup::Builtin(a.module.clone());
        }
        Lookup::Unknown
    }

    /// Up to three known module names close to `name`, for "did you mean".
    pub fn suggestions(&self, name: &str) -> Vec<String> {
        let canonical = normalize(name);
        let mut scored: Vec<(usize, &String)> = self
            .modules
            .keys()
            .chain(self.builtin.iter())
            .filter_map(|known| {
                let d = edit_distance(&canonical, known);
                let close = d <= 2 || (canonical.len() >= 4 && known.contains(canonical.as_str()));
                close.then_some((d, known))
            })
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }

    /// The file of a loadable module on the host.
    pub fn file(&self, dir: &Path, name: &str) -> Option<PathBuf> {
        self.modules.get(name).map(|m| dir.join(&m.path))
    }
}

/// Levenshtein distance (small strings only: module names).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The default module sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModuleSet {
    /// What a QEMU guest with virtio disks and a virtio NIC needs:
    /// virtio_pci, virtio_blk, overlay, virtio_net (the network is set up
    /// after the switch, but the root's image carries no modules of its own).
    Vm,
    /// Common VMs and servers: virtio (pci, blk, scsi), nvme, ahci + sd_mod,
    /// usb-storage + xhci, overlay, ext4 (each when the kernel has it as a module).
    Server,
    /// No modules beyond those named with --module.
    None,
}

impl ModuleSet {
    /// The module names in this set.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            ModuleSet::Vm => &["virtio_pci", "virtio_blk", "overlay", "virtio_net"],
            ModuleSet::Server => &[
                "virtio_pci",
                "virtio_blk",
                "virtio_scsi",
                "nvme",
                "ahci",
                "sd_mod",
                "xhci_pci",
                "usb_storage",
                "uas",
                "overlay",
                "ext4",
                "virtio_net",
            ],
            ModuleSet::None => &[],
        }
    }

    /// The name users type (`vm`, `server`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            ModuleSet::Vm => "vm",
            ModuleSet::Server => "server",
            ModuleSet::None => "none",
        }
    }
}

#[cfg(test)]
pub(crate) mod testdata {
    use super::ModuleDb;

    /// A small made-up kernel: `blk` needs `ring` and `core` (core needs
    /// ring); `fs-thing` is built in; `crypto` softdeps.
    pub fn db() -> ModuleDb {
        ModuleDb::from_texts(
            "kernel/drivers/blk.ko: kernel/drivers/core.ko kernel/lib/ring.ko.xz\n\
             kernel/drivers/core.ko: kernel/lib/ring.ko.xz\n\
             kernel/lib/ring.ko.xz:\n\
             kernel/fs/my-fs.ko.zst: kernel/lib/crc-thing.ko\n\
             kernel/lib/crc-thing.ko:\n\
             kernel/lib/helper.ko:\n\
             kernel/lib/after.ko:\n",
            "# softdeps\nsoftdep my_fs pre: crypto-crc helper post: after\nsoftdep blk pre: no-such-thing\n",
            "alias crypto-crc crc_thing\nalias pci:v1AF4d* blk\nalias fs-myfs my_fs\n",
            "kernel/fs/ext4/ext4.ko\n",
            b"ext4.alias=fs-ext4\0",
        )
        .expect("valid test data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_aliases_and_builtins() {
        let db = testdata::db();
        assert_eq!(db.lookup("blk"), Lookup::Modules(vec!["blk".into()]));
        assert_eq!(db.lookup("my-fs"), Lookup::Modules(vec!["my_fs".into()]));
        assert_eq!(db.lookup("fs-myfs"), Lookup::Modules(vec!["my_fs".into()]));
        assert_eq!(
            db.lookup("pci:v1AF4d0042"),
            Lookup::Modules(vec!["blk".into()])
        );
        assert_eq!(db.lookup("ext4"), Lookup::Builtin("ext4".into()));
        assert_eq!(db.lookup("fs-ext4"), Lookup::Builtin("ext4".into()));
        assert_eq!(db.lookup("nope"), Lookup::Unknown);
        assert_eq!(db.modules["blk"].deps, ["core", "ring"]);
        assert_eq!(db.softdeps["my_fs"].post, ["after"]);
    }

    #[test]
    fn suggestions_are_close_names() {
        let db = testdata::db();
        assert_eq!(db.suggestions("blq"), ["blk"]);
        assert_eq!(db.suggestions("helpr"), ["helper"]);
        assert!(db.suggestions("zzzzzzzz").is_empty());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("virtio_blk", "virtio_blk"), 0);
        assert_eq!(edit_distance("virtio_blok", "virtio_blk"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
