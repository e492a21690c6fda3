//! `terra default NAME`

use anyhow::{bail, Result};
use clap::Args;
use terra_layout::Metadata;

use super::Global;

/// Make NAME the version booted when the command line names none.
#[derive(Debug, Args)]
pub struct DefaultArgs {
    pub name: String,
}

pub fn run(g: &Global, a: DefaultArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Write)?;
    let mut meta = Metadata::load(&target.part.metadata())?;
    if !meta.versions.contains_key(&a.name) {
        bail!(
            "no version {:?} (installed: {})",
            a.name,
            meta.versions.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    meta.default = Some(a.name.clone());
    meta.store(&target.part.metadata())?;
    crate::menu::write(&target.part, &meta)?;
    log::info!("default version: {}", a.name);
    Ok(())
}
