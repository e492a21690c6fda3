//! The machine config: one file on the partition, `config/machine.json`,
//! shared by every version (so it survives updates and rollbacks), read by
//! stage 2 at every boot and checked by `terra config check`.
//!
//! ```json
//! {
//!   "hostname": "node-1",
//!   "interfaces": {"eth0": {"address": "10.0.2.50/24", "gateway": "10.0.2.2"}},
//!   "dhcp": true,
//!   "dns": ["10.0.2.3"],
//!   "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza… me@laptop"],
//!   "sysctl": {"net.ipv4.ip_forward": "1"},
//!   "ntp": ["time.example.net", "10.0.2.2:123"],
//!   "services": {"sshd": true}
//! }
//! ```
//!
//! JSON because stage 2 already links `serde_json` (for the boot records and
//! the service files), and serde_json's errors carry the line and column.
//! Every value with a shape (an address, a key, a name) has its own type
//! whose `Deserialize` checks it, so a bad one is refused at its line with
//! what was expected and what was found.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The file, relative to the partition root.
pub const MACHINE_CONFIG: &str = "config/machine.json";
/// The last config that stage 2 read without error, used when the file
/// became bad (or went missing after having been good).
pub const LAST_GOOD: &str = "config/machine.last-good.json";
/// Where sshd's host keys live on the partition, so that every version
/// (and a rollback) shows the same host keys.
pub const SSH_HOST_KEYS: &str = "config/ssh";

/// A refused config: the line and column serde_json stopped at and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The whole file. Unknown keys are refused: a typo is an error, not a
/// setting silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Overrides the image's `/etc/hostname` and the DHCP lease's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    /// Static addresses, by interface name; an interface not named here
    /// gets DHCP (unless `dhcp` is false).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interfaces: BTreeMap<IfName, Interface>,
    /// DHCP on every Ethernet interface without a static address.
    #[serde(default = "yes")]
    pub dhcp: bool,
    /// Name servers for `/etc/resolv.conf`; when given, DHCP's are not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<Ipv4Addr>,
    /// Public keys that may log in as root over ssh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<SshKey>,
    /// Written to `/proc/sys/…` at boot (`net.ipv4.ip_forward` ->
    /// `/proc/sys/net/ipv4/ip_forward`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<SysctlKey, String>,
    /// Time servers (`host` or `host:port`) for `terra timesync`; when
    /// none are given, the DHCP lease's, else [`DEFAULT_NTP_SERVER`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<NtpServer>,
    /// The optional services Terra itself provides.
    #[serde(default)]
    pub services: Services,
}

/// The time server used when neither the config nor the DHCP lease names one.
pub const DEFAULT_NTP_SERVER: &str = "pool.ntp.org";

fn yes() -> bool {
    true
}

/// A static address on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub address: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
}

/// Terra's optional services and whether they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// The ssh server (key-only).
    #[serde(default = "yes")]
    pub sshd: bool,
}

impl Default for Services {
    fn default() -> Self {
        Self { sshd: true }
    }
}

impl MachineConfig {
    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| {
            let message = strip_position(&e.to_string());
            let (line, column) = value_position(text, (e.line(), e.column()), &message);
            ConfigError {
                line,
                column,
                message,
            }
        })
    }

    /// What a missing file means: DHCP everywhere, sshd on (with no keys,
    /// nobody can log in).
    pub fn default_config() -> Self {
        Self {
            dhcp: true,
            ..Self::default()
        }
    }

    /// The file as `terra config` writes it: pretty JSON.
    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// `/etc/resolv.conf` for the configured name servers, if any.
    pub fn resolv_conf(&self) -> Option<String> {
        if self.dns.is_empty() {
            return None;
        }
        let mut s = String::from("# written by terra-init from config/machine.json\n");
        for ns in &self.dns {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        Some(s)
    }
}

/// Where the config stage 2 uses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `config/machine.json`, which was good (and becomes the last good one).
    File,
    /// The file was bad or unreadable: the last good one.
    LastGood,
    /// No file (or a bad one and no last good one): the defaults.
    Defaults,
}

/// The config stage 2 uses at boot, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub config: MachineConfig,
    pub origin: Origin,
    /// What was wrong with the file, for the log.
    pub problem: Option<String>,
}

/// Chooses the config at boot from the file (`Ok(None)` when missing,
/// `Err` when unreadable) and the last good copy: a good file wins; a bad
/// one is reported and the last good one used; a missing file means the
/// defaults (the file was removed on purpose).
pub fn choose(file: Result<Option<&str>, String>, last_good: Option<&str>) -> Chosen {
    let problem = match file {
        Ok(None) => {
            return Chosen {
                config: MachineConfig::default_config(),
                origin: Origin::Defaults,
                problem: None,
            }
        }
        Ok(Some(text)) => match MachineConfig::parse(text) {
            Ok(config) => {
                return Chosen {
                    config,
                    origin: Origin::File,
                    problem: None,
                }
            }
            Err(e) => format!("{MACHINE_CONFIG}: {e}"),
        },
        Err(e) => format!("{MACHINE_CONFIG}: {e}"),
    };
    match last_good.map(MachineConfig::parse) {
        Some(Ok(config)) => Chosen {
            config,
            origin: Origin::LastGood,
            problem: Some(problem),
        },
        Some(Err(e)) => Chosen {
            config: MachineConfig::default_config(),
            origin: Origin::Defaults,
            problem: Some(format!("{problem}; {LAST_GOOD} is bad too: {e}")),
        },
        None => Chosen {
            config: MachineConfig::default_config(),
            origin: Origin::Defaults,
            problem: Some(problem),
        },
    }
}

