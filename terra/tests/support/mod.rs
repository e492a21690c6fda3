//! What the in-process install tests share: an in-memory [`Source`] that
//! records what it was asked for, small real tar+gzip layers built in
//! memory, images made of them, and a partition in a temp dir.

#![allow(dead_code)] // each test file uses its own part of this

use std::collections::HashMap;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use oci_spec::image::MediaType;
use serde_json::json;
use terra::digest::Digest;
use terra::hooks::{Hooks, NoHooks};
use terra::image::Platform;
use terra::install::Request;
use terra::source::{Root, Source};
use terra_layout::{Handoff, Metadata, Partition};

/// A layer: the uncompressed tar (its digest is the diff_id) and the gzip
/// blob a registry serves.
#[derive(Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub blob: Vec<u8>,
}

impl Layer {
    /// A layer holding `files` (path, contents), owned by the running user
    /// so that the unpack's chown works without root.
    pub fn of(files: &[(&str, &[u8])]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        let (uid, gid) = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        let mut dirs: Vec<String> = Vec::new();
        for (path, data) in files {
            // Parents first, as real layers list them.
            let mut parent = String::new();
            for comp in Path::new(path).parent().into_iter().flat_map(Path::iter) {
                parent = format!("{parent}{}/", comp.to_string_lossy());
                if !dirs.contains(&parent) {
                    let mut h = header(tar::EntryType::Directory, 0o755, uid, gid, 0);
                    b.append_data(&mut h, &parent, std::io::empty()).unwrap();
                    dirs.push(parent.clone());
                }
            }
            let mut h = header(tar::EntryType::Regular, 0o644, uid, gid, data.len());
            b.append_data(&mut h, path, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        Layer {
            tar,
            blob: gz.finish().unwrap(),
        }
    }

    /// A layer big enough to be stopped mid-download (over 64 KiB of
    /// incompressible data) and mid-unpack (over 50 entries).
    pub fn big(seed: u32) -> Layer {
        let mut x = 0x9e37_79b9 ^ seed;
        let noise: Vec<u8> = (0..(160 << 10))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let names: Vec<(String, Vec<u8>)> = (0..80)
            .map(|i| (format!("data/f{i}"), format!("{seed}-{i}").into_bytes()))
            .collect();
        let mut files: Vec<(&str, &[u8])> = vec![("data/noise", &noise)];
        files.extend(names.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
        Layer::of(&files)
    }

    pub fn digest(&self) -> Digest {
        Digest::of(&self.blob)
    }

    pub fn diff_id(&self) -> Digest {
        Digest::of(&self.tar)
    }
}

fn header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(1_700_000_000);
    h.set_size(size as u64);
    h
}

/// An image: its manifest, config and layer blobs, by digest.
pub struct Image {
    pub manifest: Vec<u8>,
    pub blobs: HashMap<Digest, Vec<u8>>,
    pub layers: Vec<Layer>,
}

impl Image {
    /// An OCI image of `layers` (base first), with the diff_ids they have.
    pub fn of(layers: &[Layer]) -> Image {
        let diff_ids: Vec<Digest> = layers.iter().map(Layer::diff_id).collect();
        Image::with_diff_ids(layers, &diff_ids)
    }

    /// An image whose config claims `diff_ids` (a wrong one for the
    /// mismatch tests).
    pub fn with_diff_ids(layers: &[Layer], diff_ids: &[Digest]) -> Image {
        let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ids},
        }))
        .unwrap();
        let descs: Vec<_> = layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": l.digest().to_string(),
                    "size": l.blob.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::of(&config).to_string(),
                "size": config.len(),
            },
            "layers": descs,
        }))
        .unwrap();
        let mut blobs = HashMap::new();
        blobs.insert(Digest::of(&config), config);
        for l in layers {
            blobs.insert(l.digest(), l.blob.clone());
        }
        Image {
            manifest,
            blobs,
            layers: layers.to_vec(),
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// An index listing this image for `platform` and, for each of
    /// `others`, a manifest this source does not hold.
    pub fn index(&self, platform: &str, others: &[&str]) -> Vec<u8> {
        let entry = |p: &str, digest: String, size: usize| {
            let mut parts = p.split('/');
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": {"os": parts.next(), "architecture": parts.next()},
            })
        };
        let mut entries = vec![entry(
            platform,
            self.digest().to_string(),
            self.manifest.len(),
        )];
        for (i, p) in others.iter().enumerate() {
            let fake = Digest::of(format!("other {i}").as_bytes());
            entries.insert(0, entry(p, fake.to_string(), 10));
        }
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap()
    }
}

