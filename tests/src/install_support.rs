//! What the `terra install` tests (tests/tests/install*.rs) share: running
//! the terra binary, the image layers they install, intact images, the
//! partition directory, reading back what an install left, and killing terra
//! at a crash point.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use terra_layout::Metadata;

use crate::ocilayout::{Breakage, Layer, Layout, Made, Tar};

/// Adds image `tag` made of `layers` to `layout` with its blobs, manifest
/// and config as made: no [`Breakage`], which only the tests of broken blobs
/// ask for.
pub fn add_intact(layout: &mut Layout, tag: &str, layers: &[Layer]) -> Made {
    layout
        .add_image(Some(tag), layers, &Breakage::default())
        .unwrap()
}

/// Adds image `v1`: the base and mid layers under a top layer whose
/// hostname is `v1`.
pub fn add_v1(layout: &mut Layout) -> Made {
    add_intact(layout, "v1", &[base_layer(), mid_layer(), top_layer("v1")])
}

/// Adds image `v2`: `top` over the same base and mid layers as [`add_v1`],
/// so that a partition holding both shares them.
pub fn add_v2(layout: &mut Layout, top: Layer) -> Made {
    add_intact(layout, "v2", &[base_layer(), mid_layer(), top])
}

/// Creates the empty directory `part` in `tmp`: the partition that
/// `terra --root` installs into.
/// A 64 MiB image file with an empty ext4 filesystem labelled `label`: a
/// small partition for `--device` tests (and one a large layer fills).
pub fn mkfs(image: &Path, label: &str) {
    fs::File::create(image).unwrap().set_len(64 << 20).unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(image)
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext4 {}", image.display());
}

/// An OCI layout at `tmp/img` holding image `v1` ([`add_v1`]) and an empty
/// partition directory beside it ([`empty_partition`]).
pub fn v1_and_empty_partition(tmp: &Path) -> (Layout, PathBuf) {
    let mut layout = Layout::create(&tmp.join("img")).unwrap();
    add_v1(&mut layout);
    (layout, empty_partition(tmp))
}

pub fn empty_partition(tmp: &Path) -> PathBuf {
    let root = tmp.join("part");
    fs::create_dir(&root).unwrap();
    root
}

/// Where the content store of the partition at `root` keeps blob `digest`
/// (`sha256:…`).
pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    root.join("content/blobs/sha256").join(hex)
}

/// The arguments of `terra --root ROOT install REFERENCE EXTRA...`: an
/// install into a partition directory.
pub fn install_args<'a>(root: &'a str, reference: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    [&["--root", root, "install", reference][..], extra].concat()
}

/// The manifest digest recorded for `version`.
pub fn image_digest<'a>(m: &'a Metadata, version: &str) -> &'a str {
    &m.versions[version].image.as_ref().unwrap().digest
}

/// File `rel` of `version`'s top layer: what the top layer of the image
/// unpacked to.
pub fn top_layer_text(root: &Path, m: &Metadata, version: &str, rel: &str) -> String {
    fs::read_to_string(root.join(&m.versions[version].lowers[0]).join(rel)).unwrap()
}

/// Asserts that the index installed without `--platform` as `multi` got the
/// amd64 image, and the one installed with `--platform linux/arm64` as `arm`
/// got the arm64 image.
pub fn assert_platforms_picked(m: &Metadata, amd: &Made, arm: &Made) {
    assert_eq!(image_digest(m, "multi"), amd.manifest_digest);
    assert_eq!(image_digest(m, "arm"), arm.manifest_digest);
}

/// The names in `dir`, sorted; none when it does not exist (a crash can come
/// before terra makes it).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The unpack directories an install left in the partition's `tmp/`, which
/// must exist: terra makes it before anything else.
pub fn unpack_leftovers(root: &Path) -> Vec<String> {
    let tmp = root.join("tmp");
    assert!(tmp.is_dir(), "{} is missing", tmp.display());
    names(&tmp)
        .into_iter()
        .filter(|n| n.starts_with("unpack-"))
        .collect()
}

/// Runs `terra` (the crash-point build, [`terra_crash_bin`]) with `args`
/// and TERRA_CRASH_AT=`point`, and kills it (-9)
/// as soon as it says it got there; panics with what it said if it never
/// does.
pub fn kill_at(terra: &Path, point: &str, args: &[&str]) {
    let mut child = Command::new(terra)
        .args(args)
        .env("TERRA_CRASH_AT", point)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let hit = line.contains(&format!("crash point {point}"));
        seen.push(line);
        if hit {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
    }
    let st = child.wait().unwrap();
    panic!("terra never reached {point} ({st}):\n{}", seen.join("\n"));
}

/// `target/release/terra-crash` built by scripts/build (`TERRA_CRASH_BIN`
/// overrides): the terra command that stops at the crash point
/// `TERRA_CRASH_AT` names (the `crash-points` feature); `terra` itself
/// ignores that variable.
pub fn terra_crash_bin() -> PathBuf {
    let p = std::env::var_os("TERRA_CRASH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools::target_dir().join("release/terra-crash"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build first",
        p.display()
    );
    p
}

/// `target/release/terra` built by scripts/build (`TERRA_BIN` overrides).
pub fn terra_bin() -> PathBuf {
    let p = std::env::var_os("TERRA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools::target_dir().join("release/terra"));
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
