//! The one seam between terra-init and the kernel, for both stages.
//!
//! Every call that changes the system (mount, mkdir, mknod, chroot, exec,
//! finit_module, kill, waitpid, reboot, ...) goes through [`Kernel`], passed
//! explicitly. The real implementation ([`real::Real`]) calls the kernel
//! through `nix` and `std`; the recording fake (`fake::Fake`, tests only)
//! writes each call down as a shell line, so the order of mounts in switch
//! root, the overlay options, stage 2's shutdown order and the supervisor's
//! restarts are unit-tested without root. Time (`now`, `sleep`) is on the
//! seam too, so the fake can step it and back-off is tested without waiting.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use nix::errno::Errno;
pub use nix::mount::MsFlags;

mod process;
pub mod real;

pub use process::{Exit, Pid, PowerAction, Reaped, Received, Signal, Spawn, Spawned, Target};

#[cfg(test)]
pub mod fake;

/// One mount(2) call, printable as its shell equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: PathBuf,
    /// `None` for bind and move mounts.
    pub fstype: Option<String>,
    pub flags: MsFlags,
    /// Filesystem-specific options (`mode=0755`, `lowerdir=...`).
    pub data: Option<String>,
}

impl Mount {
    pub fn new(source: &str, target: impl Into<PathBuf>, fstype: &str) -> Self {
        Self {
            source: source.to_string(),
            target: target.into(),
            fstype: Some(fstype.to_string()),
            flags: MsFlags::empty(),
            data: None,
        }
    }

    pub fn bind(source: impl AsRef<Path>, target: impl Into<PathBuf>) -> Self {
        Self {
            source: source.as_ref().display().to_string(),
            target: target.into(),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        }
    }

    pub fn flags(mut self, flags: MsFlags) -> Self {
        self.flags |= flags;
        self
    }

    pub fn data(mut self, data: impl Into<String>) -> Self {
        let data = data.into();
        self.data = (!data.is_empty()).then_some(data);
        self
    }

    /// The options as `mount -o` would take them: flags first, then data.
    pub fn options(&self) -> String {
        let mut opts: Vec<String> = flag_names(self.flags)
            .into_iter()
            .map(String::from)
            .collect();
        opts.extend(self.data.clone());
        opts.join(",")
    }

    /// `mount -t TYPE -o OPTS SOURCE TARGET`, as a person would type it.
    pub fn to_shell(&self) -> String {
        let mut s = String::from("mount");
        if let Some(t) = &self.fstype {
            s.push_str(" -t ");
            s.push_str(t);
        }
        let opts = self.options();
        if !opts.is_empty() {
            s.push_str(" -o ");
            s.push_str(&opts);
        }
        s.push_str(&format!(" {} {}", self.source, self.target.display()));
        s
    }
}

/// The flags a mount line can carry, with their `mount -o` names.
const FLAG_NAMES: [(MsFlags, &str); 10] = [
    (MsFlags::MS_RDONLY, "ro"),
    (MsFlags::MS_NOSUID, "nosuid"),
    (MsFlags::MS_NODEV, "nodev"),
    (MsFlags::MS_NOEXEC, "noexec"),
    (MsFlags::MS_NOATIME, "noatime"),
    (MsFlags::MS_RELATIME, "relatime"),
    (MsFlags::MS_REMOUNT, "remount"),
    (MsFlags::MS_BIND, "bind"),
    (MsFlags::MS_REC, "rec"),
    (MsFlags::MS_MOVE, "move"),
];

fn flag_names(flags: MsFlags) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect()
}

/// Splits `mount -o` style options into flags and filesystem data
/// (`ro,nosuid,size=64m` => `MS_RDONLY|MS_NOSUID`, `size=64m`).
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "defaults" | "rw" | "auto" | "noauto" | "nofail" => {}
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            name => match FLAG_NAMES.iter().find(|(_, n)| *n == name) {
                Some((f, _)) => flags |= *f,
                None => data.push(o.as_str()),
            },
        }
    }
    (flags, data.join(","))
}

/// A device node kind for [`Kernel::mknod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Block,
    Char,
}

/// What [`Kernel::remove_tree`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub files: u64,
    /// Directories left alone because another filesystem is mounted there.
    pub skipped_mounts: u64,
    /// Entries that could not be deleted.
    pub failed: u64,
}

/// The errno of an error from [`Kernel`], if it has one.
/// One `/dev/kmsg` record (`PRIO,SEQ,MICROS,FLAGS;message`, then
/// continuation lines) as a `dmesg` line: `[   12.345678] message`.
/// `None` for what is not a record. Pure.
pub fn kmsg_line(record: &str) -> Option<String> {
    let (head, body) = record.split_once(';')?;
    let micros: u64 = head.split(',').nth(2)?.parse().ok()?;
    let message = body.lines().next().unwrap_or("");
    Some(format!(
        "[{:5}.{:06}] {message}",
        micros / 1_000_000,
        micros % 1_000_000
    ))
}

pub fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