/// An in-memory registry of one image; records each blob request (digest,
/// offset) and can serve wrong bytes for a blob.
pub struct MemSource {
    image: Image,
    /// An index served as the root instead of the manifest.
    pub index: Option<Vec<u8>>,
    /// Served instead of the real blob.
    pub tampered: HashMap<Digest, Vec<u8>>,
    pub requests: Mutex<Vec<(Digest, u64)>>,
}

impl MemSource {
    pub fn new(image: Image) -> Self {
        Self {
            image,
            index: None,
            tampered: HashMap::new(),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The blob requests so far, for `digest`: the offsets asked for.
    pub fn asked(&self, digest: &Digest) -> Vec<u64> {
        let r = self.requests.lock().unwrap();
        r.iter()
            .filter(|(d, _)| d == digest)
            .map(|(_, o)| *o)
            .collect()
    }
}

impl Source for MemSource {
    fn root(&self) -> Result<Root> {
        if let Some(index) = &self.index {
            return Ok(Root {
                bytes: index.clone(),
                media_type: Some(MediaType::ImageIndex),
                expected_digest: None,
            });
        }
        Ok(Root {
            bytes: self.image.manifest.clone(),
            media_type: Some(MediaType::ImageManifest),
            expected_digest: Some(self.image.digest()),
        })
    }

    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        if digest == &self.image.digest() {
            return Ok(self.image.manifest.clone());
        }
        Err(anyhow!(
            "no manifest {digest} (this source holds one image)"
        ))
    }

    fn blob(&self, digest: &Digest, offset: u64) -> Result<(Box<dyn Read + Send + '_>, u64)> {
        self.requests.lock().unwrap().push((digest.clone(), offset));
        let bytes = self
            .tampered
            .get(digest)
            .or_else(|| self.image.blobs.get(digest))
            .ok_or_else(|| anyhow!("no blob {digest}"))?;
        let start = (offset as usize).min(bytes.len());
        Ok((Box::new(Cursor::new(bytes[start..].to_vec())), offset))
    }
}

/// A partition in a temp dir, laid out as `terra` makes it.
pub struct Part {
    _dir: tempfile::TempDir,
    pub part: Partition,
}

impl Part {
    pub fn new() -> Part {
        // On tmpfs when there is one: the install's syncfs(2) then costs
        // nothing, where on a disk it waits for everything else the machine
        // writes.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let part = Partition::new(dir.path());
        for d in [
            part.boot_dir(),
            part.blobs_dir(),
            part.ingest_dir(),
            part.snapshots_dir(),
            part.tmp_dir(),
        ] {
            fs::create_dir_all(d).unwrap();
        }
        Part { _dir: dir, part }
    }

    /// Installs `src` as version `name`, with `hooks`.
    pub fn install_with(&self, src: &MemSource, name: &str, hooks: Arc<dyn Hooks>) -> Result<()> {
        self.install_full(src, name, None, hooks)
    }

    /// Installs `src` as version `name`, activated with `tries` as
    /// `terra install --activate --tries N` does.
    pub fn install_activate(&self, src: &MemSource, name: &str, tries: u32) -> Result<()> {
        self.install_full(src, name, Some(tries), Arc::new(NoHooks))
    }

    fn install_full(
        &self,
        src: &MemSource,
        name: &str,
        activate: Option<u32>,
        hooks: Arc<dyn Hooks>,
    ) -> Result<()> {
        terra::install::install(
            &self.part,
            &Request {
                reference: format!("mem/{name}"),
                source: src,
                name: Some(name.to_string()),
                platform: Platform::default(),
                handoff: Handoff::Supervise,
                force: false,
                jobs: 1,
                activate,
                hooks,
            },
        )
    }

    pub fn install(&self, src: &MemSource, name: &str) -> Result<()> {
        self.install_with(src, name, Arc::new(NoHooks))
    }

    pub fn meta(&self) -> Metadata {
        Metadata::load(&self.part.metadata()).unwrap()
    }

    /// The metadata file as bytes (empty when there is none).
    pub fn meta_bytes(&self) -> Vec<u8> {
        fs::read(self.part.metadata()).unwrap_or_default()
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.part.blobs_dir().join(d.hex()).is_file()
    }

    pub fn ingest(&self) -> Vec<String> {
        names(&self.part.ingest_dir())
    }

    pub fn snapshots(&self) -> Vec<String> {
        names(&self.part.snapshots_dir())
            .into_iter()
            .filter(|n| n.starts_with("sha256-"))
            .collect()
    }

    pub fn unpacking(&self) -> Vec<String> {
        names(&self.part.tmp_dir())
            .into_iter()
            .filter(|n| n.starts_with("unpack-"))
            .collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.part.root().join(rel)
    }
}

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
