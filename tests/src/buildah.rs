//! buildah on the build machine, for the image-builder tests
//! (tests/tests/buildah.rs): a private store per test (`--root`,
//! `--runroot`, the `vfs` driver, which needs no overlay support from the
//! host), `chroot` isolation (no runtime or network set-up: the images'
//! RUN steps only touch files).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One buildah store in a directory.
pub struct Buildah {
    store: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Result<Self> {
        if crate::tools::which(Path::new("buildah")).is_none() {
            bail!("buildah not found: install it with scripts/setup (Debian package buildah)");
        }
        Ok(Self {
            store: dir.to_path_buf(),
        })
    }

    /// Runs `buildah ARGS` on this store; its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("buildah")
            .arg("--root")
            .arg(self.store.join("root"))
            .arg("--runroot")
            .arg(self.store.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("BUILDAH_ISOLATION", "chroot")
            .output()
            .context("running buildah")?;
        if !out.status.success() {
            bail!(
                "buildah {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `buildah bud -t TAG CONTEXT` (plain HTTP to registries on loopback).
    pub fn build(&self, context: &Path, tag: &str) -> Result<String> {
        let ctx = context.display().to_string();
        self.run(&["bud", "--tls-verify=false", "-t", tag, &ctx])
    }

    /// `buildah push IMAGE DEST` (e.g. `oci:DIR:TAG`, `docker://HOST/REPO:TAG`).
    pub fn push(&self, image: &str, dest: &str) -> Result<String> {
        self.run(&["push", "--tls-verify=false", image, dest])
    }
}

/// The diff_ids of the image tagged `tag` in the OCI layout `dir`, bottom first.
pub fn diff_ids(dir: &Path, tag: &str) -> Result<Vec<String>> {
    let read = |digest: &str| -> Result<serde_json::Value> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let path = dir.join("blobs/sha256").join(hex);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json"))?)?;
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .with_context(|| format!("no tag {tag} in {}/index.json", dir.display()))?;
    let manifest = read(entry["digest"].as_str().unwrap_or_default())?;
    let config = read(manifest["config"]["digest"].as_str().unwrap_or_default())?;
    Ok(config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect())
}
