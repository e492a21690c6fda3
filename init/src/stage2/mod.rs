//! Stage 2: terra-init as PID 1 of the running system (issue 4).
//!
//! Stage 1 calls [`run`] after the root is switched, when the version's
//! handoff is `supervise` and `terra.init=` is not given. It never returns.

/// What stage 1 hands over to stage 2.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The version that was booted.
    pub version: String,
    /// `terra.debug` was given.
    pub debug: bool,
}

/// Runs the system; never returns. (Placeholder until stage 2 lands: it
/// only logs and waits, reaping children.)
pub fn run(h: Handover) -> ! {
    log::error!("stage 2 is not built yet; version {} booted, waiting", h.version);
    loop {
        let _ = nix::sys::wait::wait();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
