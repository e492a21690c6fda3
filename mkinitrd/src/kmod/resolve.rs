//! From requested names to a load order, dependencies first, with the
//! reason each module is there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{bail, Result};

use super::{Lookup, ModuleDb, ModuleSet};

/// Why a name was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// Named with `--module`: must exist (as a module, an alias or built in).
    Requested,
    /// Part of a default set: skipped with a note when this kernel lacks it.
    Set(ModuleSet),
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Requested => f.write_str("requested"),
            Root::Set(set) => write!(f, "module set {}", set.name()),
        }
    }
}

/// A name to resolve and why it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// A module name or alias.
    pub name: String,
    /// Who asked.
    pub root: Root,
}

/// A module to put into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical module name.
    pub name: String,
    /// Its file relative to the modules directory, as on disk.
    pub path: String,
    /// Why it is included, for `--explain` and `/etc/terra/modules.why`.
    pub why: String,
}

/// A name that needs nothing in the initramfs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name as asked for (canonical when it is a module name).
    pub name: String,
    /// E.g. `built into the kernel (module set server)`.
    pub why: String,
}

/// The outcome: modules in load order (dependencies first) and the names
/// that were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Load order.
    pub load: Vec<Resolved>,
    /// Built in, or missing from this kernel but only wished for.
    pub skipped: Vec<Skipped>,
}

impl Resolution {
    /// `NAME: REASON` lines, included modules first, then the skipped names
    /// (the format of `/etc/terra/modules.why`).
    pub fn why_text(&self) -> String {
        let mut out = String::new();
        for m in &self.load {
            out.push_str(&format!("{}: {}\n", m.name, m.why));
        }
        for s in &self.skipped {
            out.push_str(&format!("{}: {}\n", s.name, s.why));
        }
        out
    }
}

#[derive(Default)]
struct Why {
    roots: Vec<String>,
    needed_by: Vec<String>,
    softdep_of: Vec<String>,
}

struct Walk<'a> {
    db: &'a ModuleDb,
    order: Vec<String>,
    placed: BTreeSet<String>,
    visiting: BTreeSet<String>,
    whys: BTreeMap<String, Why>,
    skipped: BTreeMap<String, Vec<String>>,
}

enum Via {
    Root(String),
    NeededBy(String),
    SoftDepOf(String),
}

impl Walk<'_> {
    fn note(&mut self, name: &str, via: Via) {
        let why = self.whys.entry(name.to_string()).or_default();
        let (list, item) = match via {
            Via::Root(r) => (&mut why.roots, r),
            Via::NeededBy(p) => (&mut why.needed_by, p),
            Via::SoftDepOf(p) => (&mut why.softdep_of, p),
        };
        if !list.contains(&item) {
            list.push(item);
        }
    }

    fn skip(&mut self, name: &str, why: String) {
        let list = self.skipped.entry(name.to_string()).or_default();
        if !list.contains(&why) {
            list.push(why);
        }
    }

    fn visit(&mut self, name: &str, via: Via) {
        self.note(name, via);
        if self.placed.contains(name) || self.visiting.contains(name) {
            return;
        }
        self.visiting.insert(name.to_string());
        let soft = self.db.softdeps.get(name).cloned().unwrap_or_default();
        for s in &soft.pre {
            self.visit_soft(s, name);
        }
        let deps = self
            .db
            .modules
            .get(name)
            .map(|m| m.deps.clone())
            .unwrap_or_default();
        // modules.dep lists the closure with the first-to-load last.
        for dep in deps.iter().rev() {
            self.visit(dep, Via::NeededBy(name.to_string()));
        }
        self.visiting.remove(name);
        self.placed.insert(name.to_string());
        self.order.push(name.to_string());
        for s in &soft.post {
            self.visit_soft(s, name);
        }
    }

    /// Soft dependencies are wishes: a missing one is noted, not an error
    /// (modprobe ignores them too).
    fn visit_soft(&mut self, name: &str, of: &str) {
        match self.db.lookup(name) {
            Lookup::Modules(ms) => {
                for m in ms {
                    self.visit(&m, Via::SoftDepOf(of.to_string()));
                }
            }
            Lookup::Builtin(b) => self.skip(
                &b,
                format!("built into the kernel (soft dependency of {of})"),
            ),
            Lookup::Unknown => self.skip(
                name,
                format!("not in this kernel (soft dependency of {of})"),
            ),
        }
    }

    fn describe(&self, name: &str) -> String {
        let Some(why) = self.whys.get(name) else {
            return String::new();
        };
        let mut parts = why.roots.clone();
        if !why.needed_by.is_empty() {
            let by: Vec<String> = why
                .needed_by
                .iter()
                .map(|p| match self.whys.get(p) {
                    Some(pw) if !pw.roots.is_empty() => format!("{p} ({})", pw.roots.join(", ")),
                    _ => p.clone(),
                })
                .collect();
            parts.push(format!("needed by {}", by.join(", ")));
        }
        if !why.softdep_of.is_empty() {
            parts.push(format!("soft dependency of {}", why.softdep_of.join(", ")));
        }
        parts.join("; ")
    }
}

