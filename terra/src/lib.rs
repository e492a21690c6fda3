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
//! - [`unpack`]: one layer tar into a directory, safely.
//! - [`snapshot`]: the snapshot store (one unpacked layer each).
//! - [`install`]: the orchestrator; the version record last.
//! - [`cmd`]: the command line.

pub mod cmd;
pub mod content;
pub mod digest;
pub mod dockercfg;
pub mod hooks;
pub mod image;
pub mod install;
pub mod logger;
pub mod lowers;
pub mod menu;
pub mod pax;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod source;
pub mod target;
pub mod targuard;
pub mod tarmeta;
pub mod unpack;
