//! `terra-crash`: the `terra` command for crash tests, built only with the
//! `crash-points` feature. With `TERRA_CRASH_AT=<point>` (`download`,
//! `unpack`, `publish`, `record`) it announces the point on stderr and
//! stops there, so a test can `kill -9` it at a known moment. The `terra`
//! binary itself never reads that variable.

use std::sync::Arc;

use terra::hooks::{CrashPoint, Hooks, NoHooks};

/// Stops forever at one crash point.
struct StopAt(CrashPoint);

impl Hooks for StopAt {
    fn reached(&self, point: CrashPoint) {
        if point == self.0 {
            eprintln!("terra: crash point {point}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let wanted = std::env::var("TERRA_CRASH_AT").ok();
    let hooks: Arc<dyn Hooks> = match wanted.as_deref().map(CrashPoint::from_name) {
        Some(Some(point)) => Arc::new(StopAt(point)),
        Some(None) => {
            eprintln!(
                "terra-crash: TERRA_CRASH_AT={:?} names no crash point (download, unpack, publish, record, menu)",
                wanted.unwrap_or_default()
            );
            return std::process::ExitCode::FAILURE;
        }
        None => Arc::new(NoHooks),
    };
    terra::cmd::main(hooks)
}
