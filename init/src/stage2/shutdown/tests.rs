//! The shutdown order, with the recording fake.

use std::time::Instant;

use super::*;
use crate::kernel::fake::Fake;
use crate::kernel::{Kernel, Pid};
use terra_layout::partition::RUNTIME_MOUNT;

const MOUNTINFO: &str = "\
1 0 0:1 / / rw - overlay overlay rw
2 1 0:2 / /proc rw - proc proc rw
3 1 0:3 / /run rw - tmpfs tmpfs rw
4 3 8:1 / /run/terra/partition rw - ext4 /dev/vda rw
5 1 8:1 /vlc /var/lib/containerd rw - ext4 /dev/vda rw
6 1 0:4 / /tmp rw - tmpfs tmpfs rw
7 5 0:5 / /var/lib/containerd/x/rootfs rw - overlay overlay rw
";

#[test]
fn unmounts_in_reverse_then_the_root_then_the_partition() {
    let mounts = mountinfo::parse(MOUNTINFO);
    assert_eq!(
        plan(&mounts, &Paths::default()),
        vec![
            Step::Unmount("/var/lib/containerd/x/rootfs".into()),
            Step::Unmount("/tmp".into()),
            Step::Unmount("/var/lib/containerd".into()),
            Step::ReadOnly("/".into()),
            Step::ReadOnly(RUNTIME_MOUNT.into()),
        ]
    );
}

fn env_with_mountinfo<'k>(k: &'k Fake, dir: &Path) -> Env<'k> {
    let paths = Paths {
        mountinfo: dir.join("mountinfo"),
        ..Paths::default()
    };
    std::fs::write(&paths.mountinfo, MOUNTINFO).unwrap();
    Env::new(paths, k, Instant::now())
}

#[test]
fn kills_the_rest_syncs_unmounts_in_reverse_and_powers_off_last() {
    let dir = tempfile::tempdir().unwrap();
    // /tmp is busy: it is remounted read-only instead.
    let k = Fake::failing(&["umount /tmp"]);
    k.adopt(Pid(300));
    k.adopt(Pid(301));
    let env = env_with_mountinfo(&k, dir.path());
    let err = power_down(&env, PowerAction::PowerOff);
    assert_eq!(err.to_string(), "fake reboot returns");
    assert_eq!(
        k.calls(),
        [
            "kill -SIGTERM -1",
            "sync",
            "umount /var/lib/containerd/x/rootfs",
            "umount /tmp",
            "mount -o remount,ro /tmp",
            "umount /var/lib/containerd",
            "mount -o remount,ro /",
            "mount -o remount,ro /run/terra/partition",
            "sync",
            "reboot PowerOff",
        ]
    );
    assert!(k.alive().is_empty());
}

#[test]
fn what_ignores_sigterm_gets_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut k = Fake::default();
    k.stubborn.insert(Pid(300));
    k.adopt(Pid(300));
    let env = env_with_mountinfo(&k, dir.path());
    power_down(&env, PowerAction::Reboot);
    let calls = k.calls();
    assert_eq!(calls[..3], ["kill -SIGTERM -1", "kill -SIGKILL -1", "sync"]);
    assert_eq!(calls.last().unwrap(), "reboot Reboot");
    // The grace period passed on the fake clock, not on the test's.
    assert!(k.elapsed() >= KILL_GRACE, "{:?}", k.elapsed());
    assert!(k.now() >= k.epoch + KILL_GRACE);
}

#[test]
fn with_nothing_left_to_kill_it_goes_straight_to_the_disks() {
    let dir = tempfile::tempdir().unwrap();
    let k = Fake::default();
    let env = env_with_mountinfo(&k, dir.path());
    power_down(&env, PowerAction::Halt);
    let calls = k.calls();
    assert_eq!(calls[..2], ["kill -SIGTERM -1", "sync"]);
    assert_eq!(calls.last().unwrap(), "reboot Halt");
}

#[test]
fn without_mountinfo_the_root_and_the_partition_are_still_made_read_only() {
    let k = Fake::default();
    let paths = Paths {
        mountinfo: "/nonexistent/mountinfo".into(),
        ..Paths::default()
    };
    let env = Env::new(paths, &k, Instant::now());
    power_down(&env, PowerAction::PowerOff);
    assert_eq!(
        k.calls()[2..],
        [
            "mount -o remount,ro /",
            "mount -o remount,ro /run/terra/partition",
            "sync",
            "reboot PowerOff",
        ]
    );
}

/// The kernel log of the boot is saved on the partition before it is
/// remounted read-only, for `terra logs`.
#[test]
fn the_boot_log_is_saved_on_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("partition");
    std::fs::create_dir_all(part.join("ov")).unwrap();
    terra_layout::Metadata::default()
        .store(&Partition::new(&part).metadata())
        .unwrap();
    let mut k = Fake::default();
    k.kmsg = "[    2.000000] terra: health gate: not healthy\n".into();
    let mut env = env_with_mountinfo(&k, dir.path());
    env.paths.partition = part.clone();
    power_down(&env, PowerAction::Reboot);
    let p = Partition::new(&part);
    assert_eq!(
        terra_layout::bootlog::list(&p).unwrap(),
        ["boot-000001.log"]
    );
    let saved = std::fs::read_to_string(part.join("log/boot-000001.log")).unwrap();
    assert_eq!(saved, k.kmsg);
}
