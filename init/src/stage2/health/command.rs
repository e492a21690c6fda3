//! The health gate's command check: the image's `command` (an argv whose
//! program is an absolute path) must exit 0 for the version to be good. It
//! runs through the kernel seam like a service (so the fake plays it), and
//! is run again after each failure until it passes or the gate decides,
//! as the socket checks are tried until then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::kernel::{Exit, Pid, Signal, Target};
use crate::stage2::supervise::spawn::spawn;

/// The wait between a failed run and the next.
pub const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Starts at the instant (the first run at once).
    Due(Instant),
    Running(Pid),
    /// Exited 0: the check holds for the rest of the boot.
    Passed,
    /// Cannot ever pass (a relative program path).
    Broken,
}

#[derive(Debug)]
pub struct Check {
    argv: Vec<String>,
    state: State,
    /// Why the check does not hold yet (shown when the gate fails).
    why: String,
}

impl Check {
    pub fn new(argv: Vec<String>, now: Instant) -> Self {
        let shown = argv.join(" ");
        let (state, why) = match argv.first() {
            Some(p) if p.starts_with('/') => (
                State::Due(now),
                format!("health command {shown} not finished"),
            ),
            _ => (
                State::Broken,
                format!(
                    "health command {:?}: expected an argv whose program is an absolute path",
                    argv
                ),
            ),
        };
        Self { argv, state, why }
    }

    /// Starts the command when a run is due.
    pub fn poll(&mut self, env: &Env, now: Instant) {
        let State::Due(at) = self.state else {
            return;
        };
        if at > now {
            return;
        }
        match spawn(env, "health", &self.argv, &BTreeMap::new()) {
            Ok(pid) => {
                // Debug: a run a second would spend stage 2's share of the
                // kernel log (writes to /dev/kmsg are rate-limited after
                // stage 1, printk.devkmsg=ratelimit), and the gate's verdict
                // must reach it.
                log::debug!(
                    "health command started (pid {pid}): {}",
                    self.argv.join(" ")
                );
                self.state = State::Running(pid);
            }
            Err(e) => {
                let why = format!(
                    "health command {}: {}",
                    self.argv.join(" "),
                    crate::stage2::chain(&e)
                );
                self.failed(why, now);
            }
        }
    }

    /// Takes the exit of `pid` if it is the command's; says whether it was.
    pub fn ended(&mut self, pid: Pid, exit: Exit, now: Instant) -> bool {
        if self.state != State::Running(pid) {
            return false;
        }
        let shown = self.argv.join(" ");
        if exit.failed() {
            self.failed(format!("health command {shown} {exit}"), now);
        } else {
            log::info!("health command {shown} (pid {pid}) exited with status 0");
            self.state = State::Passed;
        }
        true
    }

    /// A run failed: said once per new outcome, not once per run (see
    /// `poll`); the next run is due in a second.
    fn failed(&mut self, why: String, now: Instant) {
        if why != self.why {
            log::warn!(
                "{why}; run again every {} s until it passes",
                RETRY.as_secs()
            );
        }
        self.why = why;
        self.state = State::Due(now + RETRY);
    }

    /// `None` when the command has passed, else why not.
    pub fn not_ready(&self) -> Option<&str> {
        (self.state != State::Passed).then_some(self.why.as_str())
    }

    /// How long until the next run is due (`None`: none is).
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Due(at) => Some(at.saturating_duration_since(now)),
            _ => None,
        }
    }

    /// The gate has decided: a run still going is killed, none starts.
    pub fn stop(&mut self, env: &Env) {
        if let State::Running(pid) = self.state {
            // Its own process group, as a service's (Kernel::spawn).
            if env
                .kernel
                .kill(Target::Group(pid), Signal::SIGKILL)
                .is_err()
            {
                let _ = env.kernel.kill(Target::Process(pid), Signal::SIGKILL);
            }
        }
        if self.state != State::Passed {
            self.state = State::Broken;
        }
    }
}
