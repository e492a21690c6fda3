//! The requirement lists (`kspp.toml`, `containers.toml`) and their evaluation.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::kconfig::KernelConfig;

/// The KSPP x86_64 recommendations shipped in the repository.
pub const KSPP: &str = include_str!("../kspp.toml");
/// The container host requirements shipped in the repository.
pub const CONTAINERS: &str = include_str!("../containers.toml");

/// One list: where its items come from, and the items.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckList {
    /// Source key (used by each check) to a citation (URL and what part).
    pub sources: BTreeMap<String, String>,
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
}

/// One requirement on one option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Option name without `CONFIG_`.
    pub config: String,
    /// `y`, `n` ("is not set", or absent), or an exact value.
    pub want: String,
    /// Alternatives that satisfy this check too, each `NAME=VALUE` or a
    /// conjunction `A=x & B=y` (e.g. `DEVMEM=n` for `STRICT_DEVMEM=y`).
    #[serde(default, rename = "or")]
    pub alternatives: Vec<String>,
    /// Conditions that must hold as well for `config=want` to count, as
    /// `NAME=VALUE` (kernel-hardening-checker's AND: e.g. `CFI_CLANG=y`
    /// counts only with `CC_IS_CLANG=y`). Alternatives stand on their own.
    #[serde(default)]
    pub also: Vec<String>,
    /// A key of [`CheckList::sources`].
    pub source: String,
    /// Why the source asks for it.
    pub why: String,
    /// Why Terra leaves it out, when it does.
    pub exception: Option<String>,
    /// Whether a miss fails the check (container list; KSPP items are scored).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl CheckList {
    /// Parses a list and checks that every source is cited and every
    /// alternative is `NAME=VALUE`.
    pub fn parse(text: &str) -> Result<Self> {
        let list: CheckList = toml::from_str(text).context("parsing the check list")?;
        for c in &list.checks {
            if !list.sources.contains_key(&c.source) {
                bail!(
                    "check {}: source {:?} is not in [sources]",
                    c.config,
                    c.source
                );
            }
            let malformed = |term: &str| !term.contains('=') || term.trim().starts_with('=');
            if let Some(alt) = c.alternatives.iter().find(|a| a.split('&').any(malformed)) {
                bail!(
                    "check {}: alternative {alt:?} is not NAME=VALUE (or A=x & B=y)",
                    c.config
                );
            }
            if let Some(cond) = c.also.iter().find(|a| malformed(a) || a.contains('&')) {
                bail!(
                    "check {}: `also` entry {cond:?} is not NAME=VALUE",
                    c.config
                );
            }
        }
        Ok(list)
    }
}

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The option has the wanted value.
    Met,
    /// One of the alternatives holds (the text names it).
    MetBy(String),
    /// Neither; carries what the config has (`None`: absent).
    Missed(Option<String>),
}

/// A check and its status.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub check: &'a Check,
    pub status: Status,
}

impl Outcome<'_> {
    pub fn met(&self) -> bool {
        !matches!(self.status, Status::Missed(_))
    }
}

/// Evaluates every check of `list` on `config`, in list order.
pub fn evaluate<'a>(list: &'a CheckList, config: &KernelConfig) -> Vec<Outcome<'a>> {
    list.checks
        .iter()
        .map(|check| {
            let main = config.satisfies(&check.config, &check.want)
                && check.also.iter().all(|cond| config.satisfies_all(cond));
            let status = if main {
                Status::Met
            } else if let Some(alt) = check
                .alternatives
                .iter()
                .find(|alt| config.satisfies_all(alt))
            {
                Status::MetBy(alt.clone())
            } else {
                Status::Missed(config.get(&check.config).map(str::to_string))
            };
            Outcome { check, status }
        })
        .collect()
}

/// Counts of one evaluated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub met: usize,
    pub total: usize,
    /// Misses of required items.
    pub required_missed: usize,
    /// Misses that carry no `exception`.
    pub unexplained: usize,
    /// Met items that still carry an `exception` (the list is out of date).
    pub stale_exceptions: usize,
}

impl Score {
    pub fn of(outcomes: &[Outcome]) -> Self {
        let missed = || outcomes.iter().filter(|o| !o.met());
        Score {
            met: outcomes.iter().filter(|o| o.met()).count(),
            total: outcomes.len(),
            required_missed: missed().filter(|o| o.check.required).count(),
            unexplained: missed().filter(|o| o.check.exception.is_none()).count(),
            stale_exceptions: outcomes
                .iter()
                .filter(|o| o.met() && o.check.exception.is_some())
                .count(),
        }
    }

