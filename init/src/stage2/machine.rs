//! The machine config (`config/machine.json` on the partition, the format in
//! `terra_layout::machine`): read at every boot, applied (hostname, sysctls,
//! name servers, ssh keys), and turned into Terra's own services: `network`
//! (DHCP or static addresses), `sshd` and `timesync` (`terra timesync`).
//!
//! The network itself is busybox's `udhcpc` and `ip` run by a small script
//! in the OS image (`/usr/lib/terra/network`), supervised like any service:
//! busybox-static is already in the image, so DHCP (lease, renewal, routes,
//! DNS, the lease's host name) costs no new code in PID 1 and no new package;
//! stage 2 only decides what runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use terra_layout::machine::{self, Chosen, MachineConfig, Origin};
use terra_layout::Partition;

use super::services::{Ready, Restart, Spec};
use crate::env::Env;

/// The network service's script and what it makes once an interface has an
/// address (its readiness: `"after": ["network"]` waits for it).
pub const NETWORK_SCRIPT: &str = "usr/lib/terra/network";
pub const NETWORK_READY: &str = "/run/terra/network/ready";
/// The sshd service's script (dropbear, key-only).
pub const SSHD_SCRIPT: &str = "usr/lib/terra/sshd";
/// The CLI, whose `terra nocloud` applies a cloud-init NoCloud seed.
pub const TERRA_CLI: &str = "usr/bin/terra";

/// Reads the config from the partition (the last good one when the file is
/// bad, saying why), and keeps a good file as the last good one.
pub fn load(env: &Env) -> MachineConfig {
    let part = Partition::new(&env.paths.partition);
    let file = match std::fs::read_to_string(part.machine_config()) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    let last_good = std::fs::read_to_string(part.machine_last_good()).ok();
    let Chosen {
        config,
        origin,
        problem,
    } = machine::choose(
        file.as_ref().map(|t| t.as_deref()).map_err(Clone::clone),
        last_good.as_deref(),
    );
    match (origin, problem) {
        (Origin::File, _) => {
            log::info!("machine config: {}", machine::MACHINE_CONFIG);
            let text = file.ok().flatten().unwrap_or_default();
            if last_good.as_deref() != Some(text.as_str()) {
                if let Err(e) =
                    terra_layout::atomic::write_atomic(&part.machine_last_good(), text.as_bytes())
                {
                    log::warn!("machine config: saving {}: {e}", machine::LAST_GOOD);
                }
            }
        }
        (Origin::LastGood, Some(why)) => {
            log::error!(
                "machine config: {why}; using the last good one ({})",
                machine::LAST_GOOD
            )
        }
        (Origin::Defaults, Some(why)) => {
            log::error!("machine config: {why}; no last good one: using the defaults")
        }
        (_, _) => log::info!("machine config: none; DHCP on every Ethernet interface"),
    }
    config
}

/// Applies what is not a service: host name, sysctls, name servers, keys.
pub fn apply(env: &Env, c: &MachineConfig) {
    if let Some(name) = &c.hostname {
        match env.kernel.set_hostname(name.as_str()) {
            Ok(()) => log::info!("hostname {name} (machine config)"),
            Err(e) => log::error!("hostname {name}: {e}"),
        }
    }
    for (key, value) in &c.sysctl {
        let path = env
            .paths
            .proc
            .join("sys")
            .join(key.as_str().replace('.', "/"));
        match std::fs::write(&path, value) {
            Ok(()) => log::info!("sysctl {key}={value}"),
            Err(e) => log::error!("sysctl {key}={value}: writing {}: {e}", path.display()),
        }
    }
    if let Some(text) = c.resolv_conf() {
        write_file(&in_root(env, "etc/resolv.conf"), &text, 0o644);
    }
    // Written every boot, so the file says what the config says: keys
    // removed from the config stop working.
    let mut keys: String = c
        .ssh_authorized_keys
        .iter()
        .map(|k| format!("{k}\n"))
        .collect();
    if keys.is_empty() {
        keys = "# no keys in config/machine.json: nobody can log in\n".into();
    }
    let ssh = in_root(env, "root/.ssh");
    if let Err(e) = std::fs::create_dir_all(&ssh) {
        log::error!("ssh keys: creating {}: {e}", ssh.display());
    }
    write_file(&ssh.join("authorized_keys"), &keys, 0o600);
}

