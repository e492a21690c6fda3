//! The mounts a container host needs and an OS image may not set up itself,
//! as a table. Each entry is idempotent (skipped when something is already
//! mounted there) and logged as its shell equivalent.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::mountinfo;

/// One mount of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
    /// A required mount that fails is logged as an error; an optional one as
    /// a warning (the kernel may lack it). Neither stops the boot.
    pub required: bool,
    /// Mounted by a thread of its own while containerd starts: nothing
    /// needs it sooner, and it is slow.
    pub background: bool,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// What containerd and runc expect to find (the set systemd mounts too).
pub const CONTAINER_HOST: &[Entry] = &[
    // runc (cgroup v2 mode) and containerd's cgroup metrics.
    Entry {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC.union(MsFlags::MS_RELATIME),
        data: "nsdelegate",
        required: true,
        background: false,
    },
    // Terminals for `ctr run -t` and shells; a private instance whose ptmx
    // everybody may open (/dev/ptmx is made a link to it below).
    Entry {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
        required: true,
        background: false,
    },
    // POSIX shared memory.
    Entry {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
        required: true,
        background: false,
    },
    // POSIX message queues.
    Entry {
        source: "mqueue",
        target: "/dev/mqueue",
        fstype: "mqueue",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
        background: false,
    },
    // LSM policy files (AppArmor profiles, IMA).
    Entry {
        source: "securityfs",
        target: "/sys/kernel/security",
        fstype: "securityfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
        background: false,
    },
    // Pinned eBPF objects (CNI plugins such as Cilium).
    // Mounting it makes the kernel run modprobe for bpf_preload (130 ms
    // under TCG, more than everything else here): in the background.
    Entry {
        source: "bpf",
        target: "/sys/fs/bpf",
        fstype: "bpf",
        flags: NOSUID_NODEV_NOEXEC,
        data: "mode=700",
        required: false,
        background: true,
    },
];

/// The shell equivalent of an entry, for the log.
pub fn shell_line(e: &Entry) -> String {
    let mut opts: Vec<&str> = Vec::new();
    for (flag, name) in [
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_RDONLY, "ro"),
    ] {
        if e.flags.contains(flag) {
            opts.push(name);
        }
    }
    if !e.data.is_empty() {
        opts.push(e.data);
    }
    let o = if opts.is_empty() {
        String::new()
    } else {
        format!(" -o {}", opts.join(","))
    };
    format!("mount -t {}{} {} {}", e.fstype, o, e.source, e.target)
}

/// Mounts the entries whose `background` is `background`; logs and goes on
/// when one fails.
pub fn mount_all(table: &[Entry], background: bool) {
    let mounted = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => mountinfo::parse(&text),
        Err(e) => {
            log::warn!("reading /proc/self/mountinfo: {e}; mounting everything");
            Vec::new()
        }
    };
    for e in table.iter().filter(|e| e.background == background) {
        if mounted.iter().any(|m| m.target == e.target) {
            log::debug!("{} is already mounted", e.target);
            continue;
        }
        let start = std::time::Instant::now();
        match mount_one(e) {
            Ok(()) => log::debug!(
                "{} ({:.1} ms)",
                shell_line(e),
                start.elapsed().as_secs_f64() * 1000.0
            ),
            Err(err) if e.required => log::error!("{}: {err}", shell_line(e)),
            Err(err) => log::warn!("{}: {err} (optional, going on)", shell_line(e)),
        }
    }
    if !background {
        ptmx_link(Path::new("/dev"));
    }
}

/// Mounts the `background` entries from a thread of its own (inline if no
/// thread can be made).
pub fn in_background(table: &'static [Entry]) {
    let spawned = std::thread::Builder::new()
        .name("mounts".into())
        .spawn(move || mount_all(table, true));
    if let Err(e) = spawned {
        log::warn!("no thread for the background mounts ({e}); mounting them now");
        mount_all(table, true);
    }
}

fn mount_one(e: &Entry) -> Result<(), String> {
    std::fs::create_dir_all(e.target).map_err(|err| format!("mkdir {}: {err}", e.target))?;
    let data = if e.data.is_empty() {
        None
    } else {
        Some(e.data)
    };
    mount(Some(e.source), e.target, Some(e.fstype), e.flags, data).map_err(|err| err.to_string())
}

/// Makes `/dev/ptmx` a link to `pts/ptmx`, so that it opens the private
/// devpts instance mounted above (devtmpfs makes it a character device of
/// the initial instance).
fn ptmx_link(dev: &Path) {
    let ptmx = dev.join("ptmx");
    if let Ok(target) = std::fs::read_link(&ptmx) {
        if target == Path::new("pts/ptmx") {
            return;
        }
    }
    if let Err(e) = std::fs::remove_file(&ptmx) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("rm {}: {e}", ptmx.display());
            return;
        }
    }
    match std::os::unix::fs::symlink("pts/ptmx", &ptmx) {
        Ok(()) => log::debug!("ln -s pts/ptmx {}", ptmx.display()),
        Err(e) => log::warn!("ln -s pts/ptmx {}: {e}", ptmx.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_read_like_mount_commands() {
        assert_eq!(
            shell_line(&CONTAINER_HOST[0]),
            "mount -t cgroup2 -o nosuid,nodev,noexec,relatime,nsdelegate cgroup2 /sys/fs/cgroup"
        );
        assert_eq!(
            shell_line(&CONTAINER_HOST[1]),
            "mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts"
        );
    }

    #[test]
    fn the_table_names_each_target_once_and_absolutely() {
        for (i, e) in CONTAINER_HOST.iter().enumerate() {
            assert!(e.target.starts_with('/'), "{}", e.target);
            assert!(CONTAINER_HOST[i + 1..].iter().all(|o| o.target != e.target));
            // Nothing required may be late: containerd starts meanwhile.
            assert!(!(e.background && e.required), "{}", e.target);
        }
    }

    #[test]
    fn ptmx_becomes_a_link_and_stays_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ptmx"), b"").unwrap();
        ptmx_link(dir.path());
        assert_eq!(
            std::fs::read_link(dir.path().join("ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
        ptmx_link(dir.path());
        assert_eq!(
            std::fs::read_link(dir.path().join("ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
    }
}
