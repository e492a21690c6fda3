//! Resolving a reference to one image: manifest (through an index for the
//! chosen platform), config and layers, every byte checked against a digest.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};

use crate::content::Store;
use crate::digest::Digest;
use crate::source::{Source, MAX_MANIFEST};

/// The Docker media types oci-spec knows only as [`MediaType::Other`].
pub mod docker {
    pub const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(t: &MediaType) -> Result<Self> {
        Ok(match t {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Compression::None,
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                Compression::Gzip
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                Compression::Zstd
            }
            MediaType::Other(o) if o == docker::LAYER_GZIP || o == docker::FOREIGN_LAYER_GZIP => {
                Compression::Gzip
            }
            MediaType::Other(o) if o == docker::LAYER_ZSTD => Compression::Zstd,
            other => bail!("unknown layer media type {:?} (expected an OCI or Docker tar layer, plain, gzip or zstd)", other.to_string()),
        })
    }
}

/// A layer to fetch and unpack.
#[derive(Debug, Clone)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    /// sha256 of the uncompressed tar, from the config.
    pub diff_id: Digest,
    /// The snapshot key.
    pub chain_id: Digest,
}

/// One image, resolved and its manifest and config verified and stored.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    /// Base layer first (manifest order).
    pub layers: Vec<Layer>,
}

/// `os/arch[/variant]`, e.g. `linux/amd64`, in oci-spec's terms (which
/// also spell Go's names: `amd64`, `arm64`, `linux`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: Os,
    pub arch: Arch,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (os, arch, None),
            [os, arch, v] => (os, arch, Some(v.to_string())),
            _ => bail!("platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"),
        };
        if os.is_empty() || arch.is_empty() || variant.as_deref() == Some("") {
            bail!("platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64");
        }
        Ok(Self {
            os: Os::from(*os),
            arch: Arch::from(*arch),
            variant,
        })
    }

    /// Whether an index entry's platform is this one (any variant when we
    /// ask for none).
    fn fits(&self, p: &oci_spec::image::Platform) -> bool {
        p.os() == &self.os
            && p.architecture() == &self.arch
            && (self.variant.is_none() || p.variant() == &self.variant)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: Os::Linux,
            arch: Arch::Amd64,
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

/// What a media type says the bytes are, when it says.
fn kind_of_type(t: &MediaType) -> Option<Kind> {
    match t {
        MediaType::ImageIndex => Some(Kind::Index),
        MediaType::ImageManifest => Some(Kind::Manifest),
        MediaType::Other(o) if o == docker::LIST => Some(Kind::Index),
        MediaType::Other(o) if o == docker::MANIFEST => Some(Kind::Manifest),
        _ => None,
    }
}

fn kind_of(bytes: &[u8], media_type: Option<&MediaType>) -> Result<Kind> {
    if let Some(kind) = media_type.and_then(kind_of_type) {
        return Ok(kind);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).context("the manifest is not JSON")?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        bail!("Docker schema 1 manifests are not supported");
    }
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return kind_of_type(&MediaType::from(t))
            .ok_or_else(|| anyhow!("unknown manifest media type {t:?}"));
    }
    if v.get("manifests").is_some() {
        Ok(Kind::Index)
    } else if v.get("layers").is_some() {
        Ok(Kind::Manifest)
    } else {
        bail!(
            "neither an image manifest nor an index (media type {:?})",
            media_type.map(MediaType::to_string)
        )
    }
}

fn check_bytes(bytes: &[u8], digest: &Digest, size: Option<u64>) -> Result<()> {
    if let Some(size) = size {
        if bytes.len() as u64 != size {
            bail!(
                "manifest {digest}: expected {size} bytes, got {}",
                bytes.len()
            );
        }
    }
    let got = Digest::of(bytes);
    if &got != digest {
        bail!("manifest {digest}: sha256 is {got}; expected {digest}");
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
        None => Digest::of(&root.bytes),
    };
    let (bytes, digest) = match kind_of(&root.bytes, root.media_type.as_ref())? {
        Kind::Manifest => (root.bytes, digest),
        Kind::Index => {
            let desc = choose(&root.bytes, platform)?;
            let d = Digest::try_from(desc.digest()).context("a manifest in the index")?;
            let bytes = src.manifest(&d)?;
            check_bytes(&bytes, &d, Some(desc.size()))?;
            if let Kind::Index = kind_of(&bytes, Some(desc.media_type()))? {
                bail!("nested image indexes are not supported ({d})");
            }
            (bytes, d)
        }
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing manifest {digest}"))?;
    let cfg = manifest.config();
    let config_digest = Digest::try_from(cfg.digest()).context("the manifest's config")?;
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
    let diff_ids = diff_ids
        .iter()
        .map(|d| Digest::parse(d).context("a diff_id in the config"))
        .collect::<Result<Vec<_>>>()?;
    let chains = crate::digest::chain_ids(&diff_ids);
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids.into_iter().zip(chains))
        .map(|(l, (diff_id, chain_id))| {
            Ok(Layer {
                digest: Digest::try_from(l.digest())
                    .with_context(|| format!("layer {}", l.digest()))?,
                size: l.size(),
                compression: Compression::from_media_type(l.media_type())
                    .with_context(|| format!("layer {}", l.digest()))?,
                diff_id,
                chain_id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
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
    let fits = |d: &&Descriptor| d.platform().as_ref().is_some_and(|p| platform.fits(p));
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
            Compression::from_media_type(&MediaType::from(docker::LAYER_GZIP)).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_media_type(&MediaType::from(
                "application/vnd.oci.image.layer.v1.tar+zstd"
            ))
            .unwrap(),
            Compression::Zstd
        );
        let err = Compression::from_media_type(&MediaType::from("application/x-foo")).unwrap_err();
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
        assert!(Platform::parse("linux/").is_err());
        assert_eq!(Platform::parse("linux/arm64").unwrap().arch, Arch::ARM64);
        assert_eq!(Platform::default().to_string(), "linux/amd64");
    }
}
