//! Processes on the real kernel: signals to send and to receive, the one
//! reaper, and starting services.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as kill2, killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::kernel::{Exit, Pid, Reaped, Received, Spawn, Spawned, Target};

/// The signalfd of PID 1. Signal masks and pending signals belong to the
/// process, so one per process is the honest shape; set once by
/// [`block_signals`].
static SIGNALS: OnceLock<SignalFd> = OnceLock::new();

fn nix_pid(p: Pid) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(p.0)
}

pub fn kill(to: Target, sig: Signal) -> io::Result<()> {
    let done = match to {
        Target::Process(p) => kill2(nix_pid(p), sig),
        Target::Group(p) => killpg(nix_pid(p), sig),
        Target::All => kill2(nix::unistd::Pid::from_raw(-1), sig),
    };
    Ok(done?)
}

pub fn reap() -> io::Result<Reaped> {
    loop {
        let status = match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(s) => s,
            Err(Errno::ECHILD) => return Ok(Reaped::NoChildren),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        return Ok(match status {
            WaitStatus::StillAlive => Reaped::Running,
            WaitStatus::Exited(pid, code) => Reaped::Child(Pid(pid.as_raw()), Exit::Exited(code)),
            WaitStatus::Signaled(pid, sig, _) => {
                Reaped::Child(Pid(pid.as_raw()), Exit::Signaled(sig))
            }
            // Stopped and continued children are only reported with
            // WUNTRACED / WCONTINUED, which are not asked for: ask again.
            _ => continue,
        });
    }
}

/// Starts `cmd` in its own process group, stdin from /dev/null, stdout and
/// stderr into one pipe whose read end is returned.
pub fn spawn(cmd: &Spawn) -> io::Result<Spawned> {
    let (program, args) = cmd
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
    // std's pipe is close-on-exec on both ends; the child gets the write end
    // as its stdout and stderr only.
    let (read, write) = io::pipe()?;
    let write2 = write.try_clone()?;
    let child = {
        let mut c = Command::new(program);
        c.args(args)
            .env_clear()
            .envs(&cmd.env)
            .current_dir(&cmd.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .process_group(0);
        crate::sys::clean_signal_mask(&mut c);
        c.spawn()?
        // `c` is dropped here, closing our copies of the pipe's write end,
        // so the reader sees EOF when the service (and its children) end.
    };
    // The Child handle is dropped without waiting: the reaper collects it.
    let pid = Pid(child.id() as i32);
    drop(child);
    let output = std::fs::File::from(std::os::fd::OwnedFd::from(read));
    Ok(Spawned {
        pid,
        output: Some(output),
    })
}

/// Blocks `signals` (so none is lost, and so the kernel queues them for
/// PID 1 even without a handler: signal(7), a blocked signal is never
/// discarded as ignored) and opens the signalfd they are read from.
/// Threads started later inherit the mask; services get a clean one
/// ([`crate::sys::clean_signal_mask`]).
pub fn block_signals(signals: &[Signal]) -> io::Result<()> {
    let mut mask = SigSet::empty();
    for s in signals {
        mask.add(*s);
    }
    mask.thread_block()?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    // A second call keeps the first signalfd, which reads the same signals.
    let _ = SIGNALS.set(fd);
    Ok(())
}

/// Polls the signalfd up to `timeout`, then reads all that arrived. Without
/// a signalfd (blocking failed) it sleeps a little and reports SIGCHLD, so
/// that reaping goes on.
pub fn wait_signals(timeout: Duration) -> io::Result<Vec<Received>> {
    let Some(fd) = SIGNALS.get() else {
        std::thread::sleep(timeout.min(Duration::from_millis(100)));
        return Ok(vec![Received {
            signal: Signal::SIGCHLD,
            from: 0,
        }]);
    };
    let ms = timeout.as_millis().min(60_000) as u16;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) | Err(Errno::EINTR) => return Ok(Vec::new()),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    let mut out = Vec::new();
    loop {
        match fd.read_signal() {
            Ok(Some(info)) => {
                if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                    out.push(Received {
                        signal,
                        from: info.ssi_pid as i32,
                    });
                }
            }
            Ok(None) => return Ok(out),
            Err(e) if out.is_empty() => return Err(e.into()),
            // Keep what was read: a shutdown signal must not be lost to a
            // later read error.
            Err(e) => {
                log::error!("reading the signalfd: {e}");
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn spawns_a_service_forwards_its_output_and_reaps_its_exit() {
        let cmd = Spawn {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo hello; exit 3".into()],
            env: Default::default(),
            cwd: "/".into(),
        };
        let s = spawn(&cmd).unwrap();
        let mut out = String::new();
        s.output.unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello\n");
        match waitpid(nix_pid(s.pid), None).unwrap() {
            WaitStatus::Exited(p, 3) => assert_eq!(p.as_raw(), s.pid.0),
            other => panic!("{other:?}"),
        }
    }

    /// PID 1 blocks the signals it reads from its signalfd; a service must
    /// not inherit that mask (dropbear, blocked SIGCHLD, never saw its
    /// session's shell end, and SIGTERM at shutdown went unseen). In this
    /// dynamically linked test binary std already clears the mask, so this
    /// passes even without `sys::clear_signal_mask_in_child`; the static
    /// PID 1 under QEMU did not, and `tests/tests/access.rs` (ssh sessions
    /// that never ended) is the test that failed before the fix.
    #[test]
    fn a_service_starts_with_no_signal_blocked() {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGTERM);
        mask.thread_block().unwrap();
        let cmd = Spawn {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "grep SigBlk /proc/self/status".into(),
            ],
            env: Default::default(),
            cwd: "/".into(),
        };
        let s = spawn(&cmd).unwrap();
        let mut out = String::new();
        s.output.unwrap().read_to_string(&mut out).unwrap();
        mask.thread_unblock().unwrap();
        let _ = waitpid(nix_pid(s.pid), None);
        assert_eq!(
            out.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{out}"
        );
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let cmd = Spawn {
            argv: vec!["/nonexistent/bin/x".into()],
            env: Default::default(),
            cwd: "/".into(),
        };
        let err = spawn(&cmd).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