    /// Met items in percent of all items.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        self.met as f64 * 100.0 / self.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"
[sources]
kspp = "https://kspp.github.io/Recommended_Settings"

[[check]]
config = "BUG"
want = "y"
source = "kspp"
why = "report BUG()"

[[check]]
config = "STRICT_DEVMEM"
want = "y"
or = ["DEVMEM=n"]
source = "kspp"
why = "strict /dev/mem"

[[check]]
config = "INET_DIAG"
want = "n"
source = "kspp"
why = "old heap attacks"
exception = "CRIU needs it"

[[check]]
config = "WERROR"
want = "y"
source = "kspp"
why = "warnings"
required = false
"#;

    #[test]
    fn evaluates_values_alternatives_and_misses() {
        let list = CheckList::parse(LIST).unwrap();
        let config =
            KernelConfig::parse("CONFIG_BUG=y\n# CONFIG_DEVMEM is not set\nCONFIG_INET_DIAG=y\n");
        let out = evaluate(&list, &config);
        let statuses: Vec<_> = out.iter().map(|o| o.status.clone()).collect();
        assert_eq!(
            statuses,
            vec![
                Status::Met,
                Status::MetBy("DEVMEM=n".into()),
                Status::Missed(Some("y".into())),
                Status::Missed(None),
            ]
        );
        let score = Score::of(&out);
        assert_eq!((score.met, score.total), (2, 4));
        assert_eq!(score.required_missed, 1);
        assert_eq!(score.unexplained, 1);
        assert_eq!(score.stale_exceptions, 0);
        assert_eq!(score.percent(), 50.0);
    }

    #[test]
    fn also_conditions_and_conjunctions() {
        let list = CheckList::parse(
            r#"
[sources]
khc = "https://github.com/a13xp0p0v/kernel-hardening-checker"

[[check]]
config = "CFI_CLANG"
want = "y"
also = ["CC_IS_CLANG=y"]
source = "khc"
why = "kCFI"

[[check]]
config = "UBSAN_SANITIZE_ALL"
want = "y"
or = ["UBSAN_BOUNDS=y & UBSAN_SANITIZE_ALL=absent"]
source = "khc"
why = "default since 6.9"
"#,
        )
        .unwrap();
        // CFI_CLANG=y without clang does not count; the alternative holds.
        let gcc = KernelConfig::parse("CONFIG_CFI_CLANG=y\nCONFIG_UBSAN_BOUNDS=y\n");
        let met: Vec<bool> = evaluate(&list, &gcc).iter().map(Outcome::met).collect();
        assert_eq!(met, vec![false, true]);
        let clang = KernelConfig::parse("CONFIG_CFI_CLANG=y\nCONFIG_CC_IS_CLANG=y\n");
        let met: Vec<bool> = evaluate(&list, &clang).iter().map(Outcome::met).collect();
        assert_eq!(met, vec![true, false]);
        let bad = "[sources]\nk = \"https://x\"\n[[check]]\nconfig = \"A\"\nwant = \"y\"\nor = [\"B=y & C\"]\nsource = \"k\"\nwhy = \"w\"\n";
        assert!(CheckList::parse(bad).is_err());
    }

    #[test]
    fn refuses_unknown_sources_and_fields() {
        let bad_source = LIST.replace(
            "source = \"kspp\"\nwhy = \"warnings\"",
            "source = \"blog\"\nwhy = \"w\"",
        );
        assert!(CheckList::parse(&bad_source).is_err());
        let bad_field = LIST.replace("why = \"report BUG()\"", "why = \"x\"\nreason = \"y\"");
        assert!(CheckList::parse(&bad_field).is_err());
    }

    #[test]
    fn shipped_lists_parse() {
        let kspp = CheckList::parse(KSPP).unwrap();
        let containers = CheckList::parse(CONTAINERS).unwrap();
        assert!(kspp.checks.len() > 80, "{}", kspp.checks.len());
        assert!(containers.checks.iter().any(|c| c.config == "WIREGUARD"));
        // Every source is cited: a URL, or for Terra's own needs the issue.
        for list in [&kspp, &containers] {
            assert!(list
                .sources
                .values()
                .all(|s| s.contains("https://") || s.starts_with("Terra issue")));
        }
    }
}
