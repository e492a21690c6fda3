//! The `terra.*` parameters of the kernel command line.
//!
//! Parsing never fails: PID 1 must boot with whatever the boot loader gave
//! it. Garbage is kept in [`BootParams::problems`] so stage 1 can log it.

use std::time::Duration;

/// Every key Terra reads, in one place.
pub mod keys {
    pub const VERSION: &str = "terra.version";
    pub const LABEL: &str = "terra.label";
    pub const DEVICE: &str = "terra.device";
    pub const TIMEOUT: &str = "terra.timeout";
    pub const INIT: &str = "terra.init";
    pub const DEBUG: &str = "terra.debug";
    pub const SHELL: &str = "terra.shell";
    /// The kernel's own `quiet`: fewer lines on the console.
    pub const QUIET: &str = "quiet";
}

/// How long to wait for the partition when the command line does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the command line asks of stage 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// `terra.version=NAME`: the version to boot.
    pub version: Option<String>,
    /// `terra.label=LABEL`: the filesystem label to look for.
    pub label: String,
    /// `terra.device=/dev/vdb1`: which device to use when several carry the label.
    pub device: Option<String>,
    /// `terra.timeout=SECONDS`: how long to wait for the partition.
    pub timeout: Duration,
    /// `terra.init=PATH`: exec PATH in the new root instead of the supervisor.
    pub init: Option<String>,
    /// `terra.debug`: verbose log with step durations.
    pub debug: bool,
    /// `terra.shell`: rescue shell before switching root.
    pub shell: bool,
    /// `quiet`: log warnings and errors only on the console.
    pub quiet: bool,
    /// `terra.*` keys this build does not know (logged, not fatal).
    pub unknown: Vec<String>,
    /// Values that could not be used, with what was expected.
    pub problems: Vec<String>,
}

impl Default for BootParams {
    fn default() -> Self {
        Self {
            version: None,
            label: crate::partition::DEFAULT_LABEL.to_string(),
            device: None,
            timeout: DEFAULT_TIMEOUT,
            init: None,
            debug: false,
            shell: false,
            quiet: false,
            unknown: Vec::new(),
            problems: Vec::new(),
        }
    }
}

impl BootParams {
    /// Parses the contents of `/proc/cmdline`.
    pub fn parse(cmdline: &str) -> Self {
        let mut p = Self::default();
        for word in split_words(cmdline) {
            if word == "--" {
                break; // the rest belongs to the init's argv, not to us
            }
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(unquote(v))),
                None => (word.as_str(), None),
            };
            p.apply(key, value);
        }
        p
    }

    fn apply(&mut self, key: &str, value: Option<&str>) {
        match (key, value) {
            (keys::VERSION, Some(v)) => self.version = non_empty(v, key, &mut self.problems),
            (keys::LABEL, Some(v)) => {
                if let Some(v) = non_empty(v, key, &mut self.problems) {
                    self.label = v;
                }
            }
            (keys::DEVICE, Some(v)) => self.device = non_empty(v, key, &mut self.problems),
            (keys::INIT, Some(v)) => {
                if v.starts_with('/') {
                    self.init = Some(v.to_string());
                } else {
                    self.problems
                        .push(format!("{key}={v:?}: expected an absolute path; ignored"));
                }
            }
            (keys::TIMEOUT, Some(v)) => match v.parse::<f64>() {
                Ok(s) if (0.0..=86_400.0).contains(&s) => self.timeout = Duration::from_secs_f64(s),
                _ => self.problems.push(format!(
                    "{key}={v:?}: expected seconds (0 to 86400); using {}",
                    self.timeout.as_secs()
                )),
            },
            (keys::DEBUG, None) | (keys::DEBUG, Some("1" | "y" | "yes" | "true")) => {
                self.debug = true
            }
            (keys::SHELL, None) | (keys::SHELL, Some("1" | "y" | "yes" | "true")) => {
                self.shell = true
            }
            (keys::QUIET, None) => self.quiet = true,
            (k, _) if k.starts_with("terra.") => {
                let known = [
                    keys::VERSION,
                    keys::LABEL,
                    keys::DEVICE,
                    keys::INIT,
                    keys::TIMEOUT,
                    keys::DEBUG,
                    keys::SHELL,
                ];
                if known.contains(&k) {
                    let shown = value.map(|v| format!("={v}")).unwrap_or_default();
                    self.problems
                        .push(format!("{k}{shown}: unexpected form; ignored"));
                } else {
                    self.unknown.push(k.to_string());
                }
            }
            _ => {}
        }
    }
}

