//! `terra-kconfig CONFIG [--fragment FILE] [-v]`: the KSPP and container report
//! for a full kernel `.config`; exits 1 when the config does not pass.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use terra_kconfig::kconfig::{dropped_lines, KernelConfig};

/// Checks a full kernel .config against the KSPP x86_64 recommendations and
/// the container host requirements (kernel-config/kspp.toml, containers.toml).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The full .config (e.g. the `config` that scripts/build-kernel prints the dir of).
    config: PathBuf,
    /// Also check that every line of this fragment made it into the config.
    #[arg(long)]
    fragment: Option<PathBuf>,
    /// List the met items too.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("terra-kconfig: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let text = read(&args.config)?;
    let mut pass = true;
    if let Some(fragment) = &args.fragment {
        let dropped = dropped_lines(
            &KernelConfig::parse(&read(fragment)?),
            &KernelConfig::parse(&text),
        );
        for (name, want, have) in &dropped {
            println!(
                "fragment: CONFIG_{name}={want} did not make it (have {})",
                have.as_deref().unwrap_or("absent")
            );
        }
        pass &= dropped.is_empty();
    }
    let (report, ok) = terra_kconfig::check_text(&text, args.verbose)?;
    print!("{report}");
    Ok(pass && ok)
}
