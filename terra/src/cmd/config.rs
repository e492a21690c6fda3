//! `terra config check FILE | set FILE | show`: the machine config
//! (`config/machine.json` on the partition, `terra_layout::machine`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use terra_layout::machine::MachineConfig;

use super::Global;

/// Check, set or show the machine config: hostname, network, ssh keys,
/// sysctls and optional services, shared by every version.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Check FILE: on error, print the line, column and what was expected.
    Check { file: PathBuf },
    /// Check FILE and make it the partition's config (read at the next boot).
    Set { file: PathBuf },
    /// Print the partition's config.
    Show,
}

pub fn run(g: &Global, a: ConfigArgs) -> Result<()> {
    match a.action {
        Action::Check { file } => {
            check(&file)?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Action::Set { file } => {
            let text = check(&file)?;
            let target = g.open(crate::target::Access::Write)?;
            put(&target.part, &text)?;
            log::info!(
                "machine config set from {} (used from the next boot)",
                file.display()
            );
            Ok(())
        }
        Action::Show => {
            let target = g.open(crate::target::Access::Read)?;
            let path = target.part.machine_config();
            match std::fs::read_to_string(&path) {
                Ok(text) => print!("{text}"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    println!(
                        "# no {}: DHCP on every Ethernet interface, sshd with no keys",
                        terra_layout::machine::MACHINE_CONFIG
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
            Ok(())
        }
    }
}

/// Writes a checked config as the partition's `config/machine.json`,
/// atomically (a crash leaves the old file or the new one).
pub fn put(part: &terra_layout::Partition, text: &str) -> Result<()> {
    let dest = part.machine_config();
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    terra_layout::atomic::write_atomic(&dest, text.as_bytes())
        .with_context(|| format!("writing {}", dest.display()))
}

/// Reads and checks FILE; returns its text.
pub fn check(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    MachineConfig::parse(&text)
        .with_context(|| format!("{} is not a valid machine config", file.display()))?;
    Ok(text)
}