/// Resolves `requests` against `db`. Every `Root::Requested` name that this
/// kernel neither has as a module, an alias nor built in is an error naming
/// what was looked for (all such names at once, with close matches).
pub fn resolve(db: &ModuleDb, requests: &[Request]) -> Result<Resolution> {
    let mut walk = Walk {
        db,
        order: Vec::new(),
        placed: BTreeSet::new(),
        visiting: BTreeSet::new(),
        whys: BTreeMap::new(),
        skipped: BTreeMap::new(),
    };
    let mut unknown = Vec::new();
    for req in requests {
        match db.lookup(&req.name) {
            Lookup::Modules(ms) => {
                for m in ms {
                    let root = if m == super::normalize(&req.name) {
                        req.root.to_string()
                    } else {
                        format!("{} as {}", req.root, req.name)
                    };
                    walk.visit(&m, Via::Root(root));
                }
            }
            Lookup::Builtin(b) => walk.skip(&b, format!("built into the kernel ({})", req.root)),
            Lookup::Unknown => match req.root {
                Root::Requested => unknown.push(req.name.clone()),
                Root::Set(_) => walk.skip(
                    &super::normalize(&req.name),
                    format!("not in this kernel ({})", req.root),
                ),
            },
        }
    }
    if !unknown.is_empty() {
        let mut msg = String::new();
        for name in &unknown {
            msg.push_str(&format!(
                "unknown module {name:?}: looked for {:?} in modules.dep ({} modules) and modules.builtin ({}), and for an alias matching {name:?} in modules.alias ({} aliases) and modules.builtin.modinfo",
                super::normalize(name),
                db.modules.len(),
                db.builtin.len(),
                db.aliases.len(),
            ));
            let close = db.suggestions(name);
            if !close.is_empty() {
                msg.push_str(&format!("; did you mean {}?", close.join(", ")));
            }
            msg.push('\n');
        }
        bail!("{}", msg.trim_end());
    }
    let load = walk
        .order
        .iter()
        .map(|name| Resolved {
            name: name.clone(),
            path: db
                .modules
                .get(name)
                .map(|m| m.path.clone())
                .unwrap_or_default(),
            why: walk.describe(name),
        })
        .collect();
    // A name skipped as a soft dependency may still be loaded for another reason.
    let skipped = walk
        .skipped
        .iter()
        .filter(|(name, _)| !walk.placed.contains(*name))
        .map(|(name, whys)| Skipped {
            name: name.clone(),
            why: whys.join("; "),
        })
        .collect();
    Ok(Resolution { load, skipped })
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    fn req(name: &str) -> Request {
        Request {
            name: name.into(),
            root: Root::Requested,
        }
    }

    fn names(r: &Resolution) -> Vec<&str> {
        r.load.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn dependencies_come_first() {
        let r = resolve(&testdata::db(), &[req("blk")]).unwrap();
        assert_eq!(names(&r), ["ring", "core", "blk"]);
        assert_eq!(r.load[0].path, "kernel/lib/ring.ko.xz");
        assert_eq!(r.load[0].why, "needed by blk (requested), core");
        assert_eq!(r.load[2].why, "requested");
        // blk's softdep on a name this kernel lacks is noted, not an error.
        assert_eq!(r.skipped[0].name, "no-such-thing");
    }

    #[test]
    fn softdeps_pre_before_and_post_after() {
        let r = resolve(&testdata::db(), &[req("fs-myfs")]).unwrap();
        assert_eq!(names(&r), ["crc_thing", "helper", "my_fs", "after"]);
        assert_eq!(r.load[2].why, "requested as fs-myfs");
        assert_eq!(
            r.load[0].why,
            "needed by my_fs (requested as fs-myfs); soft dependency of my_fs"
        );
        assert_eq!(r.load[3].why, "soft dependency of my_fs");
    }

    #[test]
    fn each_module_once_even_when_asked_twice() {
        let r = resolve(
            &testdata::db(),
            &[req("core"), req("blk"), req("blk"), req("ring")],
        )
        .unwrap();
        assert_eq!(names(&r), ["ring", "core", "blk"]);
        assert_eq!(
            r.load[0].why,
            "requested; needed by core (requested), blk (requested)"
        );
    }

    #[test]
    fn builtin_is_skipped_not_an_error() {
        let r = resolve(&testdata::db(), &[req("ext4"), req("fs-ext4")]).unwrap();
        assert!(r.load.is_empty());
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].why, "built into the kernel (requested)");
    }

    #[test]
    fn unknown_requested_names_are_one_error_with_suggestions() {
        let err = resolve(&testdata::db(), &[req("blq"), req("blk"), req("zzz-zzz")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown module \"blq\""), "{msg}");
        assert!(msg.contains("did you mean blk?"), "{msg}");
        assert!(
            msg.contains("unknown module \"zzz-zzz\": looked for \"zzz_zzz\""),
            "{msg}"
        );
    }

    #[test]
    fn set_members_missing_from_the_kernel_are_skipped() {
        let r = resolve(
            &testdata::db(),
            &[Request {
                name: "usb-storage".into(),
                root: Root::Set(ModuleSet::Server),
            }],
        )
        .unwrap();
        assert!(r.load.is_empty());
        assert_eq!(
            r.why_text(),
            "usb_storage: not in this kernel (module set server)\n"
        );
    }
}
