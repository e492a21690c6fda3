//! The options that say how to reach an image, shared by every command that
//! reads one (`install`, `unpack`), and opening its [`Source`].

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::reference::Reference;
use crate::registry::Registry;
use crate::source::{Layout, Source};
use crate::watchdog::Limits;

/// How to talk to a registry.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Talk plain HTTP to the registry (always for loopback registries).
    #[arg(long)]
    pub plain_http: bool,
    /// A registry (host:port) reached over plain HTTP; repeatable. Also
    /// $TERRA_INSECURE_REGISTRIES (comma separated).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
    /// Give up a registry transfer that receives under 1 KiB in this many
    /// seconds (a stalled or trickling registry).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,
    /// Give up the registry transfers of the command after this many
    /// seconds in all.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

impl RegistryArgs {
    /// Whether to use plain HTTP for `host`: asked for, listed as insecure
    /// (here or in `env`, the value of $TERRA_INSECURE_REGISTRIES), or a
    /// loopback address (as Docker treats 127.0.0.0/8).
    pub fn plain_http_for(&self, host: &str, env: &str) -> bool {
        let loopback =
            host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
        self.plain_http
            || loopback
            || self
                .insecure
                .iter()
                .map(String::as_str)
                .chain(env.split(',').filter(|s| !s.is_empty()))
                .any(|h| h == host)
    }

    /// The source `reference` names.
    pub fn open(&self, reference: &Reference) -> Result<Box<dyn Source>> {
        Ok(match reference {
            Reference::Layout(l) => Box::new(Layout::open(l)?),
            Reference::Registry(r) => {
                let env = std::env::var("TERRA_INSECURE_REGISTRIES").unwrap_or_default();
                let plain = self.plain_http_for(&r.registry, &env);
                let creds = crate::dockercfg::lookup(&r.registry)?;
                let limits = Limits::new(
                    Duration::from_secs(self.stall_timeout),
                    Duration::from_secs(self.timeout),
                );
                Box::new(Registry::new(r, plain, creds, limits))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_where_asked_or_loopback() {
        let none = RegistryArgs::default();
        assert!(none.plain_http_for("127.0.0.1:5000", ""));
        assert!(none.plain_http_for("localhost:5000", ""));
        assert!(!none.plain_http_for("registry.example:5000", ""));
        assert!(none.plain_http_for("registry.example:5000", "a:1,registry.example:5000"));
        let listed = RegistryArgs {
            insecure: vec!["mirror:5000".into()],
            ..RegistryArgs::default()
        };
        assert!(listed.plain_http_for("mirror:5000", ""));
        assert!(!listed.plain_http_for("other:5000", ""));
    }
}
