//! The orderly end: after the services are stopped (the supervisor does
//! that, dependents first), kill what is left, save this boot's kernel log
//! on the partition (`terra logs` reads it), sync, unmount or remount
//! read-only in reverse order (the root, then the partition last), and
//! reboot(2).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use terra_layout::Partition;

use crate::env::{Env, Paths};
use crate::kernel::{errno, Errno, PowerAction, Reaped, Signal, Target};

use super::mountinfo::{self, MountInfo};

/// What everything left gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long SIGKILLed processes get to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// One step of the unmount plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Unmount; if busy, remount read-only.
    Unmount(PathBuf),
    /// Remount read-only (the root cannot be unmounted).
    ReadOnly(PathBuf),
}

/// The unmount plan for `mounts` (mountinfo order): everything but the kept
/// ones in reverse order, then the root read-only, then the partition
/// read-only.
pub fn plan(mounts: &[MountInfo], p: &Paths) -> Vec<Step> {
    // Mounts that stay: the kernel's own filesystems (nothing to flush, and
    // /proc is read below) and what holds the partition's mount point.
    let keep = [&p.proc, &p.sys, &p.dev, &p.run, &p.run_terra];
    let is = |m: &MountInfo, path: &Path| Path::new(&m.target) == path;
    let mut steps: Vec<Step> = mounts
        .iter()
        .rev()
        .filter(|m| !is(m, &p.root) && !is(m, &p.partition) && !keep.iter().any(|k| is(m, k)))
        .map(|m| Step::Unmount(PathBuf::from(&m.target)))
        .collect();
    // A target mounted twice (a mount over a mount) needs one step per mount,
    // which the list above already has, top-most first.
    if mounts.iter().any(|m| is(m, &p.root)) {
        steps.push(Step::ReadOnly(p.root.clone()));
    }
    // The partition cannot be unmounted (the root overlay keeps its upper
    // dir), and unmounting this one mount point would leave its superblock
    // alive and dirty: remount it read-only, which flushes the whole
    // filesystem and marks it clean.
    if mounts.iter().any(|m| is(m, &p.partition)) {
        steps.push(Step::ReadOnly(p.partition.clone()));
    }
    steps
}

/// Shuts down and never returns.
pub fn shutdown(env: &Env, action: PowerAction) -> ! {
    let e = power_down(env, action);
    log::error!("reboot({action:?}): {e}; the system is stopped, turn it off by hand");
    loop {
        env.kernel.sleep(Duration::from_secs(3600));
    }
}

/// Everything up to and with reboot(2); returns only its error.
pub fn power_down(env: &Env, action: PowerAction) -> io::Error {
    let k = env.kernel;
    log::info!("shutting down: {action:?}");
    kill_everything(env);
    save_log(env);
    k.sync();
    unmount_all(env);
    k.sync();
    log::info!(
        "{}",
        match action {
            PowerAction::PowerOff => "powering off",
            PowerAction::Reboot => "rebooting",
            PowerAction::Halt => "halting",
        }
    );
    k.reboot(action)
}

/// The kernel log (it holds every `terra:` line and the services' output)
/// to `log/boot-N.log` on the partition, the oldest beyond a few dropped.
/// Before the unmounts, so it is flushed with the rest.
fn save_log(env: &Env) {
    let part = Partition::new(&env.paths.partition);
    if !part.metadata().exists() {
        log::warn!(
            "no partition at {}: this boot's log is not saved",
            part.root().display()
        );
        return;
    }
    let kmsg = env.paths.dev.join("kmsg");
    let text = match env.kernel.kernel_log(&kmsg) {
        Ok(t) => t,
        Err(e) => {
            log::warn!(
                "reading {}: {e}; this boot's log is not saved",
                kmsg.display()
            );
            return;
        }
    };
    match terra_layout::bootlog::save(&part, &text) {
        Ok(path) => log::info!("boot log saved: {}", path.display()),
        Err(e) => log::warn!("saving this boot's log: {e}"),
    }
}

/// SIGTERM to every process but PID 1 (kill(2) with pid -1), a grace period
/// reaping them, then SIGKILL and reap until none is left.
fn kill_everything(env: &Env) {
    for (sig, wait) in [(Signal::SIGTERM, KILL_GRACE), (Signal::SIGKILL, KILL_WAIT)] {
        match env.kernel.kill(Target::All, sig) {
            Err(e) if errno(&e) == Some(Errno::ESRCH) => return, // nobody left
            Err(e) => log::error!("kill(-1, {sig}): {e}"),
            Ok(()) => log::info!("sent {sig} to all processes"),
        }
        if reap_all(env, wait) {
            return;
        }
    }
    log::warn!("some processes did not end after SIGKILL");
}

/// Reaps until no child is left (true) or `limit` passed (false).
fn reap_all(env: &Env, limit: Duration) -> bool {
    let k = env.kernel;
    let deadline = k.now() + limit;
    loop {
        match k.reap() {
            Ok(Reaped::NoChildren) => return true,
            Ok(Reaped::Child(pid, exit)) => log::debug!("reaped pid {pid}: {exit}"),
            Ok(Reaped::Running) => {
                if k.now() >= deadline {
                    return false;
                }
                k.sleep(Duration::from_millis(10));
            }
            Err(e) => {
                log::error!("waitpid: {e}");
                return false;
            }
        }
    }
}

fn unmount_all(env: &Env) {
    let p = &env.paths;
    let mounts = match std::fs::read_to_string(&p.mountinfo) {
        Ok(text) => mountinfo::parse(&text),
        Err(e) => {
            log::error!(
                "reading {}: {e}; only the root and the partition",
                p.mountinfo.display()
            );
            [&p.root, &p.partition]
                .into_iter()
                .map(|t| MountInfo::at(&t.display().to_string()))
                .collect()
        }
    };
    for step in plan(&mounts, p) {
        match step {
            Step::Unmount(target) => match env.kernel.umount(&target) {
                Ok(()) => log::debug!("umount {}", target.display()),
                Err(e) => {
                    log::debug!("umount {}: {e}; remounting read-only", target.display());
                    read_only(env, &target);
                }
            },
            Step::ReadOnly(target) => read_only(env, &target),
        }
    }
}

/// `mount -o remount,ro TARGET`: the filesystem is flushed and marked clean
/// (for ext4: the journal is committed, so no replay at the next mount).
fn read_only(env: &Env, target: &Path) {
    let k = env.kernel;
    // EBUSY: a file is still open for writing; its process is dying (a
    // SIGKILLed process closes its files on the way out). Try a few times.
    for attempt in 1..=5 {
        match k.remount_read_only(target) {
            Ok(()) => return log::info!("mount -o remount,ro {}", target.display()),
            Err(e) if errno(&e) == Some(Errno::EBUSY) && attempt < 5 => {
                k.sync();
                k.sleep(Duration::from_millis(200));
            }
            Err(e) => return log::error!("mount -o remount,ro {}: {e}", target.display()),
        }
    }
}

#[cfg(test)]
mod tests;
