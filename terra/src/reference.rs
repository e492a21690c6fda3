//! Image references: `oci:PATH[:TAG]` for an OCI image layout on disk, or a
//! registry reference (`debian`, `docker.io/library/debian:12`,
//! `127.0.0.1:5000/terra/os:v2`, `host/repo@sha256:…`) with Docker's defaults.
//!
//! Ours rather than oci-spec's `distribution::Reference`: that one knows no
//! `oci:` layouts, admits digests of any algorithm (ours is a sha256
//! [`Digest`]), sends Docker Hub requests to `index.docker.io` where we use
//! `registry-1.docker.io`, and needs a feature (and its regex) we do not
//! otherwise use.

use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::digest::Digest;

/// Docker Hub's name in references and its API host.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Layout(LayoutRef),
    Registry(RegistryRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    pub path: PathBuf,
    /// Matches `org.opencontainers.image.ref.name` in index.json.
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// As written in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// The host[:port] to talk to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_ref()
            .map(Digest::as_ref)
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("oci:") {
            return parse_layout(rest).map(Reference::Layout);
        }
        parse_registry(s).map(Reference::Registry)
    }

    /// The version name this reference suggests: its tag.
    pub fn default_name(&self) -> Option<String> {
        match self {
            Reference::Layout(l) => l.tag.clone(),
            Reference::Registry(r) => match (&r.tag, &r.digest) {
                (Some(t), _) => Some(t.clone()),
                (None, None) => Some("latest".into()),
                (None, Some(_)) => None,
            },
        }
    }
}

fn parse_layout(rest: &str) -> Result<LayoutRef> {
    if rest.is_empty() {
        bail!("oci: reference without a path (expected oci:PATH[:TAG])");
    }
    // The tag is after the last ':' that follows the last '/'.
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest[slash..].rfind(':') {
        Some(i) => {
            let (p, t) = rest.split_at(slash + i);
            (p, Some(t[1..].to_string()))
        }
        None => (rest, None),
    };
    if path.is_empty() || tag.as_deref() == Some("") {
        bail!("{rest:?}: expected oci:PATH[:TAG]");
    }
    Ok(LayoutRef {
        path: PathBuf::from(path),
        tag,
    })
}

/// `host[:port]` (`[v6]:port`): a port is a number from 1 to 65535, so a
/// typo is refused here rather than when the first request fails.
fn check_host(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((_, "")) => return Ok(()),
            Some((h, tail)) => (h, tail.strip_prefix(':').unwrap_or(tail)),
            None => return Err(format!("registry {registry:?}: unclosed '['")),
        },
        None => match registry.split_once(':') {
            Some((h, p)) => (h, p),
            None => return Ok(()),
        },
    };
    if host.is_empty() {
        return Err(format!("registry {registry:?}: no host before the port"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "registry {registry:?}: the port {port:?} is not a number from 1 to 65535"
        )),
    }
}

fn parse_registry(s: &str) -> Result<RegistryRef> {
    let bad = |why: &str| anyhow::anyhow!("image reference {s:?}: {why}");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("empty or has spaces"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
        None => (s, None),
    };
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
        None => (rest, None),
    };
    if let Some(t) = &tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad("bad tag"));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), path.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let repo_ok = !repository.is_empty()
        && repository.split('/').all(|c| {
            c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
                })
        });
    if !repo_ok {
        return Err(bad(
            "bad repository name (lowercase letters, digits, . _ - and /)",
        ));
    }
    check_host(&registry).map_err(|why| bad(&why))?;
    Ok(RegistryRef {
        registry,
        repository,
        tag,
        digest,
    })
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Layout(l) => {
                write!(f, "oci:{}", l.path.display())?;
                if let Some(t) = &l.tag {
                    write!(f, ":{t}")?;
                }
                Ok(())
            }
            Reference::Registry(r) => {
                write!(f, "{}/{}", r.registry, r.repository)?;
                if let Some(t) = &r.tag {
                    write!(f, ":{t}")?;
                }
                if let Some(d) = &r.digest {
                    write!(f, "@{d}")?;
                }
                if r.tag.is_none() && r.digest.is_none() {
                    write!(f, ":latest")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RegistryRef {
        match Reference::parse(s).unwrap() {
            Reference::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_hub_defaults() {
        let r = reg("debian");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.manifest_ref()),
            ("docker.io", "library/debian", "latest")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = reg("stellarproject/terraos:v5");
        assert_eq!(r.repository, "stellarproject/terraos");
        assert_eq!(r.tag.as_deref(), Some("v5"));
        let r = reg("docker.io/stellarproject/terraos:v5");
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = reg(&format!("127.0.0.1:5000/terra/os@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "terra/os");
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(
            Reference::parse("localhost/x:1")
                .unwrap()
                .default_name()
                .unwrap(),
            "1"
        );
        assert_eq!(reg("[::1]:5000/os:v2").registry, "[::1]:5000");
        let r = reg("127.0.0.1:5000/os:v2");
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("os", Some("v2"))
        );
    }

    #[test]
    fn layouts() {
        let Reference::Layout(l) = Reference::parse("oci:/tmp/img:v1").unwrap() else {
            panic!()
        };
        assert_eq!(
            (l.path.to_str().unwrap(), l.tag.as_deref()),
            ("/tmp/img", Some("v1"))
        );
        let Reference::Layout(l) = Reference::parse("oci:./a.b/img").unwrap() else {
            panic!()
        };
        assert_eq!((l.path.to_str().unwrap(), l.tag), ("./a.b/img", None));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "oci:",
            "Upper/Case",
            "x:",
            "a b",
            "x@sha256:12",
            "x/../y",
            "docker.io/.hidden",
            "host:badport/x",
            "host:0/x",
            "host:65536/x:v1",
            "host:/x",
            ":5000/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
