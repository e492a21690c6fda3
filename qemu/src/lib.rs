//! Booting Terra headless under QEMU.
//!
//! [`VmConfig`] says what to boot (a kernel, an initramfs, virtio disks, a
//! command line, `-icount`); [`Vm`] runs it with TCG, the serial console on a
//! pipe captured line by line ([`Console::wait_for`]), a QMP socket to hot-add
//! disks, and a timeout; a disk boot goes through SeaBIOS or OVMF ([`Firmware`]). [`Kernel::cloud`] finds Debian's cloud kernel that the
//! tests boot; [`floor`] makes the smallest possible initramfs (the benchmark's floor).

pub mod config;
pub mod console;
pub mod firmware;
pub mod floor;
pub mod kernel;
pub mod machine;
pub mod media;
pub mod outcome;
pub mod qmp;
pub mod vm;

pub use console::Console;
pub use firmware::Firmware;
pub use kernel::Kernel;
pub use media::Medium;
pub use vm::{Machine, Outcome, Vm, VmConfig};
