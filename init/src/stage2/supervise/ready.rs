//! The record of each service's readiness, for other programs:
//! `/run/terra/ready/NAME.json`, replaced at each (re)start's readiness.
//!
//! ```json
//! {"service": "containerd", "start_uptime_s": 2.104, "ready_uptime_s": 2.391, "start_to_ready_ms": 287}
//! ```
//! `terra metrics` turns them into `terra_service_*` metrics for the node
//! exporter; they are not read by init itself.

use std::time::Duration;

use crate::env::Env;

/// The directory under `/run/terra`.
pub const READY_DIR: &str = "ready";

/// Writes NAME.json; a failure only costs the record, so it is logged.
pub fn record(env: &Env, name: &str, start_to_ready: Duration) {
    let ready = env.kernel.uptime();
    let start = ready.saturating_sub(start_to_ready);
    let json = serde_json::json!({
        "service": name,
        "start_uptime_s": round_ms(start),
        "ready_uptime_s": round_ms(ready),
        "start_to_ready_ms": start_to_ready.as_millis() as u64,
    });
    let dir = env.paths.run_terra.join(READY_DIR);
    let path = dir.join(format!("{name}.json"));
    let written = env
        .kernel
        .mkdir_all(&dir, 0o755)
        .and_then(|()| env.kernel.write_file(&path, format!("{json}\n").as_bytes()));
    if let Err(e) = written {
        log::warn!("cannot write {}: {e}", path.display());
    }
}

/// Seconds with millisecond precision (the poll is 10 ms anyway).
fn round_ms(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}
