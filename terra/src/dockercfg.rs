//! Credentials from `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`):
//! `auths.<registry>.auth` (base64 `user:password`), `username`/`password`,
//! or `registrytoken`. Credential helpers (`credsStore`) are not run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// A ready Bearer token (`registrytoken`).
    pub registry_token: Option<String>,
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Credentials for `registry` (`docker.io`, `host:port`), if configured.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    from_json(&text, registry).with_context(|| format!("reading {}", path.display()))
}

pub fn from_json(text: &str, registry: &str) -> Result<Option<Credentials>> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let hub = registry == crate::reference::DOCKER_HUB;
    let entry = auths.iter().find(|(key, _)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        host == registry
            || (hub
                && matches!(
                    host,
                    "index.docker.io" | "registry-1.docker.io" | "docker.io"
                ))
    });
    let Some((_, e)) = entry else {
        return Ok(None);
    };
    let s = |k: &str| e.get(k).and_then(|v| v.as_str()).map(String::from);
    let (mut username, mut password) = (
        s("username").unwrap_or_default(),
        s("password").unwrap_or_default(),
    );
    if let Some(auth) = s("auth").filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("auths.*.auth is not base64")?;
        let raw = String::from_utf8(raw).context("auths.*.auth is not UTF-8")?;
        let (u, p) = raw
            .split_once(':')
            .context("auths.*.auth is not user:password")?;
        username = u.to_string();
        password = p.to_string();
    }
    let registry_token = s("registrytoken");
    if username.is_empty() && registry_token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username,
        password,
        registry_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_for_hub_and_local() {
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "127.0.0.1:5000":{"username":"a","password":"b"}}}"#;
        let hub = from_json(json, "docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(hub.basic_header(), "Basic dXNlcjpwYXNz");
        let local = from_json(json, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(local.username, "a");
        assert_eq!(from_json(json, "quay.io").unwrap(), None);
    }
}
