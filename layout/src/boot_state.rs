//! Boot counting: the state of each version and every decision about it, as
//! pure functions over [`Metadata`], so that stage 1, stage 2 and the CLI
//! take the same decisions and the tests can try every combination.
//!
//! ```text
//!   terra default NAME  ->  pending (tries_left = N, the good default kept as `fallback`)
//!   stage 1 boots it    ->  one try spent (written before switching root)
//!   stage 2 gate passes ->  good (counting ends)
//!   no try left, not good, at the next boot  ->  failed (reason, time);
//!                           the default goes back to `fallback`
//! ```
//!
//! A version that was never activated (installed, or written by an older
//! `terra`) is *untried*: it boots without counting, as before boot counting.

use crate::record::{BootState, Handoff, Metadata, VersionRecord};

/// Tries a version gets from `terra default` without `--tries`.
pub const DEFAULT_TRIES: u32 = 3;

/// What a version's record says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// Passed stage 2's health gate.
    Good,
    /// Activated and not yet good; `tries_left` boots remain.
    Pending { tries_left: u32 },
    /// Activated, every try spent, not good: stage 1 fails it at its next boot.
    Exhausted,
    /// Given up on: stage 1 skips it until it is activated again.
    Failed { reason: &'a str, at: u64 },
    /// Never activated nor marked good: boots without counting.
    Untried,
}

impl BootState {
    /// The status these fields encode.
    pub fn status(&self) -> Status<'_> {
        if self.good {
            return Status::Good;
        }
        if let Some(at) = self.failed_at {
            let reason = self.last_failure.as_deref().unwrap_or("unknown");
            return Status::Failed { reason, at };
        }
        match self.tries_left {
            Some(0) => Status::Exhausted,
            Some(n) => Status::Pending { tries_left: n },
            None => Status::Untried,
        }
    }
}

/// `terra.version=NAME` or `terra.version=NAME@sha256:HEX`: a name, and the
/// manifest digest it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub name: &'a str,
    pub digest: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// Splits at the first `@` (names cannot contain one).
    pub fn parse(value: &'a str) -> Self {
        match value.split_once('@') {
            Some((name, digest)) => Request {
                name,
                digest: Some(digest),
            },
            None => Request {
                name: value,
                digest: None,
            },
        }
    }
}

/// Stage 1's decision about one candidate, before mounting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Mount and boot it; `spend` says a try must be written first.
    Boot { spend: bool },
    /// Do not boot it, for `reason`; `record` says what to write about it.
    Skip { reason: String, record: Record },
}

/// What stage 1 writes about a version it skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// It ran out of tries: record it failed now ([`Metadata::record_failure`]).
    Fail,
    /// Keep the reason as its last failure, without failing it
    /// ([`Metadata::note_failure`]): the request, not the version, was wrong.
    Note,
    /// Already failed: nothing new to write.
    Nothing,
}

/// Whether stage 1 may boot `rec`, pinned to `pin` (the digest asked for on
/// the command line, for the requested version only).
pub fn gate(rec: &VersionRecord, pin: Option<&str>) -> Gate {
    if let Some(want) = pin {
        let found = rec.image.as_ref().map(|i| i.digest.as_str());
        if found != Some(want) {
            return Gate::Skip {
                reason: format!(
                    "digest mismatch: expected {want}, found {}",
                    found.unwrap_or("no digest in its record")
                ),
                record: Record::Note,
            };
        }
    }
    match rec.boot.status() {
        Status::Good | Status::Untried => Gate::Boot { spend: false },
        Status::Pending { .. } => Gate::Boot { spend: true },
        Status::Exhausted => Gate::Skip {
            reason: match &rec.boot.last_failure {
                Some(last) => format!("no tries left and never became good (last: {last})"),
                None => "no tries left and never became good".to_string(),
            },
            record: Record::Fail,
        },
        Status::Failed { reason, .. } => Gate::Skip {
            reason: format!("failed earlier: {reason}"),
            record: Record::Nothing,
        },
    }
}

/// A change refused by [`Metadata::activate`] or [`Metadata::rollback`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("no version {name:?} (installed: {installed})")]
    NotInstalled { name: String, installed: String },
    #[error("--tries must be at least 1 (found 0)")]
    NoTries,
    #[error("no good version to roll back to (default: {default})")]
    NothingToRollBackTo { default: String },
}

