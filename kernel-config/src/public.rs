//! The public side of the KSPP score: kernel-hardening-checker's verdict on
//! the full .config, recorded in `khc-kspp.toml` by `scripts/khc-record`
//! (the tool is in neither Debian nor PyPI here, so tests read the record),
//! and where our checker disagrees with it.

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::checks::{CheckList, Outcome};

/// The recorded verdict shipped in the repository.
pub const KHC_RECORD: &str = include_str!("../khc-kspp.toml");

/// kernel-hardening-checker's `kspp` checks on one .config, in its order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// `kernel-hardening-checker X.Y.Z` (its `--version`).
    pub tool: String,
    /// The tool's git commit.
    pub commit: String,
    /// The kernel release of the .config it checked.
    pub kernel: String,
    /// `met/total`, as the tool counted.
    pub score: String,
    #[serde(rename = "item")]
    pub items: Vec<Item>,
}

/// One public check and how it came out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Option name without `CONFIG_` (the first option of a compound check).
    pub config: String,
    /// The tool's wanted value: `y`, `is not set`, a value, `*TEXT*`.
    pub want: String,
    /// `OK…` or `FAIL…`, with the tool's detail.
    pub result: String,
}

impl Item {
    pub fn ok(&self) -> bool {
        self.result.starts_with("OK")
    }
}

impl Record {
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).context("parsing the kernel-hardening-checker record")
    }

    /// Items the tool passed.
    pub fn met(&self) -> usize {
        self.items.iter().filter(|i| i.ok()).count()
    }
}

/// Every way `list` (evaluated as `outcomes`) and the public record differ:
/// an item missing on one side, another wanted value, another verdict.
/// Empty when both lists name the same items in the same order and agree
/// on each.
pub fn disagreements(list: &CheckList, outcomes: &[Outcome], record: &Record) -> Vec<String> {
    let mut out = Vec::new();
    let count = list.checks.len().max(record.items.len());
    for i in 0..count {
        let ours = list.checks.get(i).zip(outcomes.get(i));
        match (ours, record.items.get(i)) {
            (Some((check, outcome)), Some(item)) => {
                let want = if check.want == "n" {
                    "is not set"
                } else {
                    check.want.as_str()
                };
                if check.config != item.config || want != item.want {
                    out.push(format!(
                        "item {}: ours CONFIG_{}={want}, the public list CONFIG_{}={}",
                        i + 1,
                        check.config,
                        item.config,
                        item.want
                    ));
                } else if outcome.met() != item.ok() {
                    out.push(format!(
                        "CONFIG_{}={want}: ours {}, the public check {}",
                        check.config,
                        if outcome.met() { "met" } else { "missed" },
                        item.result
                    ));
                }
            }
            (Some((check, _)), None) => out.push(format!(
                "CONFIG_{}: only in kspp.toml (item {})",
                check.config,
                i + 1
            )),
            (None, Some(item)) => out.push(format!(
                "CONFIG_{}={}: only in the public list (item {})",
                item.config,
                item.want,
                i + 1
            )),
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::evaluate;
    use crate::kconfig::KernelConfig;

    const LIST: &str = r#"
[sources]
kspp = "https://kspp.github.io/Recommended_Settings"

[[check]]
config = "BUG"
want = "y"
source = "kspp"
why = "w"

[[check]]
config = "INET_DIAG"
want = "n"
source = "kspp"
why = "w"
exception = "CRIU"
"#;

    fn record(results: [&str; 2]) -> Record {
        Record::parse(&format!(
            "tool = \"t\"\ncommit = \"c\"\nkernel = \"6.12\"\nscore = \"1/2\"\n\
             [[item]]\nconfig = \"BUG\"\nwant = \"y\"\nresult = \"{}\"\n\
             [[item]]\nconfig = \"INET_DIAG\"\nwant = \"is not set\"\nresult = \"{}\"\n",
            results[0], results[1]
        ))
        .unwrap()
    }

    #[test]
    fn agree_when_items_and_verdicts_match() {
        let list = CheckList::parse(LIST).unwrap();
        let config = KernelConfig::parse("CONFIG_BUG=y\nCONFIG_INET_DIAG=y\n");
        let outcomes = evaluate(&list, &config);
        let rec = record(["OK", "FAIL: \\\"y\\\""]);
        assert_eq!(rec.met(), 1);
        assert!(disagreements(&list, &outcomes, &rec).is_empty());
    }

    #[test]
    fn a_different_verdict_wanted_value_or_item_is_reported() {
        let list = CheckList::parse(LIST).unwrap();
        let config = KernelConfig::parse("CONFIG_BUG=y\nCONFIG_INET_DIAG=y\n");
        let outcomes = evaluate(&list, &config);
        let d = disagreements(&list, &outcomes, &record(["OK", "OK"]));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("INET_DIAG") && d[0].contains("ours missed"),
            "{d:?}"
        );

        let other_want = LIST.replace("want = \"n\"", "want = \"y\"");
        let list = CheckList::parse(&other_want).unwrap();
        let outcomes = evaluate(&list, &config);
        let d = disagreements(&list, &outcomes, &record(["OK", "FAIL"]));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("public list CONFIG_INET_DIAG=is not set"),
            "{d:?}"
        );

        let one = LIST
            .split("[[check]]\nconfig = \"INET_DIAG\"")
            .next()
            .unwrap();
        let list = CheckList::parse(one).unwrap();
        let outcomes = evaluate(&list, &config);
        let d = disagreements(&list, &outcomes, &record(["OK", "FAIL"]));
        assert_eq!(
            d,
            vec!["CONFIG_INET_DIAG=is not set: only in the public list (item 2)"]
        );
    }

    #[test]
    fn agrees_with_the_public_list_on_a_clang_build() {
        // The fragment configured with clang-16 (fixtures/): the checks that
        // depend on the compiler come out the other way than on Terra's GCC
        // build, so the list's `also` and `or` are checked where they matter.
        let config = KernelConfig::parse(include_str!("../fixtures/clang-6.12.config"));
        let record = Record::parse(include_str!("../fixtures/clang-6.12.khc.toml")).unwrap();
        let list = CheckList::parse(crate::checks::KSPP).unwrap();
        let outcomes = evaluate(&list, &config);
        let differ = disagreements(&list, &outcomes, &record);
        assert!(differ.is_empty(), "{differ:#?}");
        let met = outcomes.iter().filter(|o| o.met()).count();
        assert_eq!(format!("{met}/{}", outcomes.len()), record.score);
    }

    #[test]
    fn shipped_record_parses_and_matches_the_shipped_list_item_by_item() {
        let rec = Record::parse(KHC_RECORD).unwrap();
        let list = CheckList::parse(crate::checks::KSPP).unwrap();
        assert_eq!(rec.items.len(), list.checks.len());
        assert_eq!(rec.score, format!("{}/{}", rec.met(), rec.items.len()));
    }
}
