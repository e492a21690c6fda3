//! `terra metrics --textfile FILE [--every SECONDS]`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use terra_layout::partition::{RUNTIME_MOUNT, TIMELINE_FILE};
use terra_layout::Partition;

use crate::metrics;

/// Write Terra's own metrics (boot timeline, services' readiness, the
/// booted version's name, manifest digest and boot state) in the Prometheus
/// text format, for the node exporter's textfile collector. Runs on a
/// booted Terra system: it reads /run/terra.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Where to write (replaced atomically; the collector reads `*.prom`).
    /// Without it, the metrics go to stdout once.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
    /// Write again every SECONDS (the boot state changes once the health
    /// gate passes); without it, write once.
    #[arg(long, value_name = "SECONDS", requires = "textfile",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub every: Option<u64>,
    /// Stage 1's timeline.
    #[arg(long, default_value = TIMELINE_FILE, hide = true)]
    pub boot_json: PathBuf,
    /// Stage 2's readiness records.
    #[arg(long, default_value = "/run/terra/ready", hide = true)]
    pub ready_dir: PathBuf,
}

pub fn run(g: &super::Global, a: MetricsArgs) -> Result<()> {
    // The running system's partition, unless --root names another.
    let root = g
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(RUNTIME_MOUNT));
    let metadata = Partition::new(root).metadata();
    loop {
        let text = metrics::render(&metrics::read(&a.boot_json, &a.ready_dir, &metadata));
        match &a.textfile {
            None => print!("{text}"),
            Some(file) => {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                terra_layout::atomic::write_atomic(file, text.as_bytes())
                    .with_context(|| format!("writing {}", file.display()))?;
            }
        }
        match a.every {
            Some(s) => std::thread::sleep(Duration::from_secs(s)),
            None => return Ok(()),
        }
    }
}
