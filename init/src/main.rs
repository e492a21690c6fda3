//! terra-init: Terra's static PID 1.
//!
//! Stage 1 runs in the initramfs: it finds the partition labelled `terra`,
//! mounts the chosen version as an overlay root, switches root and hands
//! off (exec a program, or stage 2 in this process). [`boot`] reads as the
//! list of steps; each step lives in its own module, and every call into
//! the kernel goes through [`kernel::Kernel`], so the steps are unit-tested
//! with a recording fake. Failures end in [`fatal::fatal`], which never
//! returns: PID 1 must not exit or panic.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![deny(unsafe_code)]

mod cmdline;
mod early;
mod env;
mod error;
mod fatal;
mod find;
mod handoff;
mod kernel;
mod logger;
mod modules;
mod rescue;
mod stage2;
mod switch_root;
mod sys;
mod timeline;
mod version;

use std::convert::Infallible;
use std::time::Instant;

use env::{Env, Paths};
use error::BootError;
use kernel::real::Real;
use kernel::Kernel;
use timeline::Timeline;

static REAL: Real = Real;

fn main() {
    let started = Instant::now();
    let uptime = REAL.uptime();
    logger::install();
    std::panic::set_hook(Box::new(panic_hook));
    let mut env = Env::new(Paths::default(), &REAL, started);
    env.uptime_at_start = uptime;
    match boot(&env) {
        Ok(never) => match never {},
        Err(err) => fatal::fatal(&env, err),
    }
}

/// Stage 1, step by step. Returns only on failure.
pub fn boot(env: &Env) -> Result<Infallible, BootError> {
    let mut t = Timeline::new(env.started, env.uptime_at_start);
    t.step("early", || early::mount_all(env))?;
    t.step("log", || {
        logger::open(&env.paths.dev, &env.paths.printk, &env.paths.printk_devkmsg)
    });
    let params = t.step("cmdline", || cmdline::read(env));
    t.step("modules", || modules::load_all(env));
    let found = t.step("find", || find::partition(env, &params))?;
    log::info!(
        "found partition {} on {}",
        params.label,
        found.node.display()
    );
    let booted = t.step("mount", || version::mount(env, &params, &found))?;
    log::info!("{}", booted.line());
    write_plan(env);
    rescue::before_switch(env, &params);
    t.step("switch_root", || switch_root::run(env))?;
    t.label = Some(params.label.clone());
    t.device = Some(found.node.display().to_string());
    t.scans = Some(found.scans);
    t.version = Some(booted.name.clone());
    t.reason = Some(booted.reason.to_string());
    t.skipped = booted.skipped.clone();
    log::info!("{}", t.summary());
    t.write(&env.paths.run_terra.join("boot.json"));
    handoff::run(env, &params, &booted)
}

/// `/run/terra/mounts`: every mount made, as shell lines (it moves into the
/// new root with /run).
fn write_plan(env: &Env) {
    let mut text = String::from("# mounts made by terra-init stage 1, in order\n");
    for line in env.plan.borrow().iter() {
        text.push_str(line);
        text.push('\n');
    }
    let path = env.paths.run_terra.join("mounts");
    if let Err(e) = std::fs::write(&path, text) {
        log::warn!("cannot write {}: {e}", path.display());
    }
}

/// A panic still ends in the fatal block and its fallback, not in a
/// kernel panic (the hook never returns, so `panic = "abort"` never aborts).
fn panic_hook(info: &std::panic::PanicHookInfo) {
    let env = Env::new(Paths::default(), &REAL, Instant::now());
    fatal::fatal(
        &env,
        BootError::Panic {
            message: info.to_string(),
        },
    )
}
