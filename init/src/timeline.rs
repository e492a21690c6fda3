//! The boot timeline, for the kernel log and `/run/terra/boot.json`;
//! stage 2 times its set-up steps with one too.
//!
//! ```json
//! {"uptime_at_start_ms": 1562.3, "total_ms": 48.1,
//!  "steps": [{"name": "early", "start_ms": 0.02, "duration_ms": 0.31}, ...],
//!  "label": "terra", "device": "/dev/vda", "scans": 1, "version": "v1", "reason": "default"}
//! ```
//! `start_ms` counts from init's start (CLOCK_MONOTONIC);
//! `uptime_at_start_ms` is the kernel's uptime when init started
//! (CLOCK_BOOTTIME, the clock of /proc/uptime), so start + uptime gives the
//! uptime of each step.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One step of stage 1 (or of stage 2's set-up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub start_ms: f64,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    #[serde(skip)]
    started: Instant,
    pub uptime_at_start_ms: f64,
    pub total_ms: f64,
    pub steps: Vec<Step>,
    pub label: Option<String>,
    pub device: Option<String>,
    /// Scans of /sys/class/block until the partition was there (1: at once).
    pub scans: Option<u32>,
    pub version: Option<String>,
    pub reason: Option<String>,
    /// Versions passed over before this one, each with its reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Milliseconds with two decimals (10 µs is plenty).
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

impl Timeline {
    /// `started`: when init started; `uptime_at_start`: the kernel's uptime then.
    pub fn new(started: Instant, uptime_at_start: Duration) -> Self {
        Self {
            started,
            uptime_at_start_ms: ms(uptime_at_start),
            total_ms: 0.0,
            steps: Vec::new(),
            label: None,
            device: None,
            scans: None,
            version: None,
            reason: None,
            skipped: Vec::new(),
        }
    }

    /// Runs one step, timing it (logged with `terra.debug`).
    pub fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.record(name, t, Instant::now());
        log::debug!("step {name}: {:.2} ms", ms(t.elapsed()));
        out
    }

    fn record(&mut self, name: &'static str, from: Instant, to: Instant) {
        self.steps.push(Step {
            name,
            start_ms: ms(from.saturating_duration_since(self.started)),
            duration_ms: ms(to.saturating_duration_since(from)),
        });
        self.total_ms = ms(to.saturating_duration_since(self.started));
    }

    /// One line for the kernel log.
    pub fn summary(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| format!("{} {:.1}", s.name, s.duration_ms))
            .collect();
        format!(
            "timeline (ms): {}; total {:.1} ms from init start at uptime {:.3} s",
            steps.join(", "),
            self.total_ms,
            self.uptime_at_start_ms / 1000.0
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Writes `boot.json`; failing only costs the record, so it is logged.
    pub fn write(&self, path: &Path) {
        if let Err(e) = std::fs::write(path, self.to_json()) {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_steps_relative_to_init_start() {
        let t0 = Instant::now();
        let mut t = Timeline::new(t0, Duration::from_millis(1562));
        t.record(
            "early",
            t0 + Duration::from_micros(20),
            t0 + Duration::from_micros(330),
        );
        t.record(
            "find",
            t0 + Duration::from_millis(5),
            t0 + Duration::from_millis(25),
        );
        t.label = Some("terra".into());
        t.device = Some("/dev/vda".into());
        t.scans = Some(1);
        t.version = Some("v1".into());
        t.reason = Some("default".into());
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "uptime_at_start_ms": 1562.0,
                "total_ms": 25.0,
                "steps": [
                    {"name": "early", "start_ms": 0.02, "duration_ms": 0.31},
                    {"name": "find", "start_ms": 5.0, "duration_ms": 20.0}
                ],
                "label": "terra", "device": "/dev/vda", "scans": 1, "version": "v1", "reason": "default"
            })
        );
        assert_eq!(
            t.summary(),
            "timeline (ms): early 0.3, find 20.0; total 25.0 ms from init start at uptime 1.562 s"
        );
    }

    #[test]
    fn step_runs_and_times_the_closure() {
        let mut t = Timeline::new(Instant::now(), Duration::ZERO);
        let v = t.step("x", || {
            std::thread::sleep(Duration::from_millis(5));
            42
        });
        assert_eq!(v, 42);
        assert!(t.steps[0].duration_ms >= 5.0);
    }
}
