//! The supervisor: starts the services in order, forwards their output to
//! the log, restarts them with exponential back-off when they end, reaps
//! every other process that ends (PID 1 inherits all orphans), and returns
//! when a signal asks for shutdown.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::services::{Restart, Spec, CONTAINERD};
use super::shutdown::Action;
use super::signals::{meaning, Signals};

/// The PATH services start with (an image sets more through `env`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// First restart delay; doubled after each quick failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A service that ran this long is healthy again: back-off starts over.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How often a starting service's ready socket is tried.
const READY_POLL: Duration = Duration::from_millis(10);

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

pub struct Supervisor {
    services: Vec<Service>,
    version: String,
    boot_marked: bool,
}

impl Supervisor {
    pub fn new(specs: Vec<Spec>, version: String) -> Self {
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
        Self {
            services,
            version,
            boot_marked: false,
        }
    }

    /// Supervises until a signal asks for a shutdown; returns which.
    pub fn run(&mut self, signals: &Signals) -> Action {
        loop {
            // A start can make another service due (one without a ready check
            // is ready once started): go on until nothing changes.
            while self.start_due(Instant::now()) | self.check_ready() {}
            for sig in signals.wait(self.next_wake(Instant::now())) {
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
        wake
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
        let s = &mut self.services[i];
        s.starts += 1;
        match spawn(&s.spec) {
            Ok(pid) => {
                log::info!(
                    "started {} (pid {pid}): {} (uptime {:.3} s)",
                    s.spec.name,
                    s.spec.argv.join(" "),
                    super::uptime()
                );
                s.state = State::Running {
                    pid,
                    since: Instant::now(),
                };
                // Without a ready check a service is ready once started.
                s.ready = s.spec.ready.is_none();
            }
            Err(e) => {
                log::error!("starting {}: {e}", s.spec.name);
                s.ready = false;
                s.state = match s.spec.restart {
                    Restart::Never => State::Done,
                    _ => State::Backoff(Instant::now() + s.bump_backoff()),
                };
            }
        }
    }

    /// Tries the ready sockets; says whether a service became ready.
    fn check_ready(&mut self) -> bool {
        let mut containerd_ready = false;
        let mut any = false;
        for s in &mut self.services {
            let (State::Running { since, .. }, false, Some(ready)) =
                (s.state, s.ready, &s.spec.ready)
            else {
                continue;
            };
            if UnixStream::connect(&ready.socket).is_ok() {
                s.ready = true;
                any = true;
                log::info!(
                    "{} is ready: {} answers, {} ms after start (uptime {:.3} s)",
                    s.spec.name,
                    ready.socket.display(),
                    since.elapsed().as_millis(),
                    super::uptime()
                );
                containerd_ready |= s.spec.name == CONTAINERD;
            }
        }
        if containerd_ready && !self.boot_marked {
            self.boot_marked = true;
            super::health::mark_boot_good(&self.version);
        }
        any
    }

    /// Collects every child that ended: services are restarted per their
    /// policy, anything else (orphans) is just reaped.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("waitpid: {e}");
                    return;
                }
                Ok(st) => st,
            };
            let (pid, why, failed) = match status {
                WaitStatus::Exited(pid, code) => {
                    (pid, format!("exited with status {code}"), code != 0)
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    (pid, format!("was killed by signal {sig}"), true)
                }
                _ => continue,
            };
            self.ended(pid, &why, failed);
        }
    }

    fn ended(&mut self, pid: Pid, why: &str, failed: bool) {
        let Some(s) = self
            .services
            .iter_mut()
            .find(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))
        else {
            log::debug!("reaped pid {pid}: {why}");
            return;
        };
        let ran = match s.state {
            State::Running { since, .. } => since.elapsed(),
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
        s.state = State::Backoff(Instant::now() + delay);
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
            log::info!("stopping {name} (pid {pid}): SIGTERM, {grace} s to exit");
            signal_group(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(grace);
            while self.is_running(i) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                self.reap_stopping();
            }
            if self.is_running(i) {
                log::warn!("{name} (pid {pid}) did not exit in {grace} s: SIGKILL");
                signal_group(pid, Signal::SIGKILL);
                while self.is_running(i) {
                    std::thread::sleep(Duration::from_millis(20));
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
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                    for s in &mut self.services {
                        if matches!(s.state, State::Running { pid: p, .. } if p == pid) {
                            log::info!("{} (pid {pid}) stopped", s.spec.name);
                            s.state = State::Done;
                        }
                    }
                }
                Ok(WaitStatus::StillAlive) => return,
                Err(Errno::ECHILD) => {
                    // Nothing left to wait for: whatever we thought running is gone.
                    for s in &mut self.services {
                        if matches!(s.state, State::Running { .. }) {
                            s.state = State::Done;
                        }
                    }
                    return;
                }
                Ok(_) | Err(Errno::EINTR) => {}
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
fn signal_group(pid: Pid, sig: Signal) {
    if killpg(pid, sig).is_err() {
        let _ = kill(pid, sig);
    }
}

/// Starts a service in its own process group, stdin from /dev/null, stdout
/// and stderr into a pipe whose lines go to the log (console and kmsg).
fn spawn(spec: &Spec) -> Result<Pid, String> {
    let (program, args) = spec.argv.split_first().ok_or("empty argv")?;
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let write2 = write.try_clone().map_err(|e| format!("dup: {e}"))?;
    let child = {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", "/")
            .envs(&spec.env)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .process_group(0);
        cmd.spawn().map_err(|e| format!("{program}: {e}"))?
        // `cmd` is dropped here, closing our copies of the pipe's write end,
        // so the reader sees EOF when the service (and its children) end.
    };
    let pid = Pid::from_raw(child.id() as i32);
    // The Child handle is dropped without waiting: reap() collects it.
    drop(child);
    let name = spec.name.clone();
    let reader = std::thread::Builder::new()
        .name(format!("out-{name}"))
        .spawn(move || forward(&name, read));
    if let Err(e) = reader {
        log::error!(
            "{}: no thread for its output ({e}); it goes nowhere",
            spec.name
        );
    }
    Ok(pid)
}

/// Logs each line a service writes, prefixed with its name.
fn forward(name: &str, read: OwnedFd) {
    let reader = BufReader::new(File::from(read));
    for line in reader.split(b'\n') {
        match line {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                log::info!("{name}: {}", tidy(text.trim_end()));
            }
            Err(e) => {
                log::warn!("{name}: reading its output: {e}");
                return;
            }
        }
    }
}

/// Drops the `time="…" ` field that logrus (containerd, runc) puts first:
/// the log has its own timestamps.
fn tidy(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix("time=\"") {
        if let Some((_, after)) = rest.split_once("\" ") {
            return after;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage2::services::parse;

    #[test]
    fn logrus_timestamps_are_dropped() {
        assert_eq!(
            tidy(r#"time="2026-11-29T19:00:00Z" level=info msg="starting containerd""#),
            r#"level=info msg="starting containerd""#
        );
        assert_eq!(tidy("plain line"), "plain line");
        assert_eq!(tidy("time=\"unterminated"), "time=\"unterminated");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let spec = parse("x", r#"{"argv":["/bin/true"]}"#).unwrap();
        let mut sup = Supervisor::new(vec![spec], "v".into());
        let s = &mut sup.services[0];
        let delays: Vec<u128> = (0..10).map(|_| s.bump_backoff().as_millis()).collect();
        assert_eq!(&delays[..4], &[500, 1000, 2000, 4000]);
        assert_eq!(delays[9], 60_000);
    }

    #[test]
    fn restart_policies() {
        let mut sup = Supervisor::new(
            vec![
                parse("a", r#"{"argv":["/a"],"restart":"never"}"#).unwrap(),
                parse("b", r#"{"argv":["/b"],"restart":"on-failure"}"#).unwrap(),
                parse("c", r#"{"argv":["/c"],"restart":"on-failure"}"#).unwrap(),
                parse("d", r#"{"argv":["/d"]}"#).unwrap(),
            ],
            "v".into(),
        );
        for (i, s) in sup.services.iter_mut().enumerate() {
            s.state = State::Running {
                pid: Pid::from_raw(100 + i as i32),
                since: Instant::now(),
            };
        }
        sup.ended(Pid::from_raw(100), "exited with status 1", true);
        sup.ended(Pid::from_raw(101), "exited with status 0", false);
        sup.ended(Pid::from_raw(102), "was killed by signal SIGKILL", true);
        sup.ended(Pid::from_raw(103), "exited with status 0", false);
        sup.ended(Pid::from_raw(999), "orphan", false);
        let states: Vec<State> = sup.services.iter().map(|s| s.state).collect();
        assert_eq!(states[0], State::Done);
        assert_eq!(states[1], State::Done);
        assert!(matches!(states[2], State::Backoff(_)));
        assert!(matches!(states[3], State::Backoff(_)));
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let spec = parse("gone", r#"{"argv":["/nonexistent/bin/x"]}"#).unwrap();
        let err = spawn(&spec).unwrap_err();
        assert!(err.contains("/nonexistent/bin/x"), "{err}");
        // The supervisor survives it: the service waits for a restart.
        let mut sup = Supervisor::new(vec![spec], "v".into());
        sup.start(0);
        assert!(matches!(sup.services[0].state, State::Backoff(_)));
    }

    #[test]
    fn runs_a_real_service_and_forwards_until_it_ends() {
        let spec = parse(
            "echo",
            r#"{"argv":["/bin/sh","-c","echo hello; exit 3"],"restart":"never"}"#,
        )
        .unwrap();
        let pid = spawn(&spec).unwrap();
        match waitpid(pid, None).unwrap() {
            WaitStatus::Exited(p, 3) => assert_eq!(p, pid),
            other => panic!("{other:?}"),
        }
    }
}
