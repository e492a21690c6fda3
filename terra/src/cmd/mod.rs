//! The command line: one file per subcommand, each with its args and `run`.

mod bootloader;
mod config;
mod default;
mod disk;
mod gc;
mod install;
mod list;
mod logs;
mod metrics;
mod nocloud;
mod power;
mod remove;
mod rollback;
pub mod source;
mod timesync;
mod unpack;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::hooks::Hooks;
use crate::target::{Access, Target, Where};

/// The whole program: parse the command line, run, print the error chain
/// once. `hooks` are the install's crash points (none in `terra`).
pub fn main(hooks: Arc<dyn Hooks>) -> ExitCode {
    let cli = Cli::parse();
    crate::logger::init(cli.global.verbose);
    match run(cli, hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("terra: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

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
    pub fn open(&self, access: Access) -> Result<Target> {
        Target::open(
            &Where {
                root: self.root.as_deref(),
                device: self.device.as_deref(),
                label: &self.label,
            },
            access,
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Install(install::InstallArgs),
    Config(config::ConfigArgs),
    List(list::ListArgs),
    Logs(logs::LogsArgs),
    Metrics(metrics::MetricsArgs),
    Default(default::DefaultArgs),
    Remove(remove::RemoveArgs),
    Rollback(rollback::RollbackArgs),
    Gc(gc::GcArgs),
    Nocloud(nocloud::NocloudArgs),
    Timesync(timesync::TimesyncArgs),
    Unpack(unpack::UnpackArgs),
    Bootloader(bootloader::BootloaderArgs),
    Disk(disk::DiskArgs),
    /// Power the machine off (asks PID 1, Terra's init, with SIGTERM).
    Poweroff,
    /// Reboot the machine (asks PID 1, Terra's init, with SIGINT).
    Reboot,
}

pub fn run(cli: Cli, hooks: Arc<dyn Hooks>) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Install(a) => install::run(g, a, hooks),
        Command::Config(a) => config::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Logs(a) => logs::run(g, a),
        Command::Metrics(a) => metrics::run(g, a),
        Command::Default(a) => default::run(g, a),
        Command::Remove(a) => remove::run(g, a),
        Command::Rollback(a) => rollback::run(g, a),
        Command::Gc(a) => gc::run(g, a),
        Command::Nocloud(a) => nocloud::run(a),
        Command::Timesync(a) => timesync::run(a),
        Command::Unpack(a) => unpack::run(g, a),
        Command::Bootloader(a) => bootloader::run(g, a),
        Command::Disk(a) => disk::run(g, a),
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
        // The disk commands take the whole disk as their argument.
        let c = Cli::try_parse_from(["terra", "bootloader", "install", "/dev/sda", "--bios-only"]);
        assert!(matches!(c.unwrap().command,
            Command::Bootloader(ref b) if matches!(b.command,
                bootloader::BootloaderCommand::Install(ref i) if i.bios_only && !i.uefi_only)));
        assert!(Cli::try_parse_from([
            "terra",
            "bootloader",
            "install",
            "/dev/sda",
            "--bios-only",
            "--uefi-only"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["terra", "bootloader", "install"]).is_err());
        let c = Cli::try_parse_from(["terra", "disk", "layout", "disk.img", "--dry-run"]);
        assert!(matches!(c.unwrap().command,
            Command::Disk(ref d) if matches!(d.command, disk::DiskCommand::Layout(ref l) if l.dry_run)));
        // --tries belongs to --activate, and is at least 1.
        let c = Cli::try_parse_from(["terra", "install", "--activate", "--tries", "2", "os:v2"]);
        assert!(matches!(c.unwrap().command,
            Command::Install(ref i) if i.activate && i.tries == Some(2)));
        assert!(Cli::try_parse_from(["terra", "install", "--tries", "2", "os:v2"]).is_err());
        assert!(
            Cli::try_parse_from(["terra", "install", "--activate", "--tries", "0", "os:v2"])
                .is_err()
        );
        // metrics: --every needs --textfile, and at least 1 s.
        let c = Cli::try_parse_from([
            "terra",
            "metrics",
            "--textfile",
            "/run/x.prom",
            "--every",
            "5",
        ]);
        assert!(matches!(c.unwrap().command, Command::Metrics(ref m) if m.every == Some(5)));
        assert!(Cli::try_parse_from(["terra", "metrics", "--every", "5"]).is_err());
        assert!(
            Cli::try_parse_from(["terra", "metrics", "--textfile", "/x", "--every", "0"]).is_err()
        );
        // timesync: servers are checked, the interval is at least 1 s.
        let c = Cli::try_parse_from([
            "terra",
            "timesync",
            "--server",
            "10.0.2.2:4123",
            "--server",
            "pool.ntp.org",
        ])
        .unwrap();
        assert!(matches!(c.command, Command::Timesync(ref t)
            if t.servers.len() == 2 && t.every == 1024 && !t.once));
        for bad in [
            &["--server", "10.0.2.2:0"][..],
            &["--server", "bad name"],
            &["--every", "0"],
            &["--step-threshold", "-1"],
        ] {
            let args = [&["terra", "timesync"][..], bad].concat();
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
        // Both commands that read an image take the same registry options.
        for cmd in ["install", "unpack"] {
            let mut args = vec!["terra", cmd, "mirror:5000/os:v1"];
            if cmd == "unpack" {
                args.push("/tmp/x");
            }
            args.extend(["--insecure-registry", "mirror:5000", "--plain-http"]);
            let c = Cli::try_parse_from(&args).unwrap();
            let r = match c.command {
                Command::Install(a) => a.registry,
                Command::Unpack(a) => a.registry,
                _ => unreachable!(),
            };
            assert!(r.plain_http && r.insecure == ["mirror:5000"], "{cmd}");
        }
    }
}
