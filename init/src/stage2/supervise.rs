//! The supervisor: starts the services in order, forwards their output to
//! the log, restarts them with exponential back-off when they end, reaps
//! every other process that ends (PID 1 inherits all orphans), and returns
//! when a signal asks for shutdown, or when the health gate fails on a
//! version on trial (a reboot, so that stage 1 falls back).
//!
//! Every start, signal, reap and clock reading goes through the kernel seam,
//! so the restart and back-off decisions are tested with the fake, which
//! steps time instead of sleeping.

use std::time::{Duration, Instant};

use std::path::PathBuf;

use crate::env::Env;
use crate::kernel::{Exit, Pid, PowerAction, Reaped, Signal, Target};

use super::health::{self, Verdict};
use spawn::spawn;
#[cfg(test)]
use spawn::tidy;

mod ready;
pub(in crate::stage2) mod spawn;

use super::services::{Restart, Spec};
use super::signals::{self, meaning};

/// First restart delay; doubled after each quick failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A service that ran this long is healthy again: back-off starts over.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How often a starting service's ready socket is tried.
const READY_POLL: Duration = Duration::from_millis(10);
/// How often a stopping service is checked for its exit.
const STOP_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the services in its `after`.
    Waiting,
    Running {
        pid: Pid,
        since: Instant,
    },
    /// Ended; starts again at the instant.
    Backoff(Instant),
    /// Ended for good (restart policy) or could not be started.
    Done,
}

struct Service {
    spec: Spec,
    state: State,
    ready: bool,
    backoff: Duration,
    starts: u32,
}

pub struct Supervisor<'e, 'k> {
    env: &'e Env<'k>,
    services: Vec<Service>,
    version: String,
    boot_marked: bool,
    gate: health::Gate,
    /// The image's extra sockets the gate waits for.
    sockets: Vec<PathBuf>,
    /// The image's check command the gate waits for.
    command: Option<health::command::Check>,
    /// Stage 1 spent a try on this boot: a failed gate reboots.
    on_trial: bool,
}

impl<'e, 'k> Supervisor<'e, 'k> {
    pub fn new(env: &'e Env<'k>, specs: Vec<Spec>, version: String) -> Self {
        let services = specs
            .into_iter()
            .map(|spec| Service {
                spec,
                state: State::Waiting,
                ready: false,
                backoff: FIRST_BACKOFF,
                starts: 0,
            })
            .collect();
        let cfg = health::Config::default();
        Self {
            env,
            services,
            version,
            boot_marked: false,
            gate: health::Gate::new(env.kernel.now(), &cfg),
            sockets: cfg.sockets,
            command: None,
            on_trial: false,
        }
    }

    /// The image's gate settings, and whether this boot is a trial.
    pub fn with_health(mut self, cfg: health::Config, on_trial: bool) -> Self {
        self.gate = health::Gate::new(self.now(), &cfg);
        self.sockets = cfg.sockets;
        let now = self.now();
        self.command = cfg.command.map(|c| health::command::Check::new(c, now));
        self.on_trial = on_trial;
        self
    }

    fn now(&self) -> Instant {
        self.env.kernel.now()
    }

    /// Supervises until a signal asks for a shutdown, or the health gate
    /// fails on a trial boot; returns which power action follows.
    pub fn run(&mut self) -> PowerAction {
        loop {
            // A start can make another service due (one without a ready check
            // is ready once started): go on until nothing changes.
            while self.start_due(self.now()) | self.check_ready() {}
            if let Some(action) = self.gate_step() {
                return action;
            }
            for sig in signals::wait(self.env, self.next_wake(self.now())) {
                if sig == Signal::SIGCHLD {
                    self.reap();
                } else if let Some(action) = meaning(sig) {
                    self.reap();
                    return action;
                } else {
                    log::info!("{sig} ignored");
                }
            }
        }
    }

    /// How long the loop may sleep: until the next restart or ready probe.
    fn next_wake(&self, now: Instant) -> Duration {
        let mut wake = Duration::from_secs(60);
        for s in &self.services {
            match s.state {
                State::Backoff(at) => wake = wake.min(at.saturating_duration_since(now)),
                State::Running { .. } if !s.ready => wake = wake.min(READY_POLL),
                _ => {}
            }
        }
        if let Some(g) = self.gate.next_wake(now) {
            wake = wake.min(g);
        }
        if let Some(c) = self.command.as_ref().and_then(|c| c.next_wake(now)) {
            wake = wake.min(c);
        }
        wake
    }