/// What [`Metadata::activate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activated {
    /// The version was already good: it is the default now, without tries.
    Good,
    /// The version is pending with this many tries.
    Pending { tries: u32 },
    /// The version hands off to another init (`exec`): no stage 2 runs to
    /// pass a health gate, so it is the default without counting.
    Ungated,
}

impl Metadata {
    /// `terra default NAME`: makes `name` the default. A good version is
    /// default at once, and so is one with an `exec` handoff (nothing would
    /// ever mark it good); any other becomes pending with `tries` tries (an
    /// earlier failure is forgotten), and the current default, if good, is
    /// kept as the fallback (else the fallback already recorded stays).
    pub fn activate(&mut self, name: &str, tries: u32) -> Result<Activated, StateError> {
        if tries == 0 {
            return Err(StateError::NoTries);
        }
        if !self.versions.contains_key(name) {
            return Err(self.not_installed(name));
        }
        if let Some(old) = self.default.clone() {
            let old_good = self.versions.get(&old).is_some_and(|r| r.boot.good);
            if old != name && old_good {
                self.fallback = Some(old);
            }
        }
        self.default = Some(name.to_string());
        let Some(rec) = self.versions.get_mut(name) else {
            return Err(self.not_installed(name));
        };
        if rec.boot.good {
            return Ok(Activated::Good);
        }
        if matches!(rec.handoff, Handoff::Exec { .. }) {
            return Ok(Activated::Ungated);
        }
        rec.boot = BootState {
            tries_left: Some(tries),
            ..BootState::default()
        };
        Ok(Activated::Pending { tries })
    }

    /// `terra rollback`: the last good version becomes the default again: the
    /// recorded fallback if it is installed and good, else the newest good
    /// version other than the default. Returns its name.
    pub fn rollback(&mut self) -> Result<String, StateError> {
        let target = self.good_fallback().map(String::from).ok_or_else(|| {
            StateError::NothingToRollBackTo {
                default: self.default.clone().unwrap_or_else(|| "none".into()),
            }
        })?;
        self.default = Some(target.clone());
        self.fallback = None;
        Ok(target)
    }

    /// The version a rollback goes to: the recorded fallback when installed
    /// and good, else the newest good version that is not the default.
    pub fn good_fallback(&self) -> Option<&str> {
        let good = |n: &str| self.versions.get(n).is_some_and(|r| r.boot.good);
        if let Some(f) = self.fallback.as_deref().filter(|f| good(f)) {
            if self.default.as_deref() != Some(f) {
                return Some(f);
            }
        }
        self.boot_order(None)
            .into_iter()
            .map(|c| c.name)
            .find(|n| good(n) && self.default.as_deref() != Some(n.as_str()))
            .and_then(|n| self.versions.get_key_value(&n).map(|(k, _)| k.as_str()))
    }

    /// Stage 1: spends one try of a pending version. Returns the tries left.
    pub fn spend_try(&mut self, name: &str) -> Option<u32> {
        let rec = self.versions.get_mut(name)?;
        let left = rec.boot.tries_left?.checked_sub(1)?;
        rec.boot.tries_left = Some(left);
        Some(left)
    }

    /// Stage 1: `name` failed for `reason` at `at` (Unix seconds). It is
    /// skipped from now on, and if it was the default, the last good version
    /// becomes the default again (returned).
    pub fn record_failure(&mut self, name: &str, reason: &str, at: u64) -> Option<String> {
        let rec = self.versions.get_mut(name)?;
        rec.boot.failed_at = Some(at);
        rec.boot.last_failure = Some(reason.to_string());
        rec.boot.tries_left = Some(0);
        if self.default.as_deref() == Some(name) {
            return self.rollback().ok();
        }
        None
    }

    /// Notes why `name` did not boot this time, without failing it.
    pub fn note_failure(&mut self, name: &str, reason: &str) {
        if let Some(rec) = self.versions.get_mut(name) {
            rec.boot.last_failure = Some(reason.to_string());
        }
    }

    /// Stage 2: the gate passed. The tries left stay as they were (a good
    /// version does not count; they show how many boots it took). Returns
    /// whether anything changed.
    pub fn mark_good(&mut self, name: &str) -> bool {
        let Some(rec) = self.versions.get_mut(name) else {
            return false;
        };
        if rec.boot.good && rec.boot.failed_at.is_none() {
            return false;
        }
        rec.boot.good = true;
        rec.boot.failed_at = None;
        true
    }

    fn not_installed(&self, name: &str) -> StateError {
        StateError::NotInstalled {
            name: name.to_string(),
            installed: self.versions.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

#[cfg(test)]
mod tests;
