//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The modules directory of the installed Debian cloud kernel
/// (`linux-image-cloud-amd64`, installed by scripts/setup). Missing: the
/// test fails and says how to get it (a skipped test would pass unseen).
pub fn cloud_kernel() -> Option<(String, PathBuf)> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/lib/modules")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.to_string_lossy().ends_with("-cloud-amd64") && p.join("modules.dep").is_file()
    });
    found.sort();
    match found.pop() {
        Some(dir) => Some((dir.file_name()?.to_string_lossy().into_owned(), dir)),
        None => missing("linux-image-cloud-amd64 (/lib/modules/*-cloud-amd64)"),
    }
}

/// A host tool the test needs (cpio, zstd, ...), with the same rule.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .or_else(|| missing(name))
}

fn missing<T>(what: &str) -> Option<T> {
    panic!("{what} is missing (run scripts/setup)");
}

/// The mkinitrd binary built for these tests.
pub fn mkinitrd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mkinitrd"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Runs and returns (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running mkinitrd");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A stand-in for the init: any small file will do for archive tests (the
/// real static terra-init comes from scripts/build).
pub fn fake_init(dir: &Path) -> PathBuf {
    let path = dir.join("init");
    std::fs::write(&path, b"#!/bin/sh\necho not the real init\n").unwrap();
    path
}

/// A tiny made-up modules directory: `blk` needs `ring` (xz-compressed on
/// disk) and softdeps on `helper` (zstd); `ext4` is built in.
pub fn fake_modules(dir: &Path) -> PathBuf {
    use std::io::Read;
    let m = dir.join("modules/9.9.9-test");
    std::fs::create_dir_all(m.join("kernel/drivers")).unwrap();
    std::fs::create_dir_all(m.join("kernel/lib")).unwrap();
    std::fs::write(m.join("kernel/drivers/blk.ko"), b"\x7fELF blk module").unwrap();
    let mut xz = Vec::new();
    xz2::read::XzEncoder::new(&b"\x7fELF ring module"[..], 6)
        .read_to_end(&mut xz)
        .unwrap();
    std::fs::write(m.join("kernel/lib/ring.ko.xz"), xz).unwrap();
    std::fs::write(
        m.join("kernel/lib/helper.ko.zst"),
        zstd::bulk::compress(b"\x7fELF helper module", 3).unwrap(),
    )
    .unwrap();
    std::fs::write(
        m.join("modules.dep"),
        "kernel/drivers/blk.ko: kernel/lib/ring.ko.xz\nkernel/lib/ring.ko.xz:\nkernel/lib/helper.ko.zst:\n",
    )
    .unwrap();
    std::fs::write(m.join("modules.softdep"), "softdep blk pre: helper\n").unwrap();
    std::fs::write(m.join("modules.alias"), "alias virtio:d00000002v* blk\n").unwrap();
    std::fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    m
}

/// sha256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
