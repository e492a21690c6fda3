//! Terra's integration-test support: the tools the QEMU tests need
//! ([`tools`]), test partitions made from plain directories ([`partition`]),
//! disk images ([`disk`]), initramfs images ([`initramfs`]), the probe that
//! the test versions hand off to ([`probe`]), boot helpers ([`boot`]) and
//! what the benchmarks print ([`stats`]).

pub mod boot;
pub mod bootdisk;
pub mod buildah;
pub mod disk;
pub mod grubdisk;
pub mod initramfs;
pub mod install_support;
pub mod kernel;
pub mod live;
pub mod ocilayout;
pub mod osimage;
pub mod partition;
pub mod probe;
pub mod registry;
pub mod services;
pub mod stats;
pub mod tools;
pub mod treediff;
