//! The signals PID 1 acts on, read from a signalfd in the supervisor's loop.
//!
//! They are blocked first thing, so none sent during set-up is lost, and so
//! the kernel queues them for PID 1 even without a handler (signal(7): a
//! blocked signal is never discarded as ignored). Threads started later
//! (the output readers) inherit the mask; services get a clean one (std's
//! `Command` resets it in the child).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::shutdown::Action;

/// Every signal stage 2 handles.
const HANDLED: [Signal; 8] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPWR,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What a signal to PID 1 asks for.
pub fn meaning(sig: Signal) -> Option<Action> {
    match sig {
        // `kill -TERM 1`, `terra poweroff`; busybox `poweroff` sends SIGUSR2;
        // SIGPWR comes from UPS daemons.
        Signal::SIGTERM | Signal::SIGUSR2 | Signal::SIGPWR => Some(Action::PowerOff),
        // ctrl-alt-del (see `disable_ctrl_alt_del`), `terra reboot`.
        Signal::SIGINT => Some(Action::Reboot),
        // busybox `halt`.
        Signal::SIGUSR1 => Some(Action::Halt),
        _ => None,
    }
}

pub struct Signals {
    fd: Option<SignalFd>,
}

impl Signals {
    /// Blocks the handled signals and opens the signalfd.
    pub fn new() -> Self {
        let mut mask = SigSet::empty();
        for s in HANDLED {
            mask.add(s);
        }
        if let Err(e) = mask.thread_block() {
            log::error!("blocking signals: {e}; shutdown signals may be lost");
        }
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Self { fd: Some(fd) },
            Err(e) => {
                log::error!("signalfd: {e}; reaping by polling, shutdown signals are lost");
                Self { fd: None }
            }
        }
    }

    /// Waits up to `timeout` for signals; returns those that arrived (empty
    /// on timeout). Without a signalfd it sleeps a little and reports SIGCHLD,
    /// so that reaping goes on.
    pub fn wait(&self, timeout: Duration) -> Vec<Signal> {
        let Some(fd) = &self.fd else {
            std::thread::sleep(timeout.min(Duration::from_millis(100)));
            return vec![Signal::SIGCHLD];
        };
        let ms = timeout.as_millis().min(60_000) as u16;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Vec::new(),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Vec::new(),
            Err(e) => {
                log::error!("poll on the signalfd: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return vec![Signal::SIGCHLD];
            }
        }
        let mut out = Vec::new();
        loop {
            match fd.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        if sig != Signal::SIGCHLD {
                            log::info!("received {sig} from pid {}", info.ssi_pid);
                        }
                        out.push(sig);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::error!("reading the signalfd: {e}");
                    break;
                }
            }
        }
        out
    }
}

/// Makes ctrl-alt-del send SIGINT to PID 1 instead of rebooting at once
/// (reboot(2), LINUX_REBOOT_CMD_CAD_OFF), so it takes the orderly path.
pub fn disable_ctrl_alt_del() {
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log::warn!("reboot(CAD_OFF): {e}; ctrl-alt-del reboots without shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_mean_what_the_readme_says() {
        assert_eq!(meaning(Signal::SIGTERM), Some(Action::PowerOff));
        assert_eq!(meaning(Signal::SIGUSR2), Some(Action::PowerOff));
        assert_eq!(meaning(Signal::SIGINT), Some(Action::Reboot));
        assert_eq!(meaning(Signal::SIGUSR1), Some(Action::Halt));
        assert_eq!(meaning(Signal::SIGCHLD), None);
        assert_eq!(meaning(Signal::SIGHUP), None);
    }
}
