//! OCI image layouts built by the tests: layers from tar entries (so hostile
//! tars can be crafted byte by byte), images, multi-platform indexes, and
//! ways to break them (wrong digest, missing blob, truncated layer, …).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// `len` bytes that do not compress (xorshift64 from `seed`): layers whose
/// size on the wire is their size, for transfer, full-disk and crash tests.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = seed | 1;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    v
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A layer tar, entry by entry.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
            mtime: 1_700_000_000,
        }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Any entry, the name written as raw bytes (no checks: `../x`, `/etc`).
    pub fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
    ) -> &mut Self {
        let mut h = self.header(kind, mode, data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_cksum();
        self.b.append(&h, data).expect("append to a Vec");
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name, tar::EntryType::Directory, mode, b"", None)
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, mode, data, None)
    }

    /// A file with owner and PAX xattrs (`security.capability`, `user.*`).
    pub fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        if !xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .expect("pax");
        }
        let mut h = self.header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_path(name).expect("path");
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Symlink, 0o777, b"", Some(target))
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Link, 0o644, b"", Some(target))
    }

    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = self.header(tar::EntryType::Char, 0o600, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_path(name).expect("path");
        h.set_cksum();
        self.b.append(&h, &b""[..]).expect("append");
        self
    }

    /// `.wh.NAME` in `dir`.
    pub fn whiteout(&mut self, dir: &str, name: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh.{name}"), b"", 0o644)
    }

    /// `.wh..wh..opq` in `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish the tar")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

/// A layer ready to go into an image.
#[derive(Debug, Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub compress: Compress,
}

impl Layer {
    pub fn gzip(tar: Vec<u8>) -> Self {
        Self {
            tar,
            compress: Compress::Gzip,
        }
    }
    pub fn zstd(tar: Vec<u8>) -> Self {
        Self {
            tar,
            compress: Compress::Zstd,
        }
    }
    pub fn plain(tar: Vec<u8>) -> Self {
        Self {
            tar,
            compress: Compress::None,
        }
    }

    fn blob(&self) -> Result<(Vec<u8>, &'static str)> {
        use std::io::Write;
        Ok(match self.compress {
            Compress::None => (self.tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Compress::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&self.tar)?;
                (e.finish()?, "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            Compress::Zstd => (
                zstd::encode_all(&self.tar[..], 3)?,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        })
    }
}

/// Ways to break an image on purpose.
#[derive(Debug, Clone, Default)]
pub struct Breakage {
    /// The config's diff_id of this layer is wrong.
    pub wrong_diff_id: Option<usize>,
    /// The manifest's digest of this layer is wrong.
    pub wrong_layer_digest: Option<usize>,
    /// This layer's blob is not in the layout.
    pub missing_layer: Option<usize>,
    /// This layer's blob is cut short (the descriptor keeps the full size).
    pub truncated_layer: Option<usize>,
    /// This layer gets another media type.
    pub media_type: Option<(usize, String)>,
}

/// An OCI image layout directory.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<Value>,
}

/// What `add_image` made.
#[derive(Debug, Clone)]
pub struct Made {
    pub manifest: Value,
    pub manifest_digest: String,
    pub manifest_size: usize,
    pub diff_ids: Vec<String>,
    pub layer_digests: Vec<String>,
}

impl Layout {
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let l = Self {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        };
        l.write_index()?;
        Ok(l)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    pub fn add_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        fs::write(self.blob_path(&digest), bytes)?;
        Ok(digest)
    }

    /// Adds an image (base layer first); tags it in index.json when `tag`.
    pub fn add_image(
        &mut self,
        tag: Option<&str>,
        layers: &[Layer],
        br: &Breakage,
    ) -> Result<Made> {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layer_digests = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let (blob, mut media) = l.blob()?;
            let mut digest = self.add_blob(&blob)?;
            let mut diff = format!("sha256:{}", sha256_hex(&l.tar));
            if br.wrong_diff_id == Some(i) {
                diff = format!("sha256:{}", sha256_hex(b"not this layer"));
            }
            if br.missing_layer == Some(i) {
                fs::remove_file(self.blob_path(&digest))?;
            }
            if br.truncated_layer == Some(i) {
                fs::write(self.blob_path(&digest), &blob[..blob.len() / 2])?;
            }
            if br.wrong_layer_digest == Some(i) {
                // The blob is stored under the wrong name, as a lying source would.
                let wrong = format!("sha256:{}", sha256_hex(b"another blob"));
                fs::rename(self.blob_path(&digest), self.blob_path(&wrong))?;
                digest = wrong;
            }
            let other;
            if let Some((j, t)) = &br.media_type {
                if *j == i {
                    other = t.clone();
                    media = Box::leak(other.into_boxed_str());
                }
            }
            descs.push(json!({"mediaType": media, "digest": digest, "size": blob.len()}));
            diff_ids.push(diff);
            layer_digests.push(digest);
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": []
        });
        let config_bytes = serde_json::to_vec(&config)?;
        let config_digest = self.add_blob(&config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": descs,
        });
        let bytes = serde_json::to_vec(&manifest)?;
        let manifest_digest = self.add_blob(&bytes)?;
        if let Some(tag) = tag {
            self.tag(tag, OCI_MANIFEST, &manifest_digest, bytes.len(), None)?;
        }
        Ok(Made {
            manifest,
            manifest_digest,
            manifest_size: bytes.len(),
            diff_ids,
            layer_digests,
        })
    }

    /// Adds an index over images, one per `(os/arch, image)`, tagged `tag`.
    pub fn add_index(&mut self, tag: &str, images: &[(&str, &Made)]) -> Result<String> {
        let manifests: Vec<Value> = images
            .iter()
            .map(|(platform, m)| {
                let (os, arch) = platform.split_once('/').unwrap_or(("linux", platform));
                json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": m.manifest_digest,
                    "size": m.manifest_size,
                    "platform": {"os": os, "architecture": arch}
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let bytes = serde_json::to_vec(&index)?;
        let digest = self.add_blob(&bytes)?;
        self.tag(tag, OCI_INDEX, &digest, bytes.len(), None)?;
        Ok(digest)
    }

    fn tag(
        &mut self,
        tag: &str,
        media: &str,
        digest: &str,
        size: usize,
        _p: Option<&str>,
    ) -> Result<()> {
        self.index
            .retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != tag);
        self.index.push(json!({
            "mediaType": media,
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }));
        self.write_index()
    }

    fn write_index(&self) -> Result<()> {
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index)?,
        )
        .with_context(|| format!("writing {}", self.dir.display()))
    }

    /// `oci:DIR:TAG`
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }
}
