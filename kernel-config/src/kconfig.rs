//! Reading a kernel `.config` and a config fragment.

use std::collections::BTreeMap;

/// A full kernel `.config`: option name (without `CONFIG_`) to value.
///
/// `# CONFIG_X is not set` is stored as `n`, like kconfig itself treats it;
/// string values keep their quotes (`"sha512"`), as in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses the text of a `.config` (or a fragment: same syntax).
    /// Comments other than `is not set` and malformed lines are ignored.
    pub fn parse(text: &str) -> Self {
        let values = parse_lines(text).collect();
        Self { values }
    }

    /// The value of `name` (`BUG`, not `CONFIG_BUG`): `Some("y")`,
    /// `Some("n")` for "is not set", `None` when the option is absent (its
    /// dependencies are off, or this kernel does not have it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `name` has the wanted value. `n` is also met by an absent
    /// option: an option that cannot be turned on is off. Three forms say
    /// what kernel-hardening-checker's checks say: `present` (any value,
    /// "is not set" included), `absent` (this kernel has no such option:
    /// the public list's "dropped in version X" checks) and `*TEXT*` (a
    /// string value containing TEXT, e.g. `LSM` containing `lockdown`).
    pub fn satisfies(&self, name: &str, want: &str) -> bool {
        let have = self.get(name);
        match want {
            "present" => return have.is_some(),
            "absent" => return have.is_none(),
            _ => {}
        }
        if let Some(text) = want
            .strip_prefix('*')
            .and_then(|w| w.strip_suffix('*'))
            .filter(|t| !t.is_empty())
        {
            return have.is_some_and(|h| h.trim_matches('"').contains(text));
        }
        match (have, want) {
            (None, "n") => true,
            (Some(have), want) => have == want,
            (None, _) => false,
        }
    }

    /// Whether every `NAME=VALUE` of a conjunction `A=x & B=y` holds.
    pub fn satisfies_all(&self, conjunction: &str) -> bool {
        conjunction.split('&').all(|term| {
            let term = term.trim();
            let (name, want) = term.split_once('=').unwrap_or((term, "y"));
            self.satisfies(name.trim(), want.trim())
        })
    }

    /// Every option with its value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `(name, value)` for each `CONFIG_X=V` and `# CONFIG_X is not set` line.
fn parse_lines(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            let name = rest.strip_suffix(" is not set")?;
            return Some((name.to_string(), "n".to_string()));
        }
        let (name, value) = line.strip_prefix("CONFIG_")?.split_once('=')?;
        Some((name.to_string(), value.to_string()))
    })
}

/// The lines of `fragment` that `config` does not honour, as
/// `(name, wanted, actual)`: kconfig silently drops a value whose
/// dependencies are unmet, so a fragment can say more than the kernel does.
pub fn dropped_lines(
    fragment: &KernelConfig,
    config: &KernelConfig,
) -> Vec<(String, String, Option<String>)> {
    fragment
        .iter()
        .filter(|(name, want)| !config.satisfies(name, want))
        .map(|(name, want)| {
            (
                name.to_string(),
                want.to_string(),
                config.get(name).map(str::to_string),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
#
# Automatically generated file; DO NOT EDIT.
CONFIG_BUG=y
# CONFIG_MODULES is not set
CONFIG_PANIC_TIMEOUT=-1
CONFIG_LSM=\"landlock,yama\"
CONFIG_BROKEN
";

    #[test]
    fn parses_values_not_set_and_strings() {
        let c = KernelConfig::parse(SAMPLE);
        assert_eq!(c.get("BUG"), Some("y"));
        assert_eq!(c.get("MODULES"), Some("n"));
        assert_eq!(c.get("PANIC_TIMEOUT"), Some("-1"));
        assert_eq!(c.get("LSM"), Some("\"landlock,yama\""));
        assert_eq!(c.get("BROKEN"), None);
        assert_eq!(c.iter().count(), 4);
    }

    #[test]
    fn absent_counts_as_off_only() {
        let c = KernelConfig::parse(SAMPLE);
        assert!(c.satisfies("DEVMEM", "n"));
        assert!(!c.satisfies("DEVMEM", "y"));
        assert!(c.satisfies("MODULES", "n"));
        assert!(!c.satisfies("BUG", "n"));
    }

    #[test]
    fn present_absent_contains_and_conjunctions() {
        let c = KernelConfig::parse(SAMPLE);
        assert!(c.satisfies("MODULES", "present"));
        assert!(!c.satisfies("MODULES", "absent"));
        assert!(c.satisfies("DEVMEM", "absent"));
        assert!(!c.satisfies("DEVMEM", "present"));
        assert!(c.satisfies("LSM", "*yama*"));
        assert!(!c.satisfies("LSM", "*lockdown*"));
        assert!(!c.satisfies("DEVMEM", "*yama*"));
        assert!(c.satisfies_all("BUG=y & MODULES=n & LSM=*landlock*"));
        assert!(!c.satisfies_all("BUG=y & MODULES=y"));
    }

    #[test]
    fn reports_dropped_fragment_lines() {
        let fragment =
            KernelConfig::parse("CONFIG_BUG=y\nCONFIG_BPF_JIT=y\n# CONFIG_KEXEC is not set\n");
        let config = KernelConfig::parse(SAMPLE);
        assert_eq!(
            dropped_lines(&fragment, &config),
            vec![("BPF_JIT".to_string(), "y".to_string(), None)]
        );
    }
}
