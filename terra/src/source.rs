//! Where an image comes from: a registry or an OCI image layout on disk.
//! Both answer the same three questions; everything they return is verified
//! by the caller against a digest before use.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageIndex};

use oci_spec::image::MediaType;

use crate::digest::Digest;
use crate::reference::LayoutRef;

/// Manifests and configs are small; anything bigger is refused unread.
pub const MAX_MANIFEST: u64 = 8 << 20;

/// The manifest (or index) a reference names, not yet verified.
pub struct Root {
    pub bytes: Vec<u8>,
    /// From the registry's Content-Type or the layout's descriptor.
    pub media_type: Option<MediaType>,
    /// The digest the bytes must have, when the reference pins one.
    pub expected_digest: Option<Digest>,
}

/// A place images come from. Implementations need not verify anything: the
/// content store checks every byte against its digest.
pub trait Source: Sync {
    /// The manifest or index the reference names.
    fn root(&self) -> Result<Root>;
    /// A manifest by digest (a child of an index). Returns the bytes.
    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// A blob, starting at `offset` if the source can (returns the offset it
    /// actually starts at: 0 when it cannot resume).
    fn blob(&self, digest: &Digest, offset: u64) -> Result<(Box<dyn Read + Send + '_>, u64)>;
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
pub struct Layout {
    dir: PathBuf,
    tag: Option<String>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

impl Layout {
    pub fn open(r: &LayoutRef) -> Result<Self> {
        let marker = r.path.join("oci-layout");
        if !marker.is_file() {
            bail!(
                "{} is not an OCI image layout (no oci-layout file)",
                r.path.display()
            );
        }
        Ok(Self {
            dir: r.path.clone(),
            tag: r.tag.clone(),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }
}

impl Source for Layout {
    fn root(&self) -> Result<Root> {
        let path = self.dir.join("index.json");
        let index =
            ImageIndex::from_file(&path).with_context(|| format!("reading {}", path.display()))?;
        let chosen = match &self.tag {
            Some(tag) => index
                .manifests()
                .iter()
                .find(|d| ref_name(d).as_deref() == Some(tag.as_str())),
            None if index.manifests().len() == 1 => index.manifests().first(),
            None => bail!(
                "{} holds {} images; name one with oci:PATH:TAG (tags: {})",
                self.dir.display(),
                index.manifests().len(),
                tags(&index)
            ),
        };
        let Some(desc) = chosen else {
            bail!(
                "{} has no image tagged {:?} (tags: {})",
                self.dir.display(),
                self.tag.as_deref().unwrap_or(""),
                tags(&index)
            );
        };
        let digest = Digest::try_from(desc.digest())
            .with_context(|| format!("{} in {}", desc.digest(), path.display()))?;
        let bytes = read_limited(&self.blob_path(&digest), desc.size())?;
        Ok(Root {
            bytes,
            media_type: Some(desc.media_type().clone()),
            expected_digest: Some(digest),
        })
    }

    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        read_limited(&self.blob_path(digest), MAX_MANIFEST)
    }

    fn blob(&self, digest: &Digest, offset: u64) -> Result<(Box<dyn Read + Send + '_>, u64)> {
        let path = self.blob_path(digest);
        let mut f = File::open(&path).with_context(|| {
            format!(
                "blob {digest} is missing from the layout ({})",
                path.display()
            )
        })?;
        f.seek(SeekFrom::Start(offset))?;
        Ok((Box::new(f), offset))
    }
}

/// The tag of an image in a layout: its `org.opencontainers.image.ref.name`.
fn ref_name(desc: &Descriptor) -> Option<String> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME).cloned())
}

/// The tags in a layout's index, for an error that asks the user to pick one.
fn tags(index: &ImageIndex) -> String {
    index
        .manifests()
        .iter()
        .filter_map(ref_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a small file, refusing one larger than `max` bytes.
fn read_limited(path: &std::path::Path, max: u64) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max.min(MAX_MANIFEST) + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let limit = max.min(MAX_MANIFEST);
    if bytes.len() as u64 > limit {
        bail!(
            "{} is over the {limit} byte limit for manifests, indexes and configs",
            path.display()
        );
    }
    Ok(bytes)
}
