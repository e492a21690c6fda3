//! The services stage 2 runs: containerd (built in) and whatever the OS image
//! declares in `/etc/terra/services/NAME.json`:
//!
//! ```json
//! {
//!   "argv": ["/usr/bin/buildkitd", "--addr", "unix:///run/buildkit/buildkitd.sock"],
//!   "env": {"GODEBUG": "madvdontneed=1"},
//!   "after": ["containerd"],
//!   "restart": "always",
//!   "ready": {"socket": "/run/buildkit/buildkitd.sock"},
//!   "required": true,
//!   "stop_timeout": 10
//! }
//! ```
//!
//! Only `argv` is required. `after` defaults to `["containerd"]` (a service
//! starts once each named one is ready); `restart` is `always` (default),
//! `on-failure` or `never`. `required` (default false) puts the service in
//! the health gate ([`super::health`]): the version is good only once it is
//! ready; containerd is always required. `ready` is `{"socket": PATH}` (a
//! unix socket) or `{"tcp": "ADDR:PORT"}` (a TCP listener, such as the node
//! exporter's `127.0.0.1:9100`). A file named `containerd.json`
//! replaces the built-in containerd. A bad file is logged and skipped.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::env::Env;

/// The one service every Terra system runs.
pub const CONTAINERD: &str = "containerd";
/// containerd's binary and socket in the OS image (its config is
/// `Paths::containerd_config`).
pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// Why a service is not run (or not run now).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a service declaration")]
    Json(#[source] serde_json::Error),
    #[error("argv must start with an absolute path, found {found:?}")]
    RelativeArgv { found: Option<String> },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// When a service that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// How to tell that a service is ready (its dependents may start): one
/// key, `{"socket": PATH}`, `{"tcp": "ADDR:PORT"}` or `{"file": PATH}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Ready {
    /// A unix socket that accepts connections.
    Socket(PathBuf),
    /// A TCP address that accepts connections (services that serve on a
    /// port only, such as the node exporter).
    Tcp(SocketAddr),
    /// A file that exists (the network service makes one once an
    /// interface has an address).
    File(PathBuf),
}

impl Ready {
    /// Whether the check passes now, and what passed, for the log.
    pub fn check(&self, k: &dyn crate::kernel::Kernel) -> Option<String> {
        match self {
            Ready::Socket(p) => k.connects(p).then(|| format!("{} answers", p.display())),
            Ready::Tcp(a) => k.connects_tcp(*a).then(|| format!("tcp {a} answers")),
            Ready::File(p) => k.exists(p).then(|| format!("{} exists", p.display())),
        }
    }
}

/// One service, as declared.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Defaults to the file name without `.json`.
    #[serde(default)]
    pub name: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "after_containerd")]
    pub after: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub ready: Option<Ready>,
    /// Part of the health gate: the version is good only once it is ready.
    #[serde(default)]
    pub required: bool,
    /// Seconds between SIGTERM and SIGKILL at shutdown.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: u64,
}

fn after_containerd() -> Vec<String> {
    vec![CONTAINERD.to_string()]
}

fn default_stop_timeout() -> u64 {
    10
}

/// containerd as Terra runs it when the image does not say otherwise, with
/// its config file if there is one.
pub fn containerd(config: Option<&Path>) -> Spec {
    let mut argv = vec![CONTAINERD_BIN.to_string()];
    if let Some(config) = config {
        argv.extend(["--config".to_string(), config.display().to_string()]);
    }
    Spec {
        name: CONTAINERD.to_string(),
        argv,
        env: BTreeMap::new(),
        after: Vec::new(),
        restart: Restart::Always,
        ready: Some(Ready::Socket(PathBuf::from(CONTAINERD_SOCKET))),
        required: true,
        stop_timeout: default_stop_timeout(),
    }
}

/// Parses one declaration; `stem` is its file name without `.json`.
pub fn parse(stem: &str, text: &str) -> Result<Spec, ServiceError> {
    let mut spec: Spec = serde_json::from_str(text).map_err(ServiceError::Json)?;
    if spec.name.is_empty() {
        spec.name = stem.to_string();
    }
    if !matches!(spec.argv.first(), Some(a) if a.starts_with('/')) {
        return Err(ServiceError::RelativeArgv {
            found: spec.argv.first().cloned(),
        });
    }
    if spec.name == CONTAINERD {
        spec.after.retain(|a| a != CONTAINERD);
        // Without containerd there is no container host: always gated.
        spec.required = true;
    }
    Ok(spec)
}