/// The system calls terra-init makes. Errors are `io::Error` (errno kept).
/// `Sync`, so that stage 2's background threads may share it.
pub trait Kernel: Sync {
    fn mount(&self, m: &Mount) -> io::Result<()>;
    /// Lazy unmount (`umount -l`): detaches the mount and everything under it.
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    fn mknod(&self, path: &Path, kind: Node, major: u64, minor: u64, mode: u32) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// `mount --move FROM TO`.
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn chroot(&self, path: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Replaces this process; returns only on failure.
    fn exec(&self, path: &str, args: &[String]) -> io::Error;
    /// Loads a kernel module from a file, with its parameters.
    fn finit_module(&self, path: &Path, params: &str) -> io::Result<()>;
    fn pid(&self) -> u32;
    /// `st_dev` of a path (which filesystem it is on).
    fn device_of(&self, path: &Path) -> io::Result<u64>;
    /// `f_type` of statfs(2): the filesystem's magic number.
    fn fs_magic(&self, path: &Path) -> io::Result<u64>;
    /// Deletes everything under `root` that lives on the filesystem `dev`,
    /// never crossing into another mount.
    fn remove_tree(&self, root: &Path, dev: u64) -> io::Result<Removed>;

    // Stage 2: the running system.

    /// umount(2) without flags.
    fn umount(&self, target: &Path) -> io::Result<()>;
    /// `mount -o remount,ro TARGET`: flushes the filesystem and marks it clean.
    fn remount_read_only(&self, target: &Path) -> io::Result<()>;
    /// sync(2).
    fn sync(&self);
    /// Ends the machine; returns only on failure.
    fn reboot(&self, how: PowerAction) -> io::Error;
    /// Whether ctrl-alt-del reboots at once (true) or sends SIGINT to PID 1.
    fn set_ctrl_alt_del(&self, reboots: bool) -> io::Result<()>;
    fn kill(&self, to: Target, sig: Signal) -> io::Result<()>;
    /// The one reaper: collects one ended child, if any (waitpid(-1, WNOHANG)).
    fn reap(&self) -> io::Result<Reaped>;
    /// Starts a service. Through the seam (not `std::process` in stage 2),
    /// so the supervisor's starts and restarts are tested with the fake.
    fn spawn(&self, cmd: &Spawn) -> io::Result<Spawned>;
    /// Whether a unix socket accepts a connection (a service's ready check).
    fn connects(&self, socket: &Path) -> bool;
    /// Whether a TCP address accepts a connection (a service's ready check).
    fn connects_tcp(&self, addr: std::net::SocketAddr) -> bool;
    /// Replaces the file at `path` with `data` (write a temporary file, then
    /// rename): stage 2's records under `/run/terra` for other programs.
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// The kernel log as text, one `[seconds] message` line a record: every
    /// record `kmsg` (`/dev/kmsg`) still holds, read without waiting.
    fn kernel_log(&self, kmsg: &Path) -> io::Result<String>;
    /// Whether `path` exists, as itself (a symlink is not followed: in the
    /// new root an absolute link points into that root, not ours).
    fn exists(&self, path: &Path) -> bool;
    fn set_hostname(&self, name: &str) -> io::Result<()>;
    /// `ip link set NAME up`.
    fn link_up(&self, name: &str) -> io::Result<()>;
    /// Blocks `signals` and makes them readable by [`Kernel::wait_signals`].
    fn block_signals(&self, signals: &[Signal]) -> io::Result<()>;
    /// Waits up to `timeout` for blocked signals; empty on timeout.
    fn wait_signals(&self, timeout: Duration) -> io::Result<Vec<Received>>;
    /// The monotonic clock.
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
    /// The kernel's uptime (CLOCK_BOOTTIME, the clock of /proc/uptime).
    fn uptime(&self) -> Duration;

    /// A directory is a mount point if its filesystem differs from its
    /// parent's (good enough for the fresh mounts of stage 1; bind mounts of
    /// the same filesystem are not detected, which only makes a retry
    /// mount again).
    fn is_mountpoint(&self, path: &Path) -> bool {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match (self.device_of(path), self.device_of(parent)) {
            (Ok(a), Ok(b)) => a != b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_mounts_as_shell_lines() {
        let m = Mount::new("proc", "/proc", "proc")
            .flags(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        assert_eq!(
            m.to_shell(),
            "mount -t proc -o nosuid,nodev,noexec proc /proc"
        );
        let b = Mount::bind("/a", "/b");
        assert_eq!(b.to_shell(), "mount -o bind /a /b");
        let t = Mount::new("tmpfs", "/run", "tmpfs").data("mode=0755");
        assert_eq!(t.to_shell(), "mount -t tmpfs -o mode=0755 tmpfs /run");
    }

    #[test]
    fn kmsg_records_become_dmesg_lines() {
        assert_eq!(
            kmsg_line("6,339,5140900,-;terra: booting version v1 (default)\n").as_deref(),
            Some("[    5.140900] terra: booting version v1 (default)")
        );
        assert_eq!(
            kmsg_line("4,1,12,-;x\n SUBSYSTEM=acpi\n").as_deref(),
            Some("[    0.000012] x")
        );
        assert_eq!(kmsg_line("garbage"), None);
    }

    #[test]
    fn splits_options_into_flags_and_data() {
        let opts: Vec<String> = ["defaults", "ro", "nosuid", "size=64m", "mode=0755", "rbind"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC
        );
        assert_eq!(data, "size=64m,mode=0755");
    }
}
