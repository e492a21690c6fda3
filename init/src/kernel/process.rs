//! The values stage 2's calls through [`super::Kernel`] take and return:
//! process ids, how a process ended, what a signal is aimed at. Small own
//! types, so the recording fake and the supervisor's tests stay simple.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::PathBuf;

pub use nix::sys::signal::Signal;

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(pub i32);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(Signal),
}

impl Exit {
    /// A non-zero status or a signal.
    pub fn failed(self) -> bool {
        self != Exit::Exited(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Exited(code) => write!(f, "exited with status {code}"),
            Exit::Signaled(sig) => write!(f, "was killed by signal {sig}"),
        }
    }
}

/// One answer of [`super::Kernel::reap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child ended and is collected.
    Child(Pid, Exit),
    /// Children are left, none has ended.
    Running,
    /// No child is left at all.
    NoChildren,
}

/// Whom [`super::Kernel::kill`] signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Process(Pid),
    /// The process group led by this process.
    Group(Pid),
    /// Every process but PID 1 (kill(2) with pid -1).
    All,
}

/// How the machine ends (reboot(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reboot,
    Halt,
}

/// A signal read by [`super::Kernel::wait_signals`], with its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: Signal,
    pub from: i32,
}

/// A program to start as a service: its own process group, stdin from
/// /dev/null, stdout and stderr into one pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawn {
    /// argv[0] is the program's path.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited from PID 1).
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

/// A started service.
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    /// The read end of its output pipe (`None` from the fake).
    pub output: Option<File>,
}
