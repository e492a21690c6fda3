//! `terra`: installs OS versions (OCI images) onto a Terra partition and
//! manages them: list, default, remove, gc, unpack, poweroff, reboot.
//!
//! The on-disk contract (paths, boot records) comes from `terra-layout`;
//! this library fetches, verifies and unpacks images into that layout. The
//! `terra` binary is [`cmd::main`]. Modules, each using only those above it:
//!
//! - leaves: [`digest`] (the `Digest` type), [`hooks`] (crash points),
//!   [`progress`], [`targuard`], [`logger`], [`dockercfg`], [`menu`],
//!   [`target`]; then [`reference`] (image references).
//! - [`source`]: the `Source` trait and OCI layouts; [`registry`] the
//!   registry client.
//! - [`content`]: the content store (verified blobs, resumable ingest).
//! - [`image`]: resolving a reference to manifest, config and layers.
//! - [`unpack`]: one layer tar into a directory, safely; its parts
//!   [`pax`] (pax records), [`tarmeta`] (header fields, metadata on disk)
//!   and [`lowers`] (paths through symlinks of lower layers).
//! - [`snapshot`]: the snapshot store (one unpacked layer each).
//! - [`install`]: the orchestrator; the version record last.
//! - [`metrics`]: Terra's figures for the node exporter (`terra metrics`).
//! - [`cmd`]: the command line.

// The layer unpacker's parts (docs/layers.md), used by `unpack` and
// `snapshot` only.
pub mod lowers;
pub mod pax;
pub mod tarmeta;

pub mod bootdisk;
pub mod cmd;
pub mod content;
pub mod digest;
pub mod dockercfg;
pub mod hooks;
pub mod image;
pub mod install;
pub mod logger;
pub mod menu;
pub mod metrics;
pub mod mounts;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod source;
pub mod target;
pub mod targuard;
pub mod timesync;
pub mod unpack;
pub mod watchdog;
