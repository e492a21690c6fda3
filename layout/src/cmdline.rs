//! The `terra.*` parameters of the kernel command line.
//!
//! Parsing never fails: PID 1 must boot with whatever the boot loader gave
//! it. Garbage is kept in [`BootParams::problems`] so stage 1 can log it.
//! Writing ([`BootParams::render`], for the boot menu) refuses what parsing
//! would not read back, so the two sides cannot disagree.

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

/// The longest `terra.timeout=` taken (a day): more is a typo.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

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
                Ok(s) if (0.0..=MAX_TIMEOUT.as_secs_f64()).contains(&s) => {
                    self.timeout = Duration::from_secs_f64(s)
                }
                _ => self.problems.push(format!(
                    "{key}={v:?}: expected seconds (0 to {}); using {}",
                    MAX_TIMEOUT.as_secs(),
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

/// A value that [`BootParams::render`] cannot put on a command line so that
/// [`BootParams::parse`] reads it back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("{key}={value:?}: a double quote or a control character cannot be carried on a kernel command line")]
    Unquotable { key: &'static str, value: String },
    #[error("{key}= is empty; stage 1 would ignore it")]
    Empty { key: &'static str },
    #[error("{key}={value:?}: expected an absolute path")]
    RelativePath { key: &'static str, value: String },
    #[error("{key}: {timeout:?} is longer than the {max} seconds stage 1 accepts", max = MAX_TIMEOUT.as_secs())]
    Timeout {
        key: &'static str,
        timeout: Duration,
    },
}

impl BootParams {
    /// The command line words that ask stage 1 for these parameters, in the
    /// order of [`keys`], leaving out what equals the default. Parsing the
    /// result gives back `self` (without [`BootParams::unknown`] and
    /// [`BootParams::problems`], which only parsing fills; a timeout to the
    /// precision of an `f64` of seconds). A value with whitespace is quoted
    /// (`terra.label="my disk"`), as the kernel reads it.
    pub fn render(&self) -> Result<String, RenderError> {
        let mut words = Vec::new();
        let default = Self::default();
        if let Some(v) = &self.version {
            words.push(word(keys::VERSION, v)?);
        }
        if self.label != default.label {
            words.push(word(keys::LABEL, &self.label)?);
        }
        if let Some(v) = &self.device {
            words.push(word(keys::DEVICE, v)?);
        }
        if self.timeout != default.timeout {
            if self.timeout > MAX_TIMEOUT {
                return Err(RenderError::Timeout {
                    key: keys::TIMEOUT,
                    timeout: self.timeout,
                });
            }
            words.push(format!("{}={}", keys::TIMEOUT, self.timeout.as_secs_f64()));
        }
        if let Some(v) = &self.init {
            if !v.starts_with('/') {
                return Err(RenderError::RelativePath {
                    key: keys::INIT,
                    value: v.clone(),
                });
            }
            words.push(word(keys::INIT, v)?);
        }
        for (on, key) in [
            (self.debug, keys::DEBUG),
            (self.shell, keys::SHELL),
            (self.quiet, keys::QUIET),
        ] {
            if on {
                words.push(key.to_string());
            }
        }
        Ok(words.join(" "))
    }
}

/// `key=value`, quoted when the value has whitespace.
fn word(key: &'static str, value: &str) -> Result<String, RenderError> {
    if value.is_empty() {
        return Err(RenderError::Empty { key });
    }
    if value.contains(|c: char| c == '"' || c.is_control()) {
        return Err(RenderError::Unquotable {
            key,
            value: value.to_string(),
        });
    }
    if value.contains(char::is_whitespace) {
        Ok(format!("{key}=\"{value}\""))
    } else {
        Ok(format!("{key}={value}"))
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
    fn what_is_rendered_is_parsed_back() {
        let all = BootParams {
            version: Some("v5".into()),
            label: "TERRA2".into(),
            device: Some("/dev/vdb1".into()),
            timeout: Duration::from_millis(2500),
            init: Some("/bin/sh".into()),
            debug: true,
            shell: true,
            quiet: true,
            ..BootParams::default()
        };
        let table = [
            (BootParams::default(), ""),
            (
                BootParams {
                    version: Some("v1".into()),
                    ..BootParams::default()
                },
                "terra.version=v1",
            ),
            (
                BootParams {
                    label: "my disk".into(),
                    timeout: Duration::ZERO,
                    ..BootParams::default()
                },
                "terra.label=\"my disk\" terra.timeout=0",
            ),
            (
                all,
                "terra.version=v5 terra.label=TERRA2 terra.device=/dev/vdb1 \
                 terra.timeout=2.5 terra.init=/bin/sh terra.debug terra.shell quiet",
            ),
        ];
        for (p, want) in table {
            let text = p.render().unwrap();
            assert_eq!(text, want);
            assert_eq!(BootParams::parse(&text), p, "{text}");
            // Among the boot loader's own words, too.
            let line = format!("BOOT_IMAGE=/vmlinuz {text} console=ttyS0,115200");
            assert_eq!(BootParams::parse(&line), p, "{line}");
        }
    }

    #[test]
    fn refuses_to_render_what_would_not_parse_back() {
        let with = |f: fn(&mut BootParams)| {
            let mut p = BootParams::default();
            f(&mut p);
            p.render().unwrap_err()
        };
        let table = [
            (
                with(|p| p.version = Some(String::new())),
                RenderError::Empty { key: keys::VERSION },
            ),
            (
                with(|p| p.label = String::new()),
                RenderError::Empty { key: keys::LABEL },
            ),
            (
                with(|p| p.device = Some("a\"b".into())),
                RenderError::Unquotable {
                    key: keys::DEVICE,
                    value: "a\"b".into(),
                },
            ),
            (
                with(|p| p.version = Some("a\nterra.debug".into())),
                RenderError::Unquotable {
                    key: keys::VERSION,
                    value: "a\nterra.debug".into(),
                },
            ),
            (
                with(|p| p.init = Some("bin/sh".into())),
                RenderError::RelativePath {
                    key: keys::INIT,
                    value: "bin/sh".into(),
                },
            ),
            (
                with(|p| p.timeout = Duration::from_secs(86_401)),
                RenderError::Timeout {
                    key: keys::TIMEOUT,
                    timeout: Duration::from_secs(86_401),
                },
            ),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
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
