//! The contract between the pieces of Terra: `terra install`, `mkinitrd`,
//! the GRUB menu and stage 1.
//!
//! Everything two of them must agree on lives here and only here: where things
//! are on the partition ([`partition`]), the boot records in `ov/metadata.db`
//! ([`record`]) and the one order in which versions boot and are listed
//! ([`boot_order`]), boot counting ([`boot_state`]), the saved boot logs
//! ([`bootlog`]) and the partition's write lock ([`lock`]), the extra mounts of `odisk` ([`odisk`]), the kernel
//! command line ([`cmdline`]: its keys, its parser and its writer), the
//! initramfs's module list and directory skeleton ([`initramfs`]), and the
//! crash-safe way to replace a file ([`atomic`]).
//!
//! It is pure domain code: no OCI, no mounting. Stage 1 links it into a static
//! binary, so it stays small (serde, serde_json, thiserror, and rustix for
//! the lock). The
//! label probe that finds the partition ([`probe`]) is here too, because
//! both stage 1 and `terra --device` read it.

// Stage 1 links this crate into PID 1, which must never panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod atomic;
pub mod boot_order;
pub mod boot_state;
pub mod bootlog;
pub mod cmdline;
pub mod initramfs;
pub mod lock;
pub mod machine;
pub mod odisk;
pub mod partition;
pub mod probe;
pub mod record;

pub use boot_order::{Choice, Reason};
pub use boot_state::{Gate, Request, Status};
pub use cmdline::BootParams;
pub use initramfs::ModuleList;
pub use partition::Partition;
pub use record::{Handoff, Metadata, VersionRecord};
