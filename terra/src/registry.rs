//! A small blocking client for the OCI distribution API (what Docker Hub,
//! `distribution` and every mirror speak): manifests with the Accept header
//! listing both OCI and Docker types, blobs with Range resume, and the
//! Bearer token dance (anonymous or with `~/.docker/config.json` creds).

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use oci_spec::image::MediaType;

use crate::digest::Digest;
use crate::dockercfg::Credentials;
use crate::reference::RegistryRef;
use crate::source::{Root, Source, MAX_MANIFEST};
use crate::watchdog::{Limits, Watchdog};

/// Every manifest type we read. Without it, `distribution` answers 404 for
/// OCI manifests and converts Docker schema 2 to schema 1 (another digest).
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

pub struct Registry {
    agent: ureq::Agent,
    base: String,
    image: RegistryRef,
    creds: Option<Credentials>,
    /// `Authorization` value once we have one (Bearer token or Basic).
    auth: Mutex<Option<String>>,
    limits: Limits,
}

impl Registry {
    pub fn new(
        image: &RegistryRef,
        plain_http: bool,
        creds: Option<Credentials>,
        limits: Limits,
    ) -> Self {
        // A socket silent for the stall time ends the transfer; slower
        // trickles are the [`Watchdog`]'s, the deadline each request's.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(limits.stall.min(Duration::from_secs(30)))
            .timeout_read(limits.stall)
            .user_agent(concat!("terra/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if plain_http { "http" } else { "https" };
        Self {
            agent,
            base: format!("{scheme}://{}/v2/{}", image.api_host(), image.repository),
            image: image.clone(),
            creds,
            auth: Mutex::new(None),
            limits,
        }
    }

    /// `registry HOST: WHAT`, the start of every transfer error.
    fn what(&self, what: &str) -> String {
        format!("registry {}: {what}", self.image.registry)
    }

    /// `resp`'s body under the stall timeout and the deadline.
    fn body(&self, resp: ureq::Response, what: &str) -> Watchdog<Box<dyn Read + Send + Sync>> {
        Watchdog::new(resp.into_reader(), self.limits, self.what(what))
    }

    /// GET with auth: on 401, log in as the challenge says, then retry once.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<ureq::Response> {
        let mut tried_login = false;
        loop {
            let mut req = self
                .agent
                .get(url)
                .timeout(self.limits.left(&self.what(url))?);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let auth = self.auth.lock().map(|a| a.clone()).unwrap_or(None);
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !tried_login => {
                    tried_login = true;
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
                    let value = self.login(&challenge)?;
                    if let Ok(mut a) = self.auth.lock() {
                        *a = Some(value);
                    }
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let body = resp.into_string().unwrap_or_default();
                    let body: String = body.chars().take(300).collect();
                    bail!("{url}: HTTP {code}: {}", body.trim());
                }
                Err(e) => return Err(anyhow!(e).context(format!("GET {url}"))),
            }
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the configured
    /// credentials, or Bearer via the token realm (anonymous without creds).
    fn login(&self, challenge: &str) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return match &self.creds {
                Some(c) => Ok(c.basic_header()),
                None => bail!(
                    "{} asks for a password; add it to ~/.docker/config.json (docker login)",
                    self.image.registry
                ),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            bail!(
                "{}: unsupported authentication {challenge:?}",
                self.image.registry
            );
        }
        let params = parse_challenge(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let realm = get("realm").ok_or_else(|| anyhow!("token challenge without realm"))?;
        let scope = get("scope")
            .map(String::from)
            .unwrap_or_else(|| format!("repository:{}:pull", self.image.repository));
        let mut req = self
            .agent
            .get(realm)
            .timeout(self.limits.left(&self.what(realm))?)
            .query("scope", &scope);
        if let Some(service) = get("service") {
            req = req.query("service", service);
        }
        if let Some(c) = &self.creds {
            if let Some(token) = &c.registry_token {
                return Ok(format!("Bearer {token}"));
            }
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = req.call().map_err(|e| match e {
            ureq::Error::Status(code, _) => {
                anyhow!("token server {realm} refused access to {scope} (HTTP {code})")
            }
            e => anyhow!(e).context(format!("asking {realm} for a token")),
        })?;
        let body: serde_json::Value = serde_json::from_reader(resp.into_reader().take(1 << 20))
            .context("token server answer")?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| anyhow!("token server {realm} answered without a token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// The bytes, the Content-Type and the Docker-Content-Digest header.
    fn fetch_manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.get(&url, &[("Accept", ACCEPT)])?;
        let media_type = resp
            .header("content-type")
            .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        let digest = resp.header("docker-content-digest").map(String::from);
        let mut bytes = Vec::new();
        self.body(resp, &format!("manifest {reference}"))
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {url}"))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            bail!(
                "{}: more than the {MAX_MANIFEST} byte limit for manifests and indexes",
                self.what(&format!("manifest {reference}"))
            );
        }
        Ok((bytes, media_type, digest))
    }
}

impl Source for Registry {
    fn root(&self) -> Result<Root> {
        let (bytes, media_type, header_digest) = self.fetch_manifest(self.image.manifest_ref())?;
        if media_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/vnd.docker.distribution.manifest.v1"))
        {
            bail!(
                "{}: Docker schema 1 manifests are not supported",
                self.image.registry
            );
        }
        // A pinned digest must match; otherwise the registry's own claim must.
        let expected_digest = match (&self.image.digest, header_digest) {
            (Some(pinned), _) => Some(pinned.clone()),
            (None, Some(header)) => Some(Digest::parse(&header).with_context(|| {
                format!("{}: the Docker-Content-Digest header", self.image.registry)
            })?),
            (None, None) => None,
        };
        Ok(Root {
            bytes,
            media_type: media_type.as_deref().map(MediaType::from),
            expected_digest,
        })
    }

    fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        Ok(self.fetch_manifest(digest.as_ref())?.0)
    }

    fn blob(&self, digest: &Digest, offset: u64) -> Result<(Box<dyn Read + Send + '_>, u64)> {
        let url = format!("{}/blobs/{digest}", self.base);
        let range = format!("bytes={offset}-");
        let headers: Vec<(&str, &str)> = if offset > 0 {
            vec![("Range", range.as_str())]
        } else {
            vec![]
        };
        let resp = self.get(&url, &headers)?;
        // 206 resumes where we asked; 200 means the server starts over.
        let start = if resp.status() == 206 { offset } else { 0 };
        Ok((Box::new(self.body(resp, &format!("blob {digest}"))), start))
    }
}

/// `realm="https://auth.docker.io/token",service="registry.docker.io"` → pairs.
fn parse_challenge(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((key, value.to_string()));
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
        );
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/debian:pull");
    }
}
