//! `terra logs [--boot N | --list]`

use anyhow::{anyhow, Context, Result};
use clap::Args;
use terra_layout::bootlog;

use super::Global;

/// Show the kernel log (Terra's lines and the services' output included)
/// that an earlier boot saved on the partition before it powered off or
/// rebooted: the story of a version that failed its health gate.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Which boot: -1 the last one saved, -2 the one before, ...
    #[arg(long, short, default_value_t = -1, allow_negative_numbers = true)]
    pub boot: i64,
    /// List the saved boots instead.
    #[arg(long, conflicts_with = "boot")]
    pub list: bool,
}

pub fn run(g: &Global, a: LogsArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Read)?;
    let names = bootlog::list(&target.part).context("listing the saved logs")?;
    let dir = target.part.root().join(bootlog::LOG_DIR);
    if a.list {
        for (i, name) in names.iter().rev().enumerate() {
            let size = std::fs::metadata(dir.join(name))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("{:>3}  {name}  {size} bytes", -(i as i64) - 1);
        }
        return Ok(());
    }
    let name = bootlog::pick(&names, a.boot).ok_or_else(|| {
        anyhow!(
            "no saved log for --boot {} (expected -1 to -{}; {} saved)",
            a.boot,
            names.len(),
            names.len()
        )
    })?;
    let path = dir.join(&name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    print!("{text}");
    Ok(())
}
