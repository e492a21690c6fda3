//! `terra remove NAME`

use std::fs;

use anyhow::{bail, Context, Result};
use clap::Args;
use terra_layout::Metadata;

use super::Global;

/// Remove a version: its record, writable layer and boot files.
///
/// Layers it shared stay; `terra gc` drops those no version uses.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub name: String,
    /// Remove it even if it is the default (the newest other becomes default).
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &Global, a: RemoveArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Write)?;
    let part = &target.part;
    let mut meta = Metadata::load(&part.metadata())?;
    let Some(rec) = meta.versions.remove(&a.name) else {
        bail!("no version {:?}", a.name);
    };
    if meta.default.as_deref() == Some(a.name.as_str()) {
        if !a.force {
            bail!("{} is the default version; make another the default first (terra default NAME) or use --force", a.name);
        }
        meta.default = meta.newest().map(String::from);
        match &meta.default {
            Some(d) => log::info!("{} was the default; the default is now {d}", a.name),
            None => log::info!(
                "{} was the default and the last version; none is left",
                a.name
            ),
        }
    }
    // The record goes first: a crash after it leaves only garbage for gc.
    meta.store(&part.metadata())?;
    crate::menu::write(part, &meta)?;
    // The writable layer is removed where Terra makes it, and only there:
    // a record naming another place is not followed.
    let (upper, work) = terra_layout::partition::version_rw(&a.name);
    if rec.upper == upper && rec.work == work {
        let dir = part.snapshots_dir().join(format!("rw-{}", a.name));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    } else {
        log::warn!(
            "keeping {} and {}: not where terra puts a writable layer",
            rec.upper,
            rec.work
        );
    }
    crate::menu::remove_boot_files(part, &a.name, &rec)?;
    log::info!(
        "removed version {}; `terra gc` frees layers no version uses",
        a.name
    );
    Ok(())
}
