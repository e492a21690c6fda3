//! How a guest ended.

use std::process::ExitStatus;

/// How a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU exited by itself with success and the kernel did not panic:
    /// the guest powered off (or rebooted, which `-no-reboot` turns into an exit).
    PoweredOff,
    /// The console shows a kernel panic.
    Panicked,
    /// QEMU itself failed.
    QemuFailed(ExitStatus),
    /// Still running at the deadline; it was killed.
    TimedOut,
}

impl Outcome {
    /// The exit code of the `terra-qemu` binary for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::PoweredOff => 0,
            Outcome::Panicked => 1,
            Outcome::QemuFailed(_) => 3,
            Outcome::TimedOut => 124,
        }
    }
}