    /// Feeds the gate; on a verdict marks the version good, or records why
    /// it failed and asks for a reboot when this boot is a trial.
    fn gate_step(&mut self) -> Option<PowerAction> {
        let now = self.now();
        if let Some(c) = &mut self.command {
            c.poll(self.env, now);
        }
        let not_ready = self.not_ready();
        let verdict = self.gate.observe(now, &not_ready);
        if let (Some(c), false) = (&mut self.command, verdict == Verdict::Waiting) {
            c.stop(self.env);
        }
        match verdict {
            Verdict::Waiting => None,
            Verdict::Passed => {
                log::info!(
                    "health gate passed: version {} is healthy (uptime {:.3} s)",
                    self.version,
                    super::secs(self.env.kernel.uptime())
                );
                self.boot_marked = true;
                health::mark_boot_good(self.env, &self.version);
                None
            }
            Verdict::Failed(why) => {
                log::error!("{why}");
                if !self.on_trial {
                    log::warn!(
                        "version {} is not on trial: it stays up, not marked good",
                        self.version
                    );
                    return None;
                }
                health::note_boot_failure(self.env, &self.version, &why);
                log::error!(
                    "version {} failed its health gate: rebooting (stage 1 falls back once its tries are spent)",
                    self.version
                );
                Some(PowerAction::Reboot)
            }
        }
    }

    /// What keeps the gate closed: required services not ready, extra
    /// sockets that do not answer.
    fn not_ready(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in self.services.iter().filter(|s| s.spec.required && !s.ready) {
            let name = &s.spec.name;
            out.push(match (s.state, s.starts) {
                (State::Done, _) => format!("{name} ended"),
                (_, 0) => format!("{name} not started"),
                (_, 1) => format!("{name} not ready"),
                (_, n) => format!("{name} not ready (started {n} times)"),
            });
        }
        for sock in &self.sockets {
            if !self.env.kernel.connects(sock) {
                out.push(format!("{} does not answer", sock.display()));
            }
        }
        if let Some(why) = self.command.as_ref().and_then(|c| c.not_ready()) {
            out.push(why.to_string());
        }
        out
    }

    /// Starts what is due; says whether it started anything.
    fn start_due(&mut self, now: Instant) -> bool {
        let mut started = false;
        for i in 0..self.services.len() {
            let due = match self.services[i].state {
                State::Waiting => self.services[i]
                    .spec
                    .after
                    .iter()
                    .all(|a| self.services.iter().any(|o| &o.spec.name == a && o.ready)),
                State::Backoff(at) => at <= now,
                _ => false,
            };
            if due {
                self.start(i);
                started = true;
            }
        }
        started
    }

    fn start(&mut self, i: usize) {
        let (env, now) = (self.env, self.now());
        let s = &mut self.services[i];
        s.starts += 1;
        match spawn(env, &s.spec.name, &s.spec.argv, &s.spec.env) {
            Ok(pid) => {
                log::info!(
                    "started {} (pid {pid}): {} (uptime {:.3} s)",
                    s.spec.name,
                    s.spec.argv.join(" "),
                    super::secs(env.kernel.uptime())
                );
                s.state = State::Running { pid, since: now };
                // Without a ready check a service is ready once started.
                s.ready = s.spec.ready.is_none();
                if s.ready {
                    ready::record(env, &s.spec.name, Duration::ZERO);
                }
            }
            Err(e) => {
                log::error!("starting {}: {}", s.spec.name, super::chain(&e));
                s.ready = false;
                s.state = match s.spec.restart {
                    Restart::Never => State::Done,
                    _ => State::Backoff(now + s.bump_backoff()),
                };
            }
        }
    }

    /// Tries the ready checks; says whether a service became ready.
    fn check_ready(&mut self) -> bool {
        let (env, now) = (self.env, self.now());
        let mut any = false;
        for s in &mut self.services {
            let (State::Running { since, .. }, false, Some(ready)) =
                (s.state, s.ready, &s.spec.ready)
            else {
                continue;
            };
            if let Some(what) = ready.check(env.kernel) {
                s.ready = true;
                any = true;
                let took = now.saturating_duration_since(since);
                log::info!(
                    "{} is ready: {what}, {} ms after start (uptime {:.3} s)",
                    s.spec.name,
                    took.as_millis(),
                    super::secs(env.kernel.uptime())
                );
                ready::record(env, &s.spec.name, took);
            }
        }
        any
    }

