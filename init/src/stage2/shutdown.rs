//! The orderly end: after the services are stopped (the supervisor does
//! that), kill what is left, sync, unmount or remount read-only in reverse
//! order (the root, then the partition last), and reboot(2).

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use terra_layout::partition::RUNTIME_MOUNT;

use super::mountinfo::{self, MountInfo};

/// How the machine ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
    Halt,
}

/// What everything left gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Mounts that stay: the kernel's own filesystems (nothing to flush, and
/// /proc is read below) and what holds the partition's mount point.
const KEEP: &[&str] = &["/proc", "/sys", "/dev", "/run", "/run/terra"];

/// One step of the unmount plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Unmount; if busy, remount read-only.
    Unmount(String),
    /// Remount read-only (the root cannot be unmounted).
    ReadOnly(String),
}

/// The unmount plan for `mounts` (mountinfo order): everything but the kept
/// ones in reverse order, then the root read-only, then the partition
/// read-only.
pub fn plan(mounts: &[MountInfo], partition: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = mounts
        .iter()
        .rev()
        .filter(|m| m.target != "/" && m.target != partition && !KEEP.contains(&m.target.as_str()))
        .map(|m| Step::Unmount(m.target.clone()))
        .collect();
    // A target mounted twice (a mount over a mount) needs one step per mount,
    // which the list above already has, top-most first.
    if mounts.iter().any(|m| m.target == "/") {
        steps.push(Step::ReadOnly("/".to_string()));
    }
    // The partition cannot be unmounted (the root overlay keeps its upper
    // dir), and unmounting this one mount point would leave its superblock
    // alive and dirty: remount it read-only, which flushes the whole
    // filesystem and marks it clean.
    if mounts.iter().any(|m| m.target == partition) {
        steps.push(Step::ReadOnly(partition.to_string()));
    }
    steps
}

/// Shuts down and never returns.
pub fn shutdown(action: Action) -> ! {
    log::info!("shutting down: {action:?}");
    kill_everything();
    nix::unistd::sync();
    unmount_all();
    nix::unistd::sync();
    let mode = match action {
        Action::PowerOff => RebootMode::RB_POWER_OFF,
        Action::Reboot => RebootMode::RB_AUTOBOOT,
        Action::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    log::info!(
        "{}",
        match action {
            Action::PowerOff => "powering off",
            Action::Reboot => "rebooting",
            Action::Halt => "halting",
        }
    );
    let Err(e) = reboot(mode);
    log::error!("reboot({mode:?}): {e}; the system is stopped, turn it off by hand");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// SIGTERM to every process but PID 1 (kill(2) with pid -1), a grace period
/// reaping them, then SIGKILL and reap until none is left.
fn kill_everything() {
    for (sig, wait) in [
        (Signal::SIGTERM, KILL_GRACE),
        (Signal::SIGKILL, Duration::from_secs(10)),
    ] {
        match kill(Pid::from_raw(-1), sig) {
            Err(Errno::ESRCH) => return, // nobody left
            Err(e) => log::error!("kill(-1, {sig}): {e}"),
            Ok(()) => log::info!("sent {sig} to all processes"),
        }
        if reap_all(wait) {
            return;
        }
    }
    log::warn!("some processes did not end after SIGKILL");
}

/// Reaps until no child is left (true) or `limit` passed (false).
fn reap_all(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log::error!("waitpid: {e}");
                return false;
            }
        }
    }
}

fn unmount_all() {
    let mounts = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => mountinfo::parse(&text),
        Err(e) => {
            log::error!("reading /proc/self/mountinfo: {e}; only the root and the partition");
            vec![
                MountInfo {
                    id: 0,
                    parent: 0,
                    target: "/".into(),
                    fstype: String::new(),
                    source: String::new(),
                    options: String::new(),
                },
                MountInfo {
                    id: 0,
                    parent: 0,
                    target: RUNTIME_MOUNT.into(),
                    fstype: String::new(),
                    source: String::new(),
                    options: String::new(),
                },
            ]
        }
    };
    for step in plan(&mounts, RUNTIME_MOUNT) {
        match step {
            Step::Unmount(target) => match umount2(target.as_str(), MntFlags::empty()) {
                Ok(()) => log::debug!("umount {target}"),
                Err(e) => {
                    log::debug!("umount {target}: {e}; remounting read-only");
                    read_only(&target);
                }
            },
            Step::ReadOnly(target) => read_only(&target),
        }
    }
}

/// `mount -o remount,ro TARGET`: the filesystem is flushed and marked clean
/// (for ext4: the journal is committed, so no replay at the next mount).
fn read_only(target: &str) {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    // EBUSY: a file is still open for writing; its process is dying (a
    // SIGKILLed process closes its files on the way out). Try a few times.
    for attempt in 1..=5 {
        match mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            Ok(()) => return log::info!("mount -o remount,ro {target}"),
            Err(Errno::EBUSY) if attempt < 5 => {
                nix::unistd::sync();
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return log::error!("mount -o remount,ro {target}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmounts_in_reverse_then_the_root_then_the_partition() {
        let mounts = mountinfo::parse(
            "\
1 0 0:1 / / rw - overlay overlay rw
2 1 0:2 / /proc rw - proc proc rw
3 1 0:3 / /run rw - tmpfs tmpfs rw
4 3 8:1 / /run/terra/partition rw - ext4 /dev/vda rw
5 1 8:1 /vlc /var/lib/containerd rw - ext4 /dev/vda rw
6 1 0:4 / /tmp rw - tmpfs tmpfs rw
7 5 0:5 / /var/lib/containerd/x/rootfs rw - overlay overlay rw
",
        );
        assert_eq!(
            plan(&mounts, RUNTIME_MOUNT),
            vec![
                Step::Unmount("/var/lib/containerd/x/rootfs".into()),
                Step::Unmount("/tmp".into()),
                Step::Unmount("/var/lib/containerd".into()),
                Step::ReadOnly("/".into()),
                Step::ReadOnly(RUNTIME_MOUNT.into()),
            ]
        );
    }
}
