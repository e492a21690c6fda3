//! `terra install REF`

use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use terra_layout::boot_state::DEFAULT_TRIES;
use terra_layout::Handoff;

use super::source::RegistryArgs;
use super::Global;
use crate::hooks::Hooks;
use crate::image::Platform;
use crate::install::{install, Request};
use crate::reference::Reference;
use crate::snapshot::Snapshots;

/// Install an OS version from a registry or an OCI layout (oci:PATH[:TAG]).
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The image: `docker.io/library/x:tag`, `host:port/repo@sha256:…`, `oci:PATH[:TAG]`.
    pub reference: String,
    /// The version's name (default: the tag).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace a version of that name installed from another image (or
    /// reinstall the same one). Nothing written in the version is lost: a
    /// reinstall keeps its writable layer in place; another image starts
    /// with an empty one, and the old one is kept in
    /// ov/snapshots/kept-NAME-SECONDS (terra says where).
    #[arg(long)]
    pub force: bool,
    /// Which image of a multi-platform index (OS/ARCH[/VARIANT]).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Exec this program as PID 1 of the version instead of Terra's supervisor.
    #[arg(long, value_name = "PATH")]
    pub init: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Layers fetched and unpacked at once.
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    pub jobs: usize,
    /// Make the installed version the default, as `terra default NAME`
    /// does: pending until it passes the health gate, the current good
    /// default kept as the fallback.
    #[arg(long)]
    pub activate: bool,
    /// With --activate: boots the version gets to pass the health gate
    /// (default 3).
    #[arg(long, value_name = "N", requires = "activate",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tries: Option<u32>,
    /// Also make FILE the partition's machine config (checked before
    /// anything is downloaded, written once the version is installed), as
    /// `terra config set FILE` does.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

pub fn run(g: &Global, a: InstallArgs, hooks: Arc<dyn Hooks>) -> Result<()> {
    let reference = Reference::parse(&a.reference)?;
    let handoff = match &a.init {
        Some(p) if p.starts_with('/') => Handoff::Exec {
            path: p.clone(),
            args: vec![],
        },
        Some(p) => bail!("--init {p:?}: expected an absolute path"),
        None => Handoff::Supervise,
    };
    let config = a.config.as_deref().map(super::config::check).transpose()?;
    // A bad SOURCE_DATE_EPOCH is refused before the partition is touched.
    crate::install::install_time()?;
    let source = a.registry.open(&reference)?;
    let target = g.open(crate::target::Access::Install)?;
    Snapshots::new(&target.part).clear_tmp()?;
    install(
        &target.part,
        &Request {
            reference: reference.to_string(),
            source: source.as_ref(),
            name: a.name.or_else(|| reference.default_name()),
            platform: Platform::parse(&a.platform)?,
            handoff,
            force: a.force,
            jobs: a.jobs,
            activate: a.activate.then(|| a.tries.unwrap_or(DEFAULT_TRIES)),
            hooks,
        },
    )?;
    if let Some(text) = config {
        super::config::put(&target.part, &text)?;
        log::info!(
            "machine config set from {}",
            a.config.unwrap_or_default().display()
        );
    }
    Ok(())
}
