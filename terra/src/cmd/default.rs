//! `terra default NAME [--tries N]`

use anyhow::{Context, Result};
use clap::Args;
use terra_layout::boot_state::DEFAULT_TRIES;
use terra_layout::Metadata;

use super::Global;

/// Make NAME the version booted when the command line names none. A version
/// that has not yet passed the health gate becomes pending: it gets --tries
/// boots to become good, else stage 1 goes back to the current good default.
#[derive(Debug, Args)]
pub struct DefaultArgs {
    pub name: String,
    /// Boots a pending version gets to pass the health gate.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TRIES)]
    pub tries: u32,
}

pub fn run(g: &Global, a: DefaultArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Write)?;
    let path = target.part.metadata();
    let mut meta = Metadata::load(&path)?;
    let done = meta.activate(&a.name, a.tries)?;
    meta.store(&path)?;
    crate::menu::write(&target.part, &meta).context("rewriting the boot menu")?;
    crate::install::log_activated(&meta, &a.name, done);
    Ok(())
}
