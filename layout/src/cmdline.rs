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
mod tests;
