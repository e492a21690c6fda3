//! Resolving a reference to one image: manifest (through an index for the
//! chosen platform), config and layers, every byte checked against a digest.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::content::Store;
use crate::digest::{hex_of, sha256_hex};
use crate::source::Source;

/// Manifests and configs are small; anything bigger is refused unread.
pub const MAX_MANIFEST: u64 = 8 << 20;

pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(t: &str) -> Result<Self> {
        Ok(match t {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
            other => bail!("unknown layer media type {other:?} (expected an OCI or Docker tar layer, plain, gzip or zstd)"),
        })
    }
}

/// A layer to fetch and unpack.
#[derive(Debug, Clone)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    pub compression: Compression,
    /// sha256 of the uncompressed tar, from the config.
    pub diff_id: String,
    /// The snapshot key.
    pub chain_id: String,
}

/// One image, resolved and its manifest and config verified and stored.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: String,
    pub config_digest: String,
    /// Base layer first (manifest order).
    pub layers: Vec<Layer>,
}

/// `os/arch[/variant]`, e.g. `linux/amd64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => bail!("platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"),
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

enum Kind {
    Index,
    Manifest,
}

fn kind_of(bytes: &[u8], media_type: Option<&str>) -> Result<Kind> {
    match media_type {
        Some(media::OCI_INDEX | media::DOCKER_LIST) => return Ok(Kind::Index),
        Some(media::OCI_MANIFEST | media::DOCKER_MANIFEST) => return Ok(Kind::Manifest),
        _ => {}
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).context("the manifest is not JSON")?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        bail!("Docker schema 1 manifests are not supported");
    }
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        match t {
            media::OCI_INDEX | media::DOCKER_LIST => return Ok(Kind::Index),
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => return Ok(Kind::Manifest),
            other => bail!("unknown manifest media type {other:?}"),
        }
    }
    if v.get("manifests").is_some() {
        Ok(Kind::Index)
    } else if v.get("layers").is_some() {
        Ok(Kind::Manifest)
    } else {
        bail!("neither an image manifest nor an index (media type {media_type:?})")
    }
}

fn check_bytes(bytes: &[u8], digest: &str, size: Option<u64>) -> Result<()> {
    let hex = hex_of(digest)?;
    if let Some(size) = size {
        if bytes.len() as u64 != size {
            bail!(
                "manifest {digest}: expected {size} bytes, got {}",
                bytes.len()
            );
        }
    }
    let got = sha256_hex(bytes);
    if got != hex {
        bail!("manifest {digest}: sha256 is sha256:{got}; expected {digest}");
    }
    Ok(())
}

/// Resolves, verifies and stores manifest and config; does not fetch layers.
pub fn resolve(src: &dyn Source, store: &Store, platform: &Platform) -> Result<Image> {
    let root = src.root()?;
    let digest = match &root.expected_digest {
        Some(d) => {
            check_bytes(&root.bytes, d, None)?;
            d.clone()
        }
        None => format!("sha256:{}", sha256_hex(&root.bytes)),
    };
    let (bytes, digest) = match kind_of(&root.bytes, root.media_type.as_deref())? {
        Kind::Manifest => (root.bytes, digest),
        Kind::Index => {
            let desc = choose(&root.bytes, platform)?;
            let d = desc.digest().to_string();
            let bytes = src.manifest(&d)?;
            check_bytes(&bytes, &d, Some(desc.size()))?;
            if let Kind::Index = kind_of(&bytes, Some(desc.media_type().as_ref()))? {
                bail!("nested image indexes are not supported ({d})");
            }
            (bytes, d)
        }
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing manifest {digest}"))?;
    let cfg = manifest.config();
    let config_digest = cfg.digest().to_string();
    if cfg.size() > MAX_MANIFEST {
        bail!("config {config_digest} is {} bytes: too large", cfg.size());
    }
    let bar = crate::progress::Progress::new().bar("config".into(), 0);
    store
        .fetch(src, &config_digest, cfg.size(), &bar)
        .with_context(|| format!("fetching the image config {config_digest}"))?;
    let config: ImageConfiguration = serde_json::from_slice(&store.read(&config_digest)?)
        .with_context(|| format!("parsing the image config {config_digest}"))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "the manifest lists {} layers but the config {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        );
    }
    if manifest.layers().is_empty() {
        bail!("the image has no layers");
    }
    for d in diff_ids {
        hex_of(d).with_context(|| "a diff_id in the config")?;
    }
    let chains = crate::digest::chain_ids(diff_ids);
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids.iter().zip(chains))
        .map(|(l, (diff_id, chain_id))| {
            Ok(Layer {
                digest: l.digest().to_string(),
                size: l.size(),
                compression: Compression::from_media_type(l.media_type().as_ref())
                    .with_context(|| format!("layer {}", l.digest()))?,
                diff_id: diff_id.clone(),
                chain_id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for l in &layers {
        hex_of(&l.digest)?;
    }
    store.put(&digest, &bytes)?;
    Ok(Image {
        manifest_digest: digest,
        config_digest,
        layers,
    })
}

/// The index entry for `platform`.
fn choose(bytes: &[u8], platform: &Platform) -> Result<Descriptor> {
    let index: ImageIndex = serde_json::from_slice(bytes).context("parsing the image index")?;
    let fits = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == platform.os
                && p.architecture().to_string() == platform.arch
                && (platform.variant.is_none() || p.variant() == &platform.variant)
        })
    };
    let found = index.manifests().iter().find(fits).cloned();
    found.ok_or_else(|| {
        let have: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| {
                let mut s = format!("{}/{}", p.os(), p.architecture());
                if let Some(v) = p.variant() {
                    s = format!("{s}/{v}");
                }
                s
            })
            .collect();
        anyhow!(
            "the index has no image for {platform} (it has: {})",
            have.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        let err = Compression::from_media_type("application/x-foo").unwrap_err();
        assert!(err.to_string().contains("unknown layer media type"));
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8")
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        assert!(Platform::parse("linux").is_err());
        assert_eq!(Platform::default().to_string(), "linux/amd64");
    }
}
