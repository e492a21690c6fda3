//! Stage 1's choice of version with boot counting: walk the boot order,
//! let [`terra_layout::boot_state::gate`] decide about each candidate, mount
//! the first that may boot, and write what changed (a try spent, failures
//! recorded, the default rolled back) in one atomic replace of
//! `ov/metadata.db`, under the partition lock, before the root is switched.
//!
//! A normal boot (a good or untried version) writes nothing. A pending
//! version whose try cannot be written is not booted: an uncounted boot of
//! a version that may crash the machine could loop forever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use terra_layout::boot_order::Reason;
use terra_layout::boot_state::{gate, Gate, Record, Request};
use terra_layout::{Handoff, Metadata, Partition};

use super::{mount_overlay, Booted};
use crate::env::Env;
use crate::error::BootError;

/// How long stage 1 waits for the partition lock (nobody else runs yet;
/// this only bounds a surprise).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Tries the versions in boot order until one may boot and mounts.
pub(super) fn mount_root(
    env: &Env,
    part: &Partition,
    meta: &Metadata,
    requested: Option<&str>,
    init_override: bool,
) -> Result<Booted, BootError> {
    let request = requested.map(Request::parse);
    let name = request.as_ref().map(|r| r.name);
    let missing = name.filter(|r| !meta.versions.contains_key(*r));
    if let Some(r) = missing {
        let names: Vec<&str> = meta.versions.keys().map(String::as_str).collect();
        log::warn!(
            "terra.version={r} is not installed (installed: {}); falling back",
            names.join(", ")
        );
    }
    let now = unix_now();
    let mut next = meta.clone();
    let mut skipped: Vec<String> = Vec::new();
    let mut last_resort: Vec<String> = Vec::new();
    let mut tried = Vec::new();
    for (i, choice) in meta.boot_order(name).iter().enumerate() {
        let Some(rec) = meta.versions.get(&choice.name) else {
            continue;
        };
        let v = choice.name.as_str();
        let pin = match (&request, choice.reason) {
            (Some(r), Reason::Requested) => r.digest,
            _ => None,
        };
        let spend = match gate(rec, pin) {
            Gate::Boot { spend } => spend,
            Gate::Skip { reason, record } => {
                log::warn!("skipping version {v}: {reason}");
                match record {
                    Record::Fail => {
                        fail(&mut next, v, &reason, now);
                        last_resort.push(v.to_string());
                    }
                    Record::Note => next.note_failure(v, &reason),
                    Record::Nothing => last_resort.push(v.to_string()),
                }
                skipped.push(format!("{v}: {reason}"));
                tried.push(format!("version {v}: {reason}"));
                continue;
            }
        };
        // (the reason recorded, the line for the fatal block)
        let mounted = mount_overlay(env, part, rec)
            .map_err(|e| (format!("cannot mount: {e}"), e.to_string()))
            .and_then(|()| handoff_present(env, rec, init_override).map_err(|r| (r.clone(), r)));
        if let Err((reason, found)) = mounted {
            log::warn!("version {v} {reason}; trying the next one");
            // A pending version that cannot be mounted failed like one that
            // crashed; a good one may be whole again next boot (a disk that
            // was not ready), so it is only noted.
            if spend {
                fail(&mut next, v, &reason, now);
            } else {
                next.note_failure(v, &reason);
            }
            skipped.push(format!("{v}: {reason}"));
            tried.push(format!("version {v}: {found}"));
            continue;
        }
        let left = if spend { next.spend_try(v) } else { None };
        if let Err(e) = store(part, meta, &next) {
            if spend {
                log::error!(
                    "cannot spend a try of pending version {v} ({e}); not booting it uncounted"
                );
                if let (Some(n), Some(o)) = (next.versions.get_mut(v), meta.versions.get(v)) {
                    n.boot = o.boot.clone();
                }
                tried.push(format!("version {v}: cannot spend a try: {e}"));
                continue;
            }
            log::warn!("cannot record the boot state: {e}");
        }
        let reason = match choice.reason {
            _ if i > 0 || missing.is_some() => "fallback",
            Reason::Requested => "requested",
            Reason::Default => "default",
            Reason::Newest => "newest",
            Reason::LastGood | Reason::Other => "fallback",
        };
        return Ok(Booted {
            name: v.to_string(),
            reason,
            detail: detail(left, &skipped),
            skipped,
            on_trial: left.is_some(),
            handoff: rec.handoff.clone(),
        });
    }
    // Every version is failed or unmountable: rather than no system at all,
    // boot a failed one, uncounted (stage 2 does not reboot it).
    for v in &last_resort {
        let Some(rec) = meta.versions.get(v) else {
            continue;
        };
        if mount_overlay(env, part, rec).is_ok() {
            log::error!("every version failed; booting failed version {v} as a last resort");
            if let Err(e) = store(part, meta, &next) {
                log::warn!("cannot record the boot state: {e}");
            }
            return Ok(Booted {
                name: v.clone(),
                reason: "last resort",
                detail: Some("every version failed".into()),
                skipped,
                on_trial: false,
                handoff: rec.handoff.clone(),
            });
        }
    }
    Err(BootError::NoVersionMounted { tried })
}

/// A version that execs a program must have it: found missing after switch
/// root, there would be nothing to go back to (PID 1 could only wait), so it
/// is checked here, where the next version can still boot.
fn handoff_present(
    env: &Env,
    rec: &terra_layout::VersionRecord,
    init_override: bool,
) -> Result<(), String> {
    match &rec.handoff {
        Handoff::Exec { path, .. } if !init_override => {
            let p = env.paths.newroot.join(path.trim_start_matches('/'));
            if env.kernel.exists(&p) {
                Ok(())
            } else {
                Err(format!("has no handoff program {path} in its root"))
            }
        }
        _ => Ok(()),
    }
}

/// Records `v` failed, and says so when the default moves back.
fn fail(next: &mut Metadata, v: &str, reason: &str, now: u64) {
    if let Some(back) = next.record_failure(v, reason, now) {
        log::warn!("version {v} failed; the default is {back} again");
    }
}

/// What the console line adds after the reason.
fn detail(left: Option<u32>, skipped: &[String]) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(n) = left {
        parts.push(format!(
            "pending, {n} {} left after this one",
            if n == 1 { "try" } else { "tries" }
        ));
    }
    if !skipped.is_empty() {
        parts.push(format!("skipped {}", skipped.join("; ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One locked, atomic replace, and only when something changed.
fn store(part: &Partition, old: &Metadata, next: &Metadata) -> Result<(), String> {
    if next == old {
        return Ok(());
    }
    let _lock = terra_layout::lock::lock(part, LOCK_WAIT).map_err(|e| e.to_string())?;
    next.store(&part.metadata()).map_err(|e| {
        let mut text = e.to_string();
        if let Some(src) = std::error::Error::source(&e) {
            text = format!("{text}: {src}");
        }
        text
    })
}

/// Unix seconds for a failure's time (0 when the clock is before 1970,
/// which only a machine without an RTC shows).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
