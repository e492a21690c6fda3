//! [`Kernel`] on the real kernel, through `nix` and `std`. Stage 1's calls
//! are here; the rest live by theme: [`tree`] (freeing the initramfs),
//! [`process`] (signals, reaping, spawning), [`net`] (hostname, links).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::reboot::RebootMode;
use nix::sys::stat::{makedev, Mode, SFlag};

use super::{
    Kernel, Mount, Node, PowerAction, Reaped, Received, Removed, Signal, Spawn, Spawned, Target,
};

mod net;
mod process;
mod tree;

/// The running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Real;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

impl Kernel for Real {
    fn mount(&self, m: &Mount) -> io::Result<()> {
        nix::mount::mount(
            Some(m.source.as_str()),
            &m.target,
            m.fstype.as_deref(),
            m.flags,
            m.data.as_deref(),
        )?;
        Ok(())
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        Ok(umount2(target, MntFlags::MNT_DETACH)?)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn mknod(&self, path: &Path, kind: Node, major: u64, minor: u64, mode: u32) -> io::Result<()> {
        let kind = match kind {
            Node::Block => SFlag::S_IFBLK,
            Node::Char => SFlag::S_IFCHR,
        };
        let perm = Mode::from_bits_truncate(mode);
        Ok(nix::sys::stat::mknod(
            path,
            kind,
            perm,
            makedev(major, minor),
        )?)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
        Ok(())
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chroot(path)?)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(path)?)
    }

    fn exec(&self, path: &str, args: &[String]) -> io::Error {
        let run = || -> io::Result<()> {
            let path = cstring(path)?;
            let argv = args
                .iter()
                .map(|a| cstring(a))
                .collect::<io::Result<Vec<_>>>()?;
            nix::unistd::execv(&path, &argv)?;
            Ok(())
        };
        match run() {
            Err(e) => e,
            Ok(()) => io::Error::other("execv returned"),
        }
    }

    fn finit_module(&self, path: &Path, params: &str) -> io::Result<()> {
        let file = fs::File::open(path)?;
        let params = cstring(params)?;
        Ok(finit_module(&file, &params, ModuleInitFlags::empty())?)
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn device_of(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.dev())
    }

    fn fs_magic(&self, path: &Path) -> io::Result<u64> {
        // f_type is a signed word in glibc; the magic numbers are positive.
        Ok(nix::sys::statfs::statfs(path)?.filesystem_type().0 as u64)
    }

    fn remove_tree(&self, root: &Path, dev: u64) -> io::Result<Removed> {
        tree::remove_tree(root, dev)
    }

    fn umount(&self, target: &Path) -> io::Result<()> {
        Ok(umount2(target, MntFlags::empty())?)
    }

    fn remount_read_only(&self, target: &Path) -> io::Result<()> {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)?;
        Ok(())
    }

    fn sync(&self) {
        nix::unistd::sync();
    }

    fn reboot(&self, how: PowerAction) -> io::Error {
        let mode = match how {
            PowerAction::PowerOff => RebootMode::RB_POWER_OFF,
            PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
            PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
        };
        let Err(e) = nix::sys::reboot::reboot(mode);
        e.into()
    }

    fn set_ctrl_alt_del(&self, reboots: bool) -> io::Result<()> {
        Ok(nix::sys::reboot::set_cad_enabled(reboots)?)
    }

    fn kill(&self, to: Target, sig: Signal) -> io::Result<()> {
        process::kill(to, sig)
    }

    fn reap(&self) -> io::Result<Reaped> {
        process::reap()
    }

    fn spawn(&self, cmd: &Spawn) -> io::Result<Spawned> {
        process::spawn(cmd)
    }

    fn connects(&self, socket: &Path) -> bool {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    }

    fn connects_tcp(&self, addr: std::net::SocketAddr) -> bool {
        // A short timeout: a local listener answers at once, and the
        // supervisor's loop must not stall on a filtered address.
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        fs::write(&tmp, data)?;
        fs::rename(&tmp, path)
    }

    fn kernel_log(&self, kmsg: &Path) -> io::Result<String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(kmsg)?;
        let mut out = String::new();
        // One read returns one record; a record longer than this is cut.
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(line) = super::kmsg_line(&String::from_utf8_lossy(&buf[..n])) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                // Nothing more to read now: the end of the log.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EPIPE: records were overwritten while we read; go on.
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        Ok(nix::unistd::sethostname(name)?)
    }

    fn link_up(&self, name: &str) -> io::Result<()> {
        net::link_up(name)
    }

    fn block_signals(&self, signals: &[Signal]) -> io::Result<()> {
        process::block_signals(signals)
    }

    fn wait_signals(&self, timeout: Duration) -> io::Result<Vec<Received>> {
        process::wait_signals(timeout)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }

    fn uptime(&self) -> Duration {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(Duration::from)
            .unwrap_or_default()
    }
}
