//! The command line: one file per subcommand, each with its args and `run`.

mod default;
mod gc;
mod install;
mod list;
mod power;
mod remove;
mod unpack;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::target::{Target, Where};

/// Install and manage Terra OS versions (OCI images) on a Terra partition.
#[derive(Debug, Parser)]
#[command(name = "terra", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The partition, mounted (or a plain directory laid out as one).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "device")]
    pub root: Option<PathBuf>,
    /// A block device (or image file) with an ext4 filesystem labelled `terra`;
    /// mounted for the command and unmounted after.
    #[arg(long, global = true, value_name = "DEV")]
    pub device: Option<PathBuf>,
    /// The label --device must carry.
    #[arg(long, global = true, default_value = terra_layout::partition::DEFAULT_LABEL)]
    pub label: String,
    /// More log lines (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    pub fn open(&self, write: bool) -> Result<Target> {
        Target::open(
            &Where {
                root: self.root.as_deref(),
                device: self.device.as_deref(),
                label: &self.label,
            },
            write,
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Install(install::InstallArgs),
    List(list::ListArgs),
    Default(default::DefaultArgs),
    Remove(remove::RemoveArgs),
    Gc(gc::GcArgs),
    Unpack(unpack::UnpackArgs),
    /// Power the machine off (asks PID 1, Terra's init, with SIGTERM).
    Poweroff,
    /// Reboot the machine (asks PID 1, Terra's init, with SIGINT).
    Reboot,
}

pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Install(a) => install::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Default(a) => default::run(g, a),
        Command::Remove(a) => remove::run(g, a),
        Command::Gc(a) => gc::run(g, a),
        Command::Unpack(a) => unpack::run(a),
        Command::Poweroff => power::run(power::Action::Poweroff),
        Command::Reboot => power::run(power::Action::Reboot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let c = Cli::try_parse_from([
            "terra",
            "--device",
            "/dev/sda1",
            "install",
            "docker.io/stellarproject/terraos:v5",
        ])
        .unwrap();
        assert_eq!(
            c.global.device.as_deref(),
            Some(std::path::Path::new("/dev/sda1"))
        );
        assert!(matches!(c.command, Command::Install(_)));
        let c = Cli::try_parse_from(["terra", "list", "--json", "--root", "/mnt"]).unwrap();
        assert!(matches!(c.command, Command::List(ref l) if l.json));
        assert!(Cli::try_parse_from(["terra", "--root", "/a", "--device", "/b", "list"]).is_err());
        assert!(
            Cli::try_parse_from(["terra", "-vv", "gc"])
                .unwrap()
                .global
                .verbose
                == 2
        );
        assert!(Cli::try_parse_from(["terra", "remove"]).is_err());
    }
}
