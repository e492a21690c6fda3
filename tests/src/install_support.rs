//! What the `terra install` tests (tests/tests/install*.rs) share beyond the
//! image layers and the terra runner of their own `install_support` module:
//! intact images, the partition directory, reading back what an install
//! left, and killing terra at a crash point. Everything here takes the terra
//! binary or the parsed record as an argument, so it does not depend on that
//! test-side module.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use terra_layout::Metadata;

use crate::ocilayout::{Breakage, Layer, Layout, Made};

/// Adds image `tag` made of `layers` to `layout` with its blobs, manifest
/// and config as made: no [`Breakage`], which only the tests of broken blobs
/// ask for.
pub fn add_intact(layout: &mut Layout, tag: &str, layers: &[Layer]) -> Made {
    layout
        .add_image(Some(tag), layers, &Breakage::default())
        .unwrap()
}

/// Creates the empty directory `part` in `tmp`: the partition that
/// `terra --root` installs into.
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

/// Runs `terra` with `args` and TERRA_CRASH_AT=`point`, and kills it (-9)
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
