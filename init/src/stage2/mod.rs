//! Stage 2: terra-init as PID 1 of the running system (issue 4).
//!
//! Stage 1 calls [`run`] after the root is switched, when the version's
//! handoff is `supervise` and `terra.init=` is not given. It never returns:
//! it prepares what a container host needs, starts containerd and the
//! services the OS image declares, supervises them, reaps every orphan, and
//! on a signal shuts the machine down in order.
//!
//! ```text
//! block signals  ->  mounts table  ->  hostname, loopback
//!   ->  containerd (+ /etc/terra/services/*.json)  ->  supervise until a signal
//!   ->  stop services, kill the rest, sync, unmount / remount ro, reboot(2)
//! ```
//!
//! Every step logs and survives its own failure: PID 1 never dies.

mod health;
mod host;
mod mountinfo;
mod mounts;
mod services;
mod shutdown;
mod signals;
mod supervise;

use std::path::Path;

/// What stage 1 hands over to stage 2.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The version that was booted.
    pub version: String,
    /// `terra.debug` was given.
    pub debug: bool,
}

/// Where the OS image declares its extra services.
pub const SERVICES_DIR: &str = "/etc/terra/services";

/// Runs the system; never returns.
pub fn run(h: Handover) -> ! {
    log::info!(
        "stage 2: running version {} as PID 1 (uptime {:.3} s)",
        h.version,
        uptime()
    );
    // Signals first, so none sent during set-up is lost (they wait, blocked,
    // until the supervisor reads them).
    let step = Step(h.debug);
    let signals = step.run("signals", signals::Signals::new);
    step.run("ctrl-alt-del", signals::disable_ctrl_alt_del);
    step.run("mounts", || {
        mounts::mount_all(mounts::CONTAINER_HOST, false)
    });
    mounts::in_background(mounts::CONTAINER_HOST);
    step.run("hostname", || {
        host::set_hostname(Path::new("/etc/hostname"))
    });
    step.run("loopback", host::loopback_up);
    let specs = step.run("services", || services::load(Path::new(SERVICES_DIR)));
    if h.debug {
        for s in &specs {
            log::info!("service {}: {:?}", s.name, s);
        }
    }
    let mut sup = supervise::Supervisor::new(specs, h.version.clone());
    let action = sup.run(&signals);
    sup.stop_all();
    shutdown::shutdown(action)
}

/// With `terra.debug`, logs how long each set-up step took.
struct Step(bool);

impl Step {
    fn run<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        if self.0 {
            log::info!(
                "stage 2: {name} {:.1} ms",
                start.elapsed().as_secs_f64() * 1000.0
            );
        }
        out
    }
}

/// Seconds since boot (`CLOCK_BOOTTIME`, the clock of /proc/uptime), for log
/// lines that make up the boot timeline.
pub fn uptime() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(t) => t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9,
        Err(_) => 0.0,
    }
}