    /// Collects every child that ended: services are restarted per their
    /// policy, anything else (orphans) is just reaped.
    fn reap(&mut self) {
        loop {
            match self.env.kernel.reap() {
                Ok(Reaped::Child(pid, exit)) => self.ended(pid, exit),
                Ok(Reaped::Running | Reaped::NoChildren) => return,
                Err(e) => {
                    log::error!("waitpid: {e}");
                    return;
                }
            }
        }
    }

    fn ended(&mut self, pid: Pid, exit: Exit) {
        let now = self.now();
        if let Some(c) = &mut self.command {
            if c.ended(pid, exit, now) {
                return;
            }
        }
        let (why, failed) = (exit.to_string(), exit.failed());
        let Some(s) = self
            .services
            .iter_mut()
            .find(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))
        else {
            log::debug!("reaped pid {pid}: {why}");
            return;
        };
        let ran = match s.state {
            State::Running { since, .. } => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        s.ready = false;
        let again = match s.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => failed,
            Restart::Never => false,
        };
        if !again {
            log::info!(
                "{} (pid {pid}) {why} after {:.1} s; not restarted ({:?})",
                s.spec.name,
                ran.as_secs_f64(),
                s.spec.restart
            );
            s.state = State::Done;
            return;
        }
        if ran >= HEALTHY_RUN {
            s.backoff = FIRST_BACKOFF;
        }
        let delay = s.bump_backoff();
        log::warn!(
            "{} (pid {pid}) {why} after {:.1} s; restarting in {:.1} s (restart {})",
            s.spec.name,
            ran.as_secs_f64(),
            delay.as_secs_f64(),
            s.starts
        );
        s.state = State::Backoff(now + delay);
    }

    /// Stops the services, dependents first: SIGTERM to each one's process
    /// group, its `stop_timeout` to exit, then SIGKILL.
    pub fn stop_all(&mut self) {
        for i in (0..self.services.len()).rev() {
            let (pid, name, grace) = match self.services[i].state {
                State::Running { pid, .. } => (
                    pid,
                    self.services[i].spec.name.clone(),
                    self.services[i].spec.stop_timeout,
                ),
                _ => {
                    self.services[i].state = State::Done;
                    continue;
                }
            };
            let k = self.env.kernel;
            log::info!("stopping {name} (pid {pid}): SIGTERM, {grace} s to exit");
            signal_group(self.env, pid, Signal::SIGTERM);
            let deadline = self.now() + Duration::from_secs(grace);
            while self.is_running(i) && self.now() < deadline {
                k.sleep(STOP_POLL);
                self.reap_stopping();
            }
            if self.is_running(i) {
                log::warn!("{name} (pid {pid}) did not exit in {grace} s: SIGKILL");
                signal_group(self.env, pid, Signal::SIGKILL);
                while self.is_running(i) {
                    k.sleep(STOP_POLL);
                    self.reap_stopping();
                }
            }
        }
    }

    fn is_running(&self, i: usize) -> bool {
        matches!(self.services[i].state, State::Running { .. })
    }

    /// Reaps during shutdown: a service that ends is done, not restarted.
    fn reap_stopping(&mut self) {
        loop {
            match self.env.kernel.reap() {
                Ok(Reaped::Child(pid, _)) => {
                    for s in &mut self.services {
                        if matches!(s.state, State::Running { pid: p, .. } if p == pid) {
                            log::info!("{} (pid {pid}) stopped", s.spec.name);
                            s.state = State::Done;
                        }
                    }
                }
                Ok(Reaped::Running) => return,
                Ok(Reaped::NoChildren) => {
                    // Nothing left to wait for: whatever we thought running is gone.
                    for s in &mut self.services {
                        if matches!(s.state, State::Running { .. }) {
                            s.state = State::Done;
                        }
                    }
                    return;
                }
                Err(e) => {
                    log::error!("waitpid: {e}");
                    return;
                }
            }
        }
    }
}

impl Service {
    /// The delay before the next restart; doubles the one after it.
    fn bump_backoff(&mut self) -> Duration {
        let d = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        d
    }
}

/// Sends `sig` to a service's process group (each service leads its own),
/// or to the process alone if the group is gone.
fn signal_group(env: &Env, pid: Pid, sig: Signal) {
    if env.kernel.kill(Target::Group(pid), sig).is_err() {
        let _ = env.kernel.kill(Target::Process(pid), sig);
    }
}

#[cfg(test)]
mod tests;
