//! The health gate: a version is good when containerd and every service the
//! image marks `required` are ready (the image's extra sockets answer, its
//! check command has exited 0)
//! and stay so for a grace period, within the gate's timeout. Then stage 2
//! marks the version good. If the gate fails and the version is on trial
//! (stage 1 spent a try on this boot), stage 2 records why and reboots in
//! order, and stage 1 falls back once the tries are spent. A version not on
//! trial (good, untried, a last resort) stays up whatever the gate says: no
//! reboot loop.
//!
//! The image may tune the gate in `/etc/terra/health.json`:
//!
//! ```json
//! {"timeout": 120, "grace": 10, "sockets": ["/run/my/api.sock"],
//!  "command": ["/usr/bin/my-check", "--quick"]}
//! ```
//!
//! [`Gate`] is pure (it is fed the time and what is not ready), so every
//! verdict is unit-tested; the records are written under the partition lock
//! through [`terra_layout::boot_state`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use terra_layout::{Metadata, Partition};

use crate::env::Env;

/// How long stage 2 waits for the partition lock (a `terra` command may
/// hold it; the gate must not stall supervision for long).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The gate's settings, from `/etc/terra/health.json` or the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seconds from stage 2's start for the gate to pass.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Seconds everything must stay ready before the version is good.
    #[serde(default = "default_grace")]
    pub grace: u64,
    /// Further unix sockets that must answer.
    #[serde(default)]
    pub sockets: Vec<PathBuf>,
    /// A command (argv, the program an absolute path) that must exit 0.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

fn default_timeout() -> u64 {
    120
}

fn default_grace() -> u64 {
    10
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            grace: default_grace(),
            sockets: Vec::new(),
            command: None,
        }
    }
}

/// Reads the gate's settings; a missing file is the defaults, a bad one is
/// logged and the defaults apply (the gate itself still runs).
pub fn load(path: &Path) -> Config {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Config::default(),
        Err(e) => {
            log::error!(
                "health gate: reading {}: {e}; defaults apply",
                path.display()
            );
            return Config::default();
        }
    };
    match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            log::error!(
                "health gate: {}: {e} (expected {{\"timeout\": s, \"grace\": s, \"sockets\": [paths], \"command\": [argv]}}); defaults apply",
                path.display()
            );
            Config::default()
        }
    }
}

/// What the gate says after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet (or decided earlier).
    Waiting,
    /// Everything was ready for the grace period.
    Passed,
    /// The timeout passed first; the reason names what was not ready.
    Failed(String),
}

/// The gate's state: when it started, since when everything is ready.
#[derive(Debug, Clone)]
pub struct Gate {
    started: Instant,
    timeout: Duration,
    grace: Duration,
    healthy_since: Option<Instant>,
    done: bool,
}

impl Gate {
    pub fn new(started: Instant, cfg: &Config) -> Self {
        Self {
            started,
            timeout: Duration::from_secs(cfg.timeout),
            grace: Duration::from_secs(cfg.grace),
            healthy_since: None,
            done: false,
        }
    }

    /// Feeds what is not ready at `now` (empty: everything is). A verdict
    /// other than `Waiting` is given once.
    pub fn observe(&mut self, now: Instant, not_ready: &[String]) -> Verdict {
        if self.done {
            return Verdict::Waiting;
        }
        if not_ready.is_empty() {
            let since = *self.healthy_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.grace {
                self.done = true;
                return Verdict::Passed;
            }
            // Ready when the timeout comes: the grace period may finish.
            return Verdict::Waiting;
        }
        self.healthy_since = None;
        if now.saturating_duration_since(self.started) >= self.timeout {
            self.done = true;
            return Verdict::Failed(format!(
                "health gate: not healthy {} s after start: {}",
                self.timeout.as_secs(),
                not_ready.join(", ")
            ));
        }
        Verdict::Waiting
    }

    /// How long until the gate needs another look (`None`: decided).
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        if self.done {
            return None;
        }
        let at = match self.healthy_since {
            Some(since) => since + self.grace,
            None => self.started + self.timeout,
        };
        Some(at.saturating_duration_since(now))
    }
}

/// Marks the booted version good in the running system's partition
/// (`Paths::partition`, `/run/terra/partition`).
pub fn mark_boot_good(env: &Env, version: &str) {
    mark_good_at(&env.paths.partition, version);
}

/// Records why the booted version's gate failed (stage 1 reads it when it
/// gives up on the version).
pub fn note_boot_failure(env: &Env, version: &str, why: &str) {
    update(&env.paths.partition, version, |m| {
        m.note_failure(version, why);
        true
    });
}

/// Sets `boot.good` of `version` in `ov/metadata.db` under `root` (under
/// the lock, atomically; left alone when already good). Failures are
/// logged: the system runs anyway. Returns whether the record was written.
pub fn mark_good_at(root: &Path, version: &str) -> bool {
    let written = update(root, version, |m| m.mark_good(version));
    if written {
        log::info!("boot counting: version {version} marked good");
    }
    written
}

/// One locked read-modify-write of the records; `change` says whether it
/// changed anything (nothing is written otherwise).
fn update(root: &Path, version: &str, change: impl FnOnce(&mut Metadata) -> bool) -> bool {
    let part = Partition::new(root);
    let path = part.metadata();
    if !path.exists() {
        log::warn!("boot counting: {} is missing", path.display());
        return false;
    }
    let _lock = match terra_layout::lock::lock(&part, LOCK_WAIT) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("boot counting: locking {}: {e}", part.root().display());
            return false;
        }
    };
    let mut meta = match Metadata::load(&path) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("boot counting: reading {}: {e}", path.display());
            return false;
        }
    };
    if !meta.versions.contains_key(version) {
        log::warn!(
            "boot counting: version {version} is not in {}",
            path.display()
        );
        return false;
    }
    if !change(&mut meta) {
        return false;
    }
    match meta.store(&path) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("boot counting: writing {}: {e}", path.display());
            false
        }
    }
}

pub mod command;

#[cfg(test)]
pub(crate) mod tests;
