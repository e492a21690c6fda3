//! `terra`: installs OS versions (OCI images) onto a Terra partition and
//! manages them: list, default, remove, gc, unpack, poweroff, reboot.
//!
//! The on-disk contract (paths, boot records) comes from `terra-layout`;
//! this binary fetches, verifies and unpacks images into that layout.

mod cmd;
mod content;
mod digest;
mod dockercfg;
mod image;
mod install;
mod logger;
mod menu;
mod progress;
mod reference;
mod registry;
mod snapshot;
mod source;
mod target;
mod targuard;
mod unpack;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    logger::init(cli.global.verbose);
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("terra: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
