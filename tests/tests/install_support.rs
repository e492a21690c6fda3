// Shared by the install*.rs test files (included with `mod`).
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use terra_tests::ocilayout::{Breakage, Layer, Layout, Made, Tar};

/// `target/release/terra` built by scripts/build (`TERRA_BIN` overrides).
pub fn terra_bin() -> PathBuf {
    let p = std::env::var_os("TERRA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| terra_tests::tools::target_dir().join("release/terra"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build first",
        p.display()
    );
    p
}

pub fn terra(args: &[&str]) -> Output {
    Command::new(terra_bin())
        .args(args)
        .env_remove("TERRA_INSECURE_REGISTRIES")
        .output()
        .expect("run terra")
}

/// Runs terra, asserts success, returns stderr+stdout.
pub fn ok(args: &[&str]) -> String {
    let out = terra(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "terra {args:?} failed:\n{text}");
    text
}

/// Runs terra, asserts failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = terra(args);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "terra {args:?} should fail:\n{text}");
    text
}

pub fn meta(root: &Path) -> terra_layout::Metadata {
    terra_layout::Metadata::load(&root.join("ov/metadata.db")).expect("metadata")
}

/// The base layer: a small tree with owners, modes, links and a device.
pub fn base_layer() -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/hostname", b"base\n", 0o644)
        .file("etc/os-release", b"ID=terra-test\n", 0o644)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o4755)
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .symlink("bin", "usr/bin")
        .dir("var", 0o755)
        .dir("var/cache", 0o755)
        .file("var/cache/old", b"stale", 0o600)
        .dir("opt", 0o755)
        .dir("opt/app", 0o755)
        .file("opt/app/a", b"a", 0o644)
        .file("opt/app/b", b"b", 0o644)
        .dir("dev", 0o755)
        .char_dev("dev/null", 1, 3)
        .file_with(
            "usr/bin/ping",
            b"ping",
            0o755,
            0,
            0,
            &[(
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            )],
        )
        .file_with("etc/owned", b"owned", 0o640, 1000, 1001, &[]);
    Layer::gzip(t.finish())
}

pub fn mid_layer() -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/hostname", b"mid\n", 0o644)
        .file("etc/mid", b"mid", 0o644);
    Layer::gzip(t.finish())
}

pub fn top_layer(hostname: &str) -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/hostname", format!("{hostname}\n").as_bytes(), 0o644);
    Layer::gzip(t.finish())
}

/// Files of a directory tree as "path mode uid:gid" lines plus symlink targets.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push(format!("{rel} {:o} {}:{}", m.mode(), m.uid(), m.gid()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Adds an index named `multi` with a linux/arm64 and a linux/amd64 image of
/// the same base, whose top layers name their platform in /etc/hostname.
/// Returns the (amd64, arm64) images.
pub fn add_two_platform_index(layout: &mut Layout) -> (Made, Made) {
    let amd = layout
        .add_image(
            None,
            &[base_layer(), top_layer("amd64")],
            &Breakage::default(),
        )
        .unwrap();
    let arm = layout
        .add_image(
            None,
            &[base_layer(), top_layer("arm64")],
            &Breakage::default(),
        )
        .unwrap();
    layout
        .add_index("multi", &[("linux/arm64", &arm), ("linux/amd64", &amd)])
        .unwrap();
    (amd, arm)
}
