//! `terra poweroff` / `terra reboot`: ask PID 1. Terra's stage 2 treats
//! SIGTERM as power off and SIGINT as reboot.

use anyhow::{Context, Result};
use rustix::process::{kill_process, Pid, Signal};

pub enum Action {
    Poweroff,
    Reboot,
}

pub fn run(a: Action) -> Result<()> {
    let (sig, what) = match a {
        Action::Poweroff => (Signal::TERM, "power off"),
        Action::Reboot => (Signal::INT, "reboot"),
    };
    kill_process(Pid::INIT, sig).with_context(|| format!("asking PID 1 to {what}"))?;
    log::info!("asked PID 1 to {what}");
    Ok(())
}