/// containerd first (the image's `containerd.json` or the built-in one),
/// then Terra's own services (`terra`: network, sshd, from the machine
/// config) and the declared ones, in an order where each comes after what
/// it waits for. An image's file replaces Terra's service of the same name.
/// Bad files, unknown `after` names and cycles are logged; the services
/// concerned are left out.
pub fn load(env: &Env, terra: Vec<Spec>) -> Vec<Spec> {
    let dir = &env.paths.services;
    let mut declared = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let Some(stem) = json_stem(&path) else {
                    continue;
                };
                match std::fs::read_to_string(&path)
                    .map_err(|source| ServiceError::Read {
                        path: path.clone(),
                        source,
                    })
                    .and_then(|t| parse(&stem, &t))
                {
                    Ok(spec) => declared.push(spec),
                    Err(e) => {
                        log::error!("service {}: {}; skipped", path.display(), super::chain(&e))
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::error!("services: reading {}: {e}", dir.display()),
    }
    let mut all = terra;
    for spec in declared {
        if all.iter().any(|t| t.name == spec.name) {
            log::info!("service {}: using the image's declaration", spec.name);
            all.retain(|t| t.name != spec.name);
        }
        all.push(spec);
    }
    let config = &env.paths.containerd_config;
    let builtin = containerd(config.exists().then_some(config.as_path()));
    order(builtin, all)
}

fn json_stem(path: &Path) -> Option<String> {
    if path.extension()? != "json" {
        return None;
    }
    Some(path.file_stem()?.to_string_lossy().into_owned())
}

/// Puts containerd first and every other service after its `after` names.
pub fn order(builtin: Spec, declared: Vec<Spec>) -> Vec<Spec> {
    let mut pending: Vec<Spec> = Vec::new();
    let mut out: Vec<Spec> = Vec::new();
    let mut containerd = builtin;
    for spec in declared {
        if spec.name == CONTAINERD {
            log::info!("service containerd: using the image's declaration");
            containerd = spec;
        } else if pending.iter().any(|s| s.name == spec.name) {
            log::error!(
                "service {}: declared twice; the second is skipped",
                spec.name
            );
        } else {
            pending.push(spec);
        }
    }
    out.push(containerd);
    let names: Vec<String> = out.iter().chain(&pending).map(|s| s.name.clone()).collect();
    for spec in &mut pending {
        let unknown: Vec<String> = spec
            .after
            .iter()
            .filter(|a| !names.contains(a))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            log::error!(
                "service {}: after {unknown:?}: no such service; not waiting for it",
                spec.name
            );
            spec.after.retain(|a| names.contains(a));
        }
    }
    loop {
        let ready = pending
            .iter()
            .position(|s| s.after.iter().all(|a| out.iter().any(|o| &o.name == a)));
        match ready {
            Some(i) => out.push(pending.remove(i)),
            None => break,
        }
    }
    for spec in pending {
        log::error!(
            "service {}: its `after` names form a cycle; not started",
            spec.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_declaration_gets_the_defaults() {
        let s = parse("buildkitd", r#"{"argv": ["/usr/bin/buildkitd"]}"#).unwrap();
        assert_eq!(s.name, "buildkitd");
        assert_eq!(s.after, vec!["containerd".to_string()]);
        assert_eq!(s.restart, Restart::Always);
        assert_eq!(s.stop_timeout, 10);
        assert_eq!(s.ready, None);
        assert!(!s.required);
    }

    #[test]
    fn containerd_is_always_required() {
        assert!(containerd(None).required);
        let s = parse(
            "containerd",
            r#"{"argv":["/opt/containerd"],"required":false}"#,
        )
        .unwrap();
        assert!(s.required);
        let s = parse("db", r#"{"argv":["/bin/db"],"required":true}"#).unwrap();
        assert!(s.required);
    }

    #[test]
    fn every_field_is_read() {
        let s = parse(
            "x",
            r#"{"name":"exp","argv":["/bin/exp","-v"],"env":{"A":"1"},"after":[],
                "restart":"on-failure","ready":{"socket":"/run/e.sock"},"stop_timeout":3}"#,
        )
        .unwrap();
        assert_eq!(s.name, "exp");
        assert_eq!(s.env.get("A").map(String::as_str), Some("1"));
        assert!(s.after.is_empty());
        assert_eq!(s.restart, Restart::OnFailure);
        assert_eq!(s.ready, Some(Ready::Socket(PathBuf::from("/run/e.sock"))));
        assert_eq!(s.stop_timeout, 3);
        let s = parse("n", r#"{"argv":["/n"],"ready":{"tcp":"127.0.0.1:9100"}}"#).unwrap();
        assert_eq!(s.ready, Some(Ready::Tcp(([127, 0, 0, 1], 9100).into())));
        // One check, of a known kind.
        assert!(parse("n", r#"{"argv":["/n"],"ready":{"http":"x"}}"#).is_err());
        assert!(parse("n", r#"{"argv":["/n"],"ready":{"tcp":"localhost"}}"#).is_err());
    }

    #[test]
    fn a_service_may_be_ready_when_a_file_exists() {
        let s = parse(
            "n",
            r#"{"argv":["/n"],"ready":{"file":"/run/terra/network/ready"}}"#,
        )
        .unwrap();
        let ready = s.ready.unwrap();
        assert_eq!(
            ready,
            Ready::File(PathBuf::from("/run/terra/network/ready"))
        );
        let k = crate::kernel::fake::Fake::failing(&["test -e /run/terra/network/ready"]);
        assert_eq!(ready.check(&k), None);
        let k = crate::kernel::fake::Fake::default();
        assert_eq!(
            ready.check(&k).as_deref(),
            Some("/run/terra/network/ready exists")
        );
        assert!(parse("n", r#"{"argv":["/n"],"ready":{"fil":"/x"}}"#).is_err());
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            "",
            "{}",
            r#"{"argv":[]}"#,
            r#"{"argv":["relative"]}"#,
            r#"{"argv":["/x"],"restart":"sometimes"}"#,
            r#"{"argv":["/x"],"typo":1}"#,
        ] {
            assert!(parse("x", bad).is_err(), "{bad}");
        }
        match parse("x", r#"{"argv":["bin/x"]}"#) {
            Err(e @ ServiceError::RelativeArgv { .. }) => assert_eq!(
                e.to_string(),
                "argv must start with an absolute path, found Some(\"bin/x\")"
            ),
            other => panic!("{other:?}"),
        }
    }

    fn svc(name: &str, after: &[&str]) -> Spec {
        let mut s = parse(name, r#"{"argv":["/bin/true"]}"#).unwrap();
        s.after = after.iter().map(|a| a.to_string()).collect();
        s
    }

    #[test]
    fn containerd_comes_first_and_dependents_after_what_they_wait_for() {
        let out = order(
            containerd(None),
            vec![svc("a", &["b"]), svc("b", &["containerd"]), svc("c", &[])],
        );
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["containerd", "b", "a", "c"]);
        assert_eq!(out[0].argv, ["/usr/bin/containerd"]);
    }

    #[test]
    fn cycles_and_unknown_names_do_not_stop_the_rest() {
        let out = order(
            containerd(Some(Path::new("/etc/containerd/config.toml"))),
            vec![svc("a", &["b"]), svc("b", &["a"]), svc("c", &["nope"])],
        );
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["containerd", "c"]);
        assert!(out[1].after.is_empty());
        assert_eq!(
            out[0].argv,
            [
                "/usr/bin/containerd",
                "--config",
                "/etc/containerd/config.toml"
            ]
        );
    }

    #[test]
    fn the_image_may_replace_containerd() {
        let mine = parse("containerd", r#"{"argv":["/opt/containerd","-l","debug"]}"#).unwrap();
        assert!(mine.after.is_empty());
        let out = order(containerd(None), vec![mine]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].argv[0], "/opt/containerd");
    }

    #[test]
    fn loads_a_directory_skipping_bad_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), r#"{"argv":["/b"]}"#).unwrap();
        std::fs::write(dir.path().join("a.json"), "not json").unwrap();
        std::fs::write(dir.path().join("README"), "x").unwrap();
        let k = crate::kernel::fake::Fake::default();
        let paths = crate::env::Paths {
            services: dir.path().to_path_buf(),
            containerd_config: dir.path().join("config.toml"),
            ..Default::default()
        };
        let env = Env::new(paths, &k, std::time::Instant::now());
        let out = load(&env, Vec::new());
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["containerd", "b"]);
        // Terra's own services come before the image's; a file of the same
        // name replaces one.
        let out = load(&env, vec![svc("network", &[]), svc("b", &[])]);
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["containerd", "network", "b"]);
        assert_eq!(out[2].argv, ["/b"]);
        assert_eq!(out[0].argv, ["/usr/bin/containerd"]);
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let config = dir.path().join("config.toml").display().to_string();
        assert_eq!(
            load(&env, Vec::new())[0].argv,
            ["/usr/bin/containerd", "--config", &config]
        );
    }
}
