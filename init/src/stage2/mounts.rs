//! The mounts a container host needs and an OS image may not set up itself,
//! as a table of stage 1's [`Entry`] type, printed by the same renderer.
//! Each entry is idempotent (skipped when something is already mounted
//! there) and logged as its shell equivalent.

use std::path::Path;
use std::thread::Scope;

use crate::early::{At, Entry, SAFE};
use crate::env::Env;
use crate::kernel::MsFlags;

use super::mountinfo;

/// A stage 2 entry (never fatal; see [`Entry::required`]).
const fn entry(
    source: &'static str,
    fstype: &'static str,
    at: At,
    sub: &'static str,
    flags: MsFlags,
    data: &'static str,
) -> Entry {
    Entry {
        source,
        fstype,
        at,
        sub,
        flags,
        data,
        required: true,
        background: false,
    }
}

/// What containerd and runc expect to find (the set systemd mounts too).
pub const CONTAINER_HOST: &[Entry] = &[
    // runc (cgroup v2 mode) and containerd's cgroup metrics.
    entry(
        "cgroup2",
        "cgroup2",
        At::Sys,
        "fs/cgroup",
        SAFE.union(MsFlags::MS_RELATIME),
        "nsdelegate",
    ),
    // Terminals for `ctr run -t` and shells; a private instance whose ptmx
    // everybody may open (/dev/ptmx is made a link to it below).
    entry(
        "devpts",
        "devpts",
        At::Dev,
        "pts",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    ),
    // POSIX shared memory.
    entry(
        "shm",
        "tmpfs",
        At::Dev,
        "shm",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        "mode=1777",
    ),
    // POSIX message queues.
    Entry {
        required: false,
        ..entry("mqueue", "mqueue", At::Dev, "mqueue", SAFE, "")
    },
    // LSM policy files (AppArmor profiles, IMA).
    Entry {
        required: false,
        ..entry(
            "securityfs",
            "securityfs",
            At::Sys,
            "kernel/security",
            SAFE,
            "",
        )
    },
    // Pinned eBPF objects (CNI plugins such as Cilium).
    // Mounting it makes the kernel run modprobe for bpf_preload (130 ms
    // under TCG, more than everything else here): in the background.
    Entry {
        required: false,
        background: true,
        ..entry("bpf", "bpf", At::Sys, "fs/bpf", SAFE, "mode=700")
    },
];

/// Mounts the entries whose `background` is `background`; logs and goes on
/// when one fails.
pub fn mount_all(env: &Env, table: &[Entry], background: bool) {
    let mounted = match std::fs::read_to_string(&env.paths.mountinfo) {
        Ok(text) => mountinfo::parse(&text),
        Err(e) => {
            log::warn!(
                "reading {}: {e}; mounting everything",
                env.paths.mountinfo.display()
            );
            Vec::new()
        }
    };
    for e in table.iter().filter(|e| e.background == background) {
        let target = e.target(&env.paths);
        if mounted.iter().any(|m| Path::new(&m.target) == target) {
            log::debug!("{} is already mounted", target.display());
            continue;
        }
        let m = e.mount(&env.paths);
        // Env::mount logs the line and its time with terra.debug.
        match env.mkdir(&target, 0o755).and_then(|()| env.mount(&m)) {
            Ok(()) => {}
            Err(err) if e.required => log::error!("{}: {err}", m.to_shell()),
            Err(err) => log::warn!("{}: {err} (optional, going on)", m.to_shell()),
        }
    }
    if !background {
        ptmx_link(&env.paths.dev);
    }
}

/// Mounts the `background` entries from a thread of its own (inline if no
/// thread can be made).
pub fn in_background<'s>(scope: &'s Scope<'s, '_>, env: &'s Env, table: &'static [Entry]) {
    // Env's mount plan is not shared between threads: the thread gets an
    // Env of its own on the same paths and kernel.
    let (paths, kernel, started) = (env.paths.clone(), env.kernel, env.started);
    let spawned = std::thread::Builder::new()
        .name("mounts".into())
        .spawn_scoped(scope, move || {
            mount_all(&Env::new(paths, kernel, started), table, true)
        });
    if let Err(e) = spawned {
        log::warn!("no thread for the background mounts ({e}); mounting them now");
        mount_all(env, table, true);
    }
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
    use crate::env::Paths;
    use crate::kernel::fake::Fake;
    use std::time::Instant;

    #[test]
    fn shell_lines_read_like_mount_commands() {
        let p = Paths::default();
        assert_eq!(
            CONTAINER_HOST[0].mount(&p).to_shell(),
            "mount -t cgroup2 -o nosuid,nodev,noexec,relatime,nsdelegate cgroup2 /sys/fs/cgroup"
        );
        assert_eq!(
            CONTAINER_HOST[1].mount(&p).to_shell(),
            "mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts"
        );
    }

    #[test]
    fn the_table_names_each_target_once() {
        let p = Paths::default();
        for (i, e) in CONTAINER_HOST.iter().enumerate() {
            assert!(!e.sub.is_empty() && !e.sub.starts_with('/'), "{}", e.sub);
            let t = e.target(&p);
            assert!(CONTAINER_HOST[i + 1..].iter().all(|o| o.target(&p) != t));
            // Nothing required may be late: containerd starts meanwhile.
            assert!(!(e.background && e.required), "{}", t.display());
        }
    }

    #[test]
    fn mounts_what_is_not_mounted_in_table_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let paths = Paths {
            sys: root.join("sys"),
            dev: root.join("dev"),
            mountinfo: root.join("mountinfo"),
            ..Paths::default()
        };
        std::fs::create_dir_all(&paths.dev).unwrap();
        let shm = paths.dev.join("shm");
        std::fs::write(
            &paths.mountinfo,
            format!("30 1 0:9 / {} rw - tmpfs shm rw\n", shm.display()),
        )
        .unwrap();
        let k = Fake::failing(&["mount -t mqueue"]);
        let env = Env::new(paths, &k, Instant::now());
        mount_all(&env, CONTAINER_HOST, false);
        let r = root.display();
        let mounts: Vec<String> = k
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("mount"))
            .collect();
        assert_eq!(
            mounts,
            [
                format!("mount -t cgroup2 -o nosuid,nodev,noexec,relatime,nsdelegate cgroup2 {r}/sys/fs/cgroup"),
                format!("mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts {r}/dev/pts"),
                format!("mount -t mqueue -o nosuid,nodev,noexec mqueue {r}/dev/mqueue"),
                format!("mount -t securityfs -o nosuid,nodev,noexec securityfs {r}/sys/kernel/security"),
            ]
        );
        // The failed optional mqueue is not in the plan; ptmx became a link.
        assert_eq!(env.plan.borrow().len(), 3);
        assert_eq!(
            std::fs::read_link(root.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
        mount_all(&env, CONTAINER_HOST, true);
        assert_eq!(
            k.calls().last().unwrap(),
            &format!("mount -t bpf -o nosuid,nodev,noexec,mode=700 bpf {r}/sys/fs/bpf")
        );
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