/// Terra's services for this config: `network`, `sshd`, `nocloud` (a
/// cloud-init seed's host name and keys) and `timesync`, each only when the
/// image carries its script or the `terra` CLI.
pub fn services(env: &Env, c: &MachineConfig) -> Vec<Spec> {
    let mut out = Vec::new();
    let network = in_root(env, NETWORK_SCRIPT);
    if env.kernel.exists(&network) {
        out.push(network_spec(&network, c));
    } else {
        log::warn!(
            "network: {} is not in the image; no network",
            network.display()
        );
    }
    let sshd = in_root(env, SSHD_SCRIPT);
    if !c.services.sshd {
        log::info!("sshd: off (machine config)");
    } else if env.kernel.exists(&sshd) {
        let keys = Partition::new(&env.paths.partition).ssh_host_keys();
        out.push(spec(
            "sshd",
            vec![
                "/bin/sh".into(),
                sshd.display().to_string(),
                keys.display().to_string(),
            ],
            BTreeMap::new(),
            Restart::Always,
            None,
        ));
    }
    let terra = in_root(env, TERRA_CLI);
    if env.kernel.exists(&terra) {
        let mut argv = vec![terra.display().to_string(), "nocloud".to_string()];
        if c.hostname.is_some() {
            argv.push("--keep-hostname".into());
        }
        out.push(spec("nocloud", argv, BTreeMap::new(), Restart::Never, None));
        out.push(timesync_spec(&terra, c));
    }
    out
}

/// `terra timesync --server S ...` with the config's servers (none: it asks
/// the lease's, else the pool), after the network. No readiness: a host
/// with no time server in reach must still pass the health gate.
fn timesync_spec(terra: &Path, c: &MachineConfig) -> Spec {
    let mut argv = vec![terra.display().to_string(), "timesync".to_string()];
    for s in &c.ntp {
        argv.push("--server".into());
        argv.push(s.to_string());
    }
    let mut s = spec("timesync", argv, BTreeMap::new(), Restart::Always, None);
    s.after = vec!["network".to_string()];
    s
}

/// `network IFACE=ADDR/LEN[,GATEWAY] ...`: the named interfaces get their
/// static address, every other Ethernet interface DHCP (unless off).
fn network_spec(script: &Path, c: &MachineConfig) -> Spec {
    let mut argv = vec!["/bin/sh".to_string(), script.display().to_string()];
    for (name, i) in &c.interfaces {
        let gw = i.gateway.map(|g| format!(",{g}")).unwrap_or_default();
        argv.push(format!("{name}={}{gw}", i.address));
    }
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let env = BTreeMap::from([
        ("TERRA_DHCP".to_string(), flag(c.dhcp)),
        // Given names and name servers win over the lease's.
        (
            "TERRA_KEEP_HOSTNAME".to_string(),
            flag(c.hostname.is_some()),
        ),
        ("TERRA_KEEP_DNS".to_string(), flag(!c.dns.is_empty())),
    ]);
    spec(
        "network",
        argv,
        env,
        Restart::OnFailure,
        Some(Ready::File(PathBuf::from(NETWORK_READY))),
    )
}

fn spec(
    name: &str,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    restart: Restart,
    ready: Option<Ready>,
) -> Spec {
    Spec {
        name: name.to_string(),
        argv,
        env,
        // Not after containerd: the network comes up beside it.
        after: Vec::new(),
        restart,
        ready,
        required: false,
        stop_timeout: 5,
    }
}

fn in_root(env: &Env, rel: &str) -> PathBuf {
    env.paths.root.join(rel)
}

fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let result = std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)));
    match result {
        Ok(()) => log::debug!("wrote {}", path.display()),
        Err(e) => log::error!("writing {}: {e}", path.display()),
    }
}

#[cfg(test)]
#[path = "machine/tests.rs"]
mod tests;
