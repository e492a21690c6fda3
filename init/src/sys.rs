//! The only `unsafe` in terra-init: preparing the rescue shell's process
//! between fork and exec.

#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// A command that runs in its own session with the console (its stdin) as
/// controlling terminal, so the shell has job control and Ctrl-C works.
pub fn console_command(path: &Path) -> Command {
    let mut cmd = Command::new(path);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: it calls setsid(2) and
    // ioctl(2) only, allocates nothing and touches no locks. Their failures
    // are harmless (the shell then runs without job control), so the return
    // codes are deliberately ignored.
    unsafe {
        cmd.pre_exec(|| {
            nix::libc::setsid();
            nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 1);
            Ok(())
        });
    }
    cmd
}
