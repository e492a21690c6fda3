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
    let target = g.open(true)?;
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
    }
    // The record goes first: a crash after it leaves only garbage for gc.
    meta.store(&part.metadata())?;
    crate::menu::write(part, &meta)?;
    let rw = part.resolve(&rec.upper)?;
    if let Some(dir) = rw.parent() {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    crate::menu::remove_boot_files(part, &a.name)?;
    log::info!(
        "removed version {}; `terra gc` frees layers no version uses",
        a.name
    );
    Ok(())
}
