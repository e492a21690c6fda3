//! `terra timesync [--server HOST[:PORT]]... [--every SECONDS] [--once]`

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use terra_layout::machine::{NtpServer, DEFAULT_NTP_SERVER};

use crate::timesync::{self, Nanos};

/// Keep the clock right: ask time servers (SNTP, RFC 4330) and step the
/// clock when it is off by more than --step-threshold. Runs as Terra's
/// `timesync` service with the machine config's `ntp` servers; never gives
/// up on a network error (it retries, 2 s doubling up to --every).
#[derive(Debug, Args)]
pub struct TimesyncArgs {
    /// A time server, tried in order (repeat the flag). Without one: the
    /// DHCP lease's, else pool.ntp.org.
    #[arg(long = "server", value_name = "HOST[:PORT]", value_parser = parse_server)]
    pub servers: Vec<NtpServer>,
    /// Seconds between syncs.
    #[arg(long, value_name = "SECONDS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Step the clock only when it is off by more than this many seconds
    /// (smaller offsets are logged, not corrected: no slewing).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5, value_parser = parse_threshold)]
    pub step_threshold: f64,
    /// Seconds to wait for each server's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,
    /// Sync once and exit: an error when no server answers.
    #[arg(long)]
    pub once: bool,
    /// Ask and log, but do not step the clock.
    #[arg(long)]
    pub dry_run: bool,
    /// The lease's time servers, written by the network service.
    #[arg(long, default_value = "/run/terra/network/ntp-servers", hide = true)]
    pub dhcp_servers: PathBuf,
    /// Written after each successful sync (the time and the server).
    #[arg(long, default_value = "/run/terra/timesync/synced", hide = true)]
    pub synced_file: PathBuf,
}

fn parse_server(s: &str) -> Result<NtpServer, String> {
    NtpServer::try_from(s.to_string())
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected seconds (0 or more), found {s:?}")),
    }
}

pub fn run(a: TimesyncArgs) -> Result<()> {
    let every = Duration::from_secs(a.every);
    let mut failures = 0u32;
    loop {
        // Read every round: the lease (and its servers) may come later.
        let servers = servers(&a.servers, &a.dhcp_servers);
        match sync_round(&a, &servers) {
            Ok(()) => failures = 0,
            Err(e) if a.once => return Err(e),
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = timesync::backoff(failures, every);
                println!("{e:#}; trying again in {} s", wait.as_secs());
                std::thread::sleep(wait);
                continue;
            }
        }
        if a.once {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

/// The servers to ask, `host:port`: the given ones, else the lease's, else
/// the default pool.
fn servers(given: &[NtpServer], dhcp_file: &Path) -> Vec<String> {
    if !given.is_empty() {
        return given.iter().map(NtpServer::with_port).collect();
    }
    let lease: Vec<String> = std::fs::read_to_string(dhcp_file)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|s| NtpServer::try_from(s.to_string()).ok())
        .map(|s| s.with_port())
        .collect();
    if lease.is_empty() {
        vec![format!("{DEFAULT_NTP_SERVER}:123")]
    } else {
        lease
    }
}

/// Asks the servers in turn; the first answer sets the clock.
fn sync_round(a: &TimesyncArgs, servers: &[String]) -> Result<()> {
    let timeout = Duration::from_secs(a.timeout);
    let mut errors = Vec::new();
    for server in servers {
        match timesync::query(server, timeout) {
            Ok(s) => return apply(a, server, &s),
            // Named once: the error names the server or its address.
            Err(e) => {
                let e = e.to_string();
                errors.push(if e.contains(server.as_str()) {
                    e
                } else {
                    format!("{server}: {e}")
                });
            }
        }
    }
    bail!("no time server answered ({})", errors.join("; "))
}

fn apply(a: &TimesyncArgs, server: &str, s: &timesync::Sample) -> Result<()> {
    let threshold = (a.step_threshold * 1e9) as Nanos;
    let off = timesync::seconds(s.offset);
    let how = format!(
        "server {server} ({}, stratum {}, delay {})",
        s.addr,
        s.stratum,
        timesync::seconds(s.delay)
    );
    if s.offset.abs() <= threshold {
        println!("clock within {off} of {how}; not stepped");
    } else if a.dry_run {
        println!("clock off by {off} from {how}; not stepped (--dry-run)");
    } else {
        let now = timesync::step(s.offset).with_context(|| {
            format!("stepping the clock by {off} (needs CAP_SYS_TIME), from {server}")
        })?;
        println!(
            "stepped the clock by {off} to {} from {how}",
            timesync::rfc3339(now)
        );
    }
    let record = format!("{} {server}\n", timesync::rfc3339(timesync::now()));
    if let Some(dir) = a.synced_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    terra_layout::atomic::write_atomic(&a.synced_file, record.as_bytes())
        .with_context(|| format!("writing {}", a.synced_file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_come_from_the_flags_else_the_lease_else_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let lease = dir.path().join("ntp-servers");
        let given = [NtpServer::try_from("10.0.2.2:4123".to_string()).unwrap()];
        assert_eq!(servers(&given, &lease), ["10.0.2.2:4123"]);
        assert_eq!(servers(&[], &lease), ["pool.ntp.org:123"]);
        std::fs::write(&lease, "192.168.1.1 bad!name 192.168.1.2\n").unwrap();
        assert_eq!(servers(&[], &lease), ["192.168.1.1:123", "192.168.1.2:123"]);
        assert_eq!(servers(&given, &lease), ["10.0.2.2:4123"]);
    }
}
