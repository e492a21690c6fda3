//! The contract between `terra install` and Terra's stage 1.
//!
//! Everything both sides must agree on lives here and only here: where things
//! are on the partition ([`partition`]), the boot records in `ov/metadata.db`
//! ([`record`]), the extra mounts of `odisk` ([`odisk`]), the kernel command line
//! ([`cmdline`]) and the crash-safe way to replace a file ([`atomic`]).
//!
//! It is pure domain code: no OCI, no mounting. Stage 1 links it into a static
//! binary, so it stays small (serde and thiserror only).

// Stage 1 links this crate into PID 1, which must never panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod atomic;
pub mod cmdline;
pub mod odisk;
pub mod partition;
pub mod probe;
pub mod record;

pub use cmdline::BootParams;
pub use partition::Partition;
pub use record::{Choice, Handoff, Metadata, VersionRecord};
