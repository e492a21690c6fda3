//! The signals PID 1 acts on, read through the kernel seam in the
//! supervisor's loop, and what each one asks for.
//!
//! They are blocked first thing, so none sent during set-up is lost (see
//! `Kernel::block_signals` for why blocking is enough for PID 1).

use std::time::Duration;

use crate::env::Env;
use crate::kernel::{PowerAction, Signal};

/// Every signal stage 2 handles.
pub const HANDLED: [Signal; 8] = [
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
pub fn meaning(sig: Signal) -> Option<PowerAction> {
    match sig {
        // `kill -TERM 1`, `terra poweroff`; busybox `poweroff` sends SIGUSR2;
        // SIGPWR comes from UPS daemons.
        Signal::SIGTERM | Signal::SIGUSR2 | Signal::SIGPWR => Some(PowerAction::PowerOff),
        // ctrl-alt-del (see `disable_ctrl_alt_del`), `terra reboot`.
        Signal::SIGINT => Some(PowerAction::Reboot),
        // busybox `halt`.
        Signal::SIGUSR1 => Some(PowerAction::Halt),
        _ => None,
    }
}

/// Blocks the handled signals; without them, reaping goes on by polling.
pub fn block(env: &Env) {
    if let Err(e) = env.kernel.block_signals(&HANDLED) {
        log::error!("blocking signals: {e}; reaping by polling, shutdown signals may be lost");
    }
}

/// Waits up to `timeout` for signals; returns those that arrived (empty on
/// timeout). When they cannot be read, it pauses a little and reports
/// SIGCHLD, so that reaping goes on.
pub fn wait(env: &Env, timeout: Duration) -> Vec<Signal> {
    match env.kernel.wait_signals(timeout) {
        Ok(received) => received
            .into_iter()
            .map(|r| {
                if r.signal != Signal::SIGCHLD {
                    log::info!("received {} from pid {}", r.signal, r.from);
                }
                r.signal
            })
            .collect(),
        Err(e) => {
            log::error!("waiting for signals: {e}");
            env.kernel.sleep(Duration::from_millis(100));
            vec![Signal::SIGCHLD]
        }
    }
}

/// Makes ctrl-alt-del send SIGINT to PID 1 instead of rebooting at once
/// (reboot(2), LINUX_REBOOT_CMD_CAD_OFF), so it takes the orderly path.
pub fn disable_ctrl_alt_del(env: &Env) {
    if let Err(e) = env.kernel.set_ctrl_alt_del(false) {
        log::warn!("reboot(CAD_OFF): {e}; ctrl-alt-del reboots without shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Paths;
    use crate::kernel::fake::{Fake, Tick};
    use crate::kernel::{Exit, Kernel, Pid};
    use std::time::Instant;

    #[test]
    fn signals_mean_what_the_readme_says() {
        assert_eq!(meaning(Signal::SIGTERM), Some(PowerAction::PowerOff));
        assert_eq!(meaning(Signal::SIGUSR2), Some(PowerAction::PowerOff));
        assert_eq!(meaning(Signal::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(meaning(Signal::SIGUSR1), Some(PowerAction::Halt));
        assert_eq!(meaning(Signal::SIGCHLD), None);
        assert_eq!(meaning(Signal::SIGHUP), None);
    }

    #[test]
    fn blocks_what_it_handles_and_reads_what_arrives() {
        let k = Fake::default();
        let env = Env::new(Paths::default(), &k, Instant::now());
        block(&env);
        disable_ctrl_alt_del(&env);
        assert_eq!(
            k.calls(),
            [
                "block SIGCHLD SIGTERM SIGINT SIGUSR1 SIGUSR2 SIGPWR SIGHUP SIGQUIT",
                "ctrl-alt-del reboots=false",
            ]
        );
        k.adopt(Pid(7));
        k.script([
            Tick::exit(Duration::from_secs(2), Pid(7), Exit::Exited(0)),
            Tick::signal(Duration::ZERO, Signal::SIGTERM),
        ]);
        assert!(wait(&env, Duration::from_secs(1)).is_empty());
        assert_eq!(wait(&env, Duration::from_secs(1)), [Signal::SIGCHLD]);
        assert_eq!(k.elapsed(), Duration::from_secs(2));
        assert_eq!(wait(&env, Duration::from_secs(1)), [Signal::SIGTERM]);
        assert_eq!(k.now(), k.epoch + Duration::from_secs(2));
    }
}
