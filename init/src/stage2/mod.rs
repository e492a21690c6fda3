//! Stage 2: terra-init as PID 1 of the running system (issue 4).
//!
//! Stage 1 calls [`run`] after the root is switched, when the version's
//! handoff is `supervise` and `terra.init=` is not given. It never returns:
//! it prepares what a container host needs, starts containerd and the
//! services the OS image declares, supervises them, reaps every orphan, and
//! on a signal shuts the machine down in order.
//!
//! ```text
//! block signals  ->  mounts table  ->  hostname, loopback  ->  machine config
//!   ->  containerd, network, sshd (+ /etc/terra/services/*.json)  ->  supervise until a signal
//!       (the health gate marks the version good, or reboots a failed trial)
//!   ->  stop services, kill the rest, sync, unmount / remount ro, reboot(2)
//! ```
//!
//! Stage 2 keeps stage 1's rules: it runs on the same [`Env`] (its paths
//! come from [`crate::env::Paths`], every system call goes through
//! [`crate::kernel::Kernel`]), so its shutdown order and its supervisor are
//! unit-tested with the recording fake. Every step logs and survives its own
//! failure: PID 1 never dies.

mod health;
mod host;
mod machine;
mod mountinfo;
mod mounts;
mod services;
mod shutdown;
mod signals;
mod supervise;

use std::convert::Infallible;
use std::time::Duration;

use crate::env::Env;
use crate::timeline::Timeline;

/// What stage 1 hands over to stage 2.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The version that was booted.
    pub version: String,
    /// `terra.debug` was given.
    pub debug: bool,
    /// Stage 1 spent a try: a failed health gate reboots.
    pub on_trial: bool,
}

/// Runs the system; never returns.
pub fn run(env: &Env, h: Handover) -> ! {
    let k = env.kernel;
    log::info!(
        "stage 2: running version {} as PID 1 (uptime {:.3} s)",
        h.version,
        secs(k.uptime())
    );
    // The set-up steps are timed like stage 1's (logged with terra.debug).
    let mut t = Timeline::new(k.now(), k.uptime());
    // Signals first, so none sent during set-up is lost (they wait, blocked,
    // until the supervisor reads them).
    t.step("signals", || signals::block(env));
    t.step("ctrl-alt-del", || signals::disable_ctrl_alt_del(env));
    t.step("mounts", || {
        mounts::mount_all(env, mounts::CONTAINER_HOST, false)
    });
    // A scope, so the background mounts may borrow the environment; it never
    // ends (shutdown does not return), so it never waits for them either.
    match std::thread::scope(|scope| -> Infallible {
        mounts::in_background(scope, env, mounts::CONTAINER_HOST);
        t.step("hostname", || host::set_hostname(env));
        t.step("loopback", || host::loopback_up(env));
        // The machine config after the image's hostname, so that its
        // hostname wins.
        let config = t.step("machine config", || machine::load(env));
        t.step("apply config", || machine::apply(env, &config));
        let terra = machine::services(env, &config);
        let specs = t.step("services", || services::load(env, terra));
        if h.debug {
            for s in &specs {
                log::info!("service {}: {:?}", s.name, s);
            }
            log::info!("stage 2 set-up {}", t.summary());
        }
        let gate = t.step("health", || health::load(&env.paths.health));
        let mut sup =
            supervise::Supervisor::new(env, specs, h.version.clone()).with_health(gate, h.on_trial);
        let action = sup.run();
        sup.stop_all();
        shutdown::shutdown(env, action)
    }) {}
}

/// Seconds, for log lines that make up the boot timeline.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// An error and its causes on one line, for the log.
fn chain(err: &dyn std::error::Error) -> String {
    crate::error::chain(err).join(": ")
}
