//! sha256 digests as a type: [`Digest`] is checked once, where it enters
//! (a reference, a manifest, a config, a registry header), and is then safe
//! everywhere, as a file name included. Also hashing readers and chain ids.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A `sha256:<64 lowercase hex>` digest.
///
/// Parsed by oci-spec's [`oci_spec::image::Digest`], but not that type
/// itself: it also admits sha512 and registered algorithms we cannot
/// verify, and its `Sha256Digest` prints without the `sha256:` prefix that
/// every message and record here carries. Only sha256 is stored on the
/// partition, under its hex as the file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    /// `sha256:` and 64 lowercase hex digits, checked.
    full: String,
}

/// Why a string is not a digest we can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest {0:?} is not sha256 (only sha256 is supported)")]
    NotSha256(String),
    #[error("digest {0:?} is malformed (expected sha256:<64 hex digits>)")]
    Malformed(String),
}

const PREFIX: &str = "sha256:";

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if !s.starts_with(PREFIX) {
            return Err(DigestError::NotSha256(s.to_string()));
        }
        match oci_spec::image::Digest::try_from(s) {
            Ok(d) if d.algorithm() == &oci_spec::image::DigestAlgorithm::Sha256 => Ok(Self {
                full: s.to_string(),
            }),
            _ => Err(DigestError::Malformed(s.to_string())),
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest a finished hasher holds (valid by construction).
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self {
            full: format!("{PREFIX}{}", hex::encode(hasher.finalize())),
        }
    }

    /// The 64 hex digits: a safe file name.
    pub fn hex(&self) -> &str {
        &self.full[PREFIX.len()..]
    }

    /// The first 12 hex digits, for progress lines.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, DigestError> {
        Self::parse(d.as_ref())
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Self::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

/// The chain ids of layers given their diff ids (OCI image spec, config.md):
/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// (sha256, bytes read).
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Sha256,
    pub count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, hasher: Sha256, count: u64) -> Self {
        Self {
            inner,
            hasher,
            count,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(
            ids[1].hex(),
            hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()))
        );
    }

    #[test]
    fn parse_refuses_bad_digests() {
        let good = format!("sha256:{}", "0".repeat(64));
        assert_eq!(Digest::parse(&good).unwrap().to_string(), good);
        assert_eq!(Digest::parse(&good).unwrap().hex(), "0".repeat(64));
        assert!(matches!(
            Digest::parse("sha512:00"),
            Err(DigestError::NotSha256(_))
        ));
        for bad in ["sha256:../../etc", "sha256:ABC", "sha256:", "x"] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn of_is_sha256() {
        assert_eq!(
            Digest::of(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
