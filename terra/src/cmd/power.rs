//! `terra poweroff` / `terra reboot`: ask PID 1. Terra's stage 2 treats
//! SIGTERM as power off and SIGINT as reboot; another init may read those
//! signals otherwise (SIGINT is ctrl-alt-del for sysvinit, SIGTERM is
//! ignored or re-exec for others), so PID 1 is checked to be terra-init
//! first.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};
use terra_layout::partition::TIMELINE_FILE;

pub enum Action {
    Poweroff,
    Reboot,
}

pub fn run(a: Action) -> Result<()> {
    let (sig, what) = match a {
        Action::Poweroff => (Signal::TERM, "power off"),
        Action::Reboot => (Signal::INT, "reboot"),
    };
    let exe = std::fs::read_link("/proc/1/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Err(why) = check_pid1(Path::new(TIMELINE_FILE).is_file(), &exe) {
        bail!("not asking PID 1 to {what}: {why}; use this system's own {what} command");
    }
    kill_process(Pid::INIT, sig).with_context(|| format!("asking PID 1 to {what}"))?;
    log::info!("asked PID 1 to {what}");
    Ok(())
}

/// Whether PID 1 is terra-init running stage 2: stage 1 left its timeline
/// (`/run/terra/boot.json`), and PID 1 still runs the initramfs's `/init`
/// (deleted with the initramfs at the switch; with the `exec` handoff PID 1
/// is the program it names instead).
fn check_pid1(stage1_ran: bool, exe: &str) -> Result<(), String> {
    if !stage1_ran {
        return Err(format!(
            "this system was not booted by terra-init ({TIMELINE_FILE} is missing)"
        ));
    }
    if exe != "/init" && exe != "/init (deleted)" {
        return Err(format!(
            "PID 1 runs {exe:?}, not terra-init (the version hands off to another init)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_terra_init_is_asked() {
        assert!(check_pid1(true, "/init (deleted)").is_ok());
        assert!(check_pid1(true, "/init").is_ok());
        let e = check_pid1(false, "/init (deleted)").unwrap_err();
        assert!(e.contains("not booted by terra-init"), "{e}");
        let e = check_pid1(true, "/sbin/init").unwrap_err();
        assert!(e.contains("\"/sbin/init\""), "{e}");
        assert!(check_pid1(true, "/lib/systemd/systemd").is_err());
    }
}
