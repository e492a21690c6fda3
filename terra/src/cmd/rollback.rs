//! `terra rollback`

use anyhow::{Context, Result};
use clap::Args;
use terra_layout::Metadata;

use super::Global;

/// Make the last good version the default again (the one a pending default
/// falls back to).
#[derive(Debug, Args)]
pub struct RollbackArgs {}

pub fn run(g: &Global, _a: RollbackArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Write)?;
    let path = target.part.metadata();
    let mut meta = Metadata::load(&path)?;
    let from = meta.default.clone().unwrap_or_else(|| "none".into());
    let to = meta.rollback()?;
    meta.store(&path)?;
    crate::menu::write(&target.part, &meta).context("rewriting the boot menu")?;
    log::info!("default version: {to} (was {from})");
    Ok(())
}