fn non_empty(v: &str, key: &str, problems: &mut Vec<String>) -> Option<String> {
    if v.is_empty() {
        problems.push(format!("{key}= is empty; ignored"));
        None
    } else {
        Some(v.to_string())
    }
}

/// Splits on whitespace, keeping double-quoted spans together, as the kernel
/// does (`key="a b"` is one parameter).
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_nothing_is_said() {
        let p = BootParams::parse("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro console=ttyS0\n");
        assert_eq!(p, BootParams::default());
        assert_eq!(p.label, "terra");
        assert_eq!(p.timeout, Duration::from_secs(30));
    }

    #[test]
    fn reads_every_key() {
        let p = BootParams::parse(
            "console=ttyS0 terra.version=v5 terra.label=TERRA2 terra.device=/dev/vdb1 \
             terra.timeout=2.5 terra.init=/bin/sh terra.debug terra.shell quiet",
        );
        assert_eq!(p.version.as_deref(), Some("v5"));
        assert_eq!(p.label, "TERRA2");
        assert_eq!(p.device.as_deref(), Some("/dev/vdb1"));
        assert_eq!(p.timeout, Duration::from_millis(2500));
        assert_eq!(p.init.as_deref(), Some("/bin/sh"));
        assert!(p.debug && p.shell && p.quiet);
        assert!(p.problems.is_empty() && p.unknown.is_empty());
    }

    #[test]
    fn last_one_wins_and_quotes_are_removed() {
        let p = BootParams::parse(r#"terra.version=a terra.version="b c""#);
        assert_eq!(p.version.as_deref(), Some("b c"));
    }

    #[test]
    fn arguments_after_double_dash_are_not_ours() {
        let p = BootParams::parse("terra.debug -- terra.version=x");
        assert!(p.debug);
        assert_eq!(p.version, None);
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        let table = [
            ("terra.timeout=soon", "expected seconds"),
            ("terra.timeout=-1", "expected seconds"),
            ("terra.timeout=NaN", "expected seconds"),
            ("terra.init=bin/sh", "absolute path"),
            ("terra.version=", "empty"),
            ("terra.label=", "empty"),
            ("terra.version", "unexpected form"),
            ("terra.debug=maybe", "unexpected form"),
        ];
        for (line, want) in table {
            let p = BootParams::parse(line);
            assert!(
                p.problems.iter().any(|m| m.contains(want)),
                "{line}: {:?} should mention {want:?}",
                p.problems
            );
            assert_eq!(p.timeout, DEFAULT_TIMEOUT, "{line}");
            assert_eq!(p.label, "terra", "{line}");
        }
    }

    #[test]
    fn unknown_terra_keys_are_collected() {
        let p = BootParams::parse("terra.frobnicate=1 terra.x foo=bar");
        assert_eq!(p.unknown, ["terra.frobnicate", "terra.x"]);
    }

    #[test]
    fn survives_arbitrary_bytes() {
        for s in [
            "",
            "   ",
            "\"",
            "=",
            "==",
            "terra.=",
            "\u{0}\u{7f}\u{fffd}",
            "\"terra.debug\"",
        ] {
            let _ = BootParams::parse(s);
        }
        let p = BootParams::parse("a=\"unterminated terra.debug");
        assert!(!p.debug, "inside an open quote");
    }
}
