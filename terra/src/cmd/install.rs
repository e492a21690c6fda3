//! `terra install REF`

use anyhow::{bail, Result};
use clap::Args;
use terra_layout::Handoff;

use super::Global;
use crate::image::Platform;
use crate::install::{clear_tmp, install, Request};
use crate::reference::Reference;

/// Install an OS version from a registry or an OCI layout (oci:PATH[:TAG]).
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The image: `docker.io/library/x:tag`, `host:port/repo@sha256:…`, `oci:PATH[:TAG]`.
    pub reference: String,
    /// The version's name (default: the tag).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace a version of that name installed from another image (or reinstall).
    #[arg(long)]
    pub force: bool,
    /// Which image of a multi-platform index (OS/ARCH[/VARIANT]).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Exec this program as PID 1 of the version instead of Terra's supervisor.
    #[arg(long, value_name = "PATH")]
    pub init: Option<String>,
    /// Talk plain HTTP to the registry (always for loopback registries).
    #[arg(long)]
    pub plain_http: bool,
    /// A registry (host:port) reached over plain HTTP; repeatable. Also
    /// $TERRA_INSECURE_REGISTRIES (comma separated).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
    /// Layers fetched and unpacked at once.
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    pub jobs: usize,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

pub fn run(g: &Global, a: InstallArgs) -> Result<()> {
    let reference = Reference::parse(&a.reference)?;
    let handoff = match &a.init {
        Some(p) if p.starts_with('/') => Handoff::Exec {
            path: p.clone(),
            args: vec![],
        },
        Some(p) => bail!("--init {p:?}: expected an absolute path"),
        None => Handoff::Supervise,
    };
    let source = open_source(&reference, a.plain_http, &a.insecure)?;
    let target = g.open(true)?;
    clear_tmp(&target.part)?;
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
        },
    )
}

/// Loopback registries are plain HTTP by default (as Docker treats 127.0.0.0/8).
pub fn open_source(
    reference: &Reference,
    plain_http: bool,
    insecure: &[String],
) -> Result<Box<dyn crate::source::Source>> {
    Ok(match reference {
        Reference::Layout(l) => Box::new(crate::source::Layout::open(l)?),
        Reference::Registry(r) => {
            let env: Vec<String> = std::env::var("TERRA_INSECURE_REGISTRIES")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let host = r.registry.as_str();
            let loopback = host.starts_with("127.")
                || host.starts_with("localhost")
                || host.starts_with("[::1]");
            let plain =
                plain_http || loopback || insecure.iter().chain(env.iter()).any(|h| h == host);
            let creds = crate::dockercfg::lookup(&r.registry)?;
            Box::new(crate::registry::Registry::new(r, plain, creds))
        }
    })
}
