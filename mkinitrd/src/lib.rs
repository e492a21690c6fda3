//! `mkinitrd`: builds Terra's initramfs.
//!
//! The pieces, in the order a build uses them:
//! - [`kmod`]: depmod's index files (pure parsers) and module resolution,
//!   dependencies first, with a reason for every module;
//! - [`image`]: from a [`image::Spec`] to the archive's records (init,
//!   device nodes, modules, load order, busybox, extra files);
//! - [`archive`]: the records and the reproducible newc writer (and reader);
//! - [`compress`]: zstd/gzip for the image, xz/zstd/gzip for modules;
//! - [`output`]: the atomic write; [`list`]: `--list`.
//!
//! The initramfs layout is the contract with terra-init (see the README).

pub mod archive;
pub mod compress;
pub mod elf;
pub mod image;
pub mod kmod;
pub mod list;
pub mod output;