/// Where the refused value ends. serde_json reports a value refused inside
/// a list at the list's end (`]`), which may be lines later; our checked
/// types say `found "VALUE"`, so the value is looked for backwards from
/// there and its own line given.
fn value_position(text: &str, (line, column): (usize, usize), message: &str) -> (usize, usize) {
    let Some(found) = message
        .rsplit_once(", found ")
        .and_then(|(_, f)| serde_json::from_str::<String>(f).ok())
    else {
        return (line, column);
    };
    let Ok(quoted) = serde_json::to_string(&found) else {
        return (line, column);
    };
    // The byte offset of serde_json's position (line and column are 1-based).
    let offset: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column;
    let Some(start) = text
        .get(..offset.min(text.len()))
        .and_then(|t| t.rfind(&quoted))
    else {
        return (line, column);
    };
    let end = start + quoted.len();
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = end - before.rfind('\n').map_or(0, |i| i + 1);
    (line, column)
}

/// serde_json appends " at line L column C", which our error says first.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Declares a string type whose `Deserialize` checks it with `$check`
/// (which returns what was expected on failure).
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), &'static str> = $check;
                match check(&s) {
                    Ok(()) => Ok(Self(s)),
                    Err(expected) => Err(format!("expected {expected}, found {s:?}")),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// 1-63 bytes of letters, digits and `-` per label, dots between labels.
    Hostname,
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if ok {
            Ok(())
        } else {
            Err("a host name (letters, digits and '-', labels of 1-63 separated by '.')")
        }
    }
);

checked_string!(
    /// An interface name as the kernel allows it (1-15 bytes, no `/`,
    /// whitespace or `:`).
    IfName,
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if ok {
            Ok(())
        } else {
            Err("an interface name like eth0 (1-15 characters, no '/' or ':')")
        }
    }
);

checked_string!(
    /// An IPv4 address with a prefix length: `10.0.2.50/24`.
    Cidr,
    |s| {
        let ok = s.split_once('/').is_some_and(|(a, p)| {
            a.parse::<Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32)
        });
        if ok {
            Ok(())
        } else {
            Err("an IPv4 address with a prefix length like 10.0.2.50/24")
        }
    }
);

checked_string!(
    /// A sysctl name: dot-separated words of letters, digits, `_` and `-`
    /// (no `/` or `..`, so it stays under `/proc/sys`).
    SysctlKey,
    |s| {
        let ok = !s.is_empty()
            && s.split('.').all(|w| {
                !w.is_empty()
                    && w
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if ok {
            Ok(())
        } else {
            Err("a sysctl name like net.ipv4.ip_forward")
        }
    }
);

checked_string!(
    /// A time server: a host name or IPv4 address, with an optional
    /// `:port` (1-65535; 123 when left out).
    NtpServer,
    |s| {
        const EXPECTED: &str = "a time server like pool.ntp.org or 10.0.2.2:123";
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
            return Err(EXPECTED);
        }
        if host.parse::<Ipv4Addr>().is_ok() {
            return Ok(());
        }
        // All digits and dots that is not an address is a typo, not a name.
        let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        match Hostname::try_from(host.to_string()) {
            Ok(_) if !numeric => Ok(()),
            _ => Err(EXPECTED),
        }
    }
);

impl NtpServer {
    /// `host:port`, with the NTP port when none was given.
    pub fn with_port(&self) -> String {
        if self.0.contains(':') {
            self.0.clone()
        } else {
            format!("{}:123", self.0)
        }
    }
}

/// The key types sshd accepts, as `authorized_keys` names them.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

checked_string!(
    /// One `authorized_keys` line: a key type, its base64 blob (which
    /// names the same type) and an optional comment; no options, no
    /// newlines.
    SshKey,
    |s| {
        let mut words = s.split_ascii_whitespace();
        let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
            return Err("a public key like \"ssh-ed25519 AAAAC3Nza… comment\"");
        };
        if s.contains(['\n', '\r']) || !KEY_TYPES.contains(&kind) {
            return Err("a public key like \"ssh-ed25519 AAAAC3Nza… comment\"");
        }
        // The blob starts with the type's name as a length-prefixed string.
        if key_blob_type(blob).as_deref() != Some(kind) {
            return Err("a base64 key blob that names the key's type");
        }
        Ok(())
    }
);

/// The key type named at the start of a base64 public key blob.
fn key_blob_type(blob: &str) -> Option<String> {
    // Decoding the first bytes is enough; hand-written because it is eight
    // lines and the init must stay small (no base64 crate there).
    let mut bytes = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in blob.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let name = bytes.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

#[cfg(test)]
#[path = "machine/tests.rs"]
mod tests;
