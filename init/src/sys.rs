//! The only `unsafe` in terra-init, each block with its reason: preparing
//! the rescue shell's process between fork and exec, and the two interface
//! ioctls that bring a network link up (nix has no safe wrapper for them).
//! The workspace denies `unsafe_code`; each item here that needs it says so
//! on its own, so nothing else in this module can slip in unnoticed.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::libc;

/// A command that runs in its own session with the console (its stdin) as
/// controlling terminal, so the shell has job control and Ctrl-C works.
#[allow(unsafe_code)]
pub fn console_command(path: &Path) -> Command {
    let mut cmd = Command::new(path);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: it calls setsid(2) and
    // ioctl(2) only, allocates nothing and touches no locks. Their failures
    // are harmless (the shell then runs without job control), so the return
    // codes are deliberately ignored.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 1);
            Ok(())
        });
    }
    cmd
}

/// Unblocks every signal in the child between fork and exec. PID 1 blocks
/// the signals it reads from its signalfd; in the running system the
/// services inherited that mask (seen in /proc/PID/status under QEMU:
/// dropbear, with SIGCHLD blocked, never noticed its session's shell end,
/// and SIGTERM at shutdown went unseen), so the mask is cleared here rather
/// than trusted to std.
#[allow(unsafe_code)]
pub fn clear_signal_mask_in_child(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: sigemptyset(3) and
    // sigprocmask(2) are, and nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            if libc::sigemptyset(set.as_mut_ptr()) != 0
                || libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

nix::ioctl_read_bad!(get_flags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_write_ptr_bad!(set_flags, libc::SIOCSIFFLAGS, libc::ifreq);

/// Sets IFF_UP and IFF_RUNNING on interface `name`, through `sock` (an open
/// AF_INET datagram socket).
#[allow(unsafe_code)]
pub fn set_link_up(sock: RawFd, name: &str) -> io::Result<()> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is longer than IFNAMSIZ"),
        ));
    }
    // SAFETY: ifreq is plain old data (C struct of arrays and a union of
    // integers and plain structs); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name is shorter than the array (checked above): it stays
    // NUL-terminated by the zeroed tail.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `sock` is an open socket and `req` a valid, exclusively
    // borrowed ifreq naming the interface, as SIOCGIFFLAGS expects
    // (netdevice(7)); the kernel writes only into `req`.
    unsafe { get_flags(sock, &mut req) }?;
    // SAFETY: SIOCGIFFLAGS just filled in `ifru_flags`, so that member of
    // the union is the initialised one.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as for SIOCGIFFLAGS; SIOCSIFFLAGS only reads the name and the
    // flags from `req`.
    unsafe { set_flags(sock, &req) }?;
    Ok(())
}
