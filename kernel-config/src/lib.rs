//! `terra-kconfig`: checks a full kernel `.config` against the two lists kept
//! as data next to the Terra config fragment:
//!
//! - `kspp.toml`: the KSPP recommendations for x86_64, scored (Terra's bar:
//!   at least [`KSPP_BAR`] percent met, every miss explained);
//! - `containers.toml`: what Docker's `check-config.sh`, containerd, runc,
//!   the CNI plugins, CRIU and Terra's own boot need (none may be missing).
//!
//! [`kconfig`] reads `.config` files; [`checks`] evaluates the lists;
//! [`Report`] puts both together and says whether the config passes.

pub mod checks;
pub mod kconfig;
pub mod public;

use std::fmt::Write as _;

use anyhow::Result;

use checks::{evaluate, CheckList, Outcome, Score, Status};
use kconfig::KernelConfig;

/// The lowest KSPP score Terra accepts, in percent.
pub const KSPP_BAR: f64 = 90.0;

/// Both lists evaluated on one config.
pub struct Report<'a> {
    pub kspp: Vec<Outcome<'a>>,
    pub containers: Vec<Outcome<'a>>,
}

impl<'a> Report<'a> {
    pub fn new(kspp: &'a CheckList, containers: &'a CheckList, config: &KernelConfig) -> Self {
        Self {
            kspp: evaluate(kspp, config),
            containers: evaluate(containers, config),
        }
    }

    pub fn kspp_score(&self) -> Score {
        Score::of(&self.kspp)
    }

    pub fn container_score(&self) -> Score {
        Score::of(&self.containers)
    }

    /// Why the config does not pass (empty when it does).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let kspp = self.kspp_score();
        if kspp.percent() < KSPP_BAR {
            failures.push(format!(
                "KSPP score {:.1}% is under {KSPP_BAR}%",
                kspp.percent()
            ));
        }
        let unexplained = |outcomes: &[Outcome]| -> Vec<String> {
            outcomes
                .iter()
                .filter(|o| !o.met() && o.check.exception.is_none())
                .map(|o| format!("CONFIG_{}", o.check.config))
                .collect()
        };
        let kspp_unexplained = unexplained(&self.kspp);
        if !kspp_unexplained.is_empty() {
            failures.push(format!(
                "KSPP misses without an exception: {}",
                kspp_unexplained.join(" ")
            ));
        }
        let required: Vec<String> = self
            .containers
            .iter()
            .filter(|o| !o.met() && o.check.required)
            .map(|o| format!("CONFIG_{}", o.check.config))
            .collect();
        if !required.is_empty() {
            failures.push(format!(
                "container requirements missing: {}",
                required.join(" ")
            ));
        }
        let optional = unexplained(&self.containers);
        let optional: Vec<_> = optional
            .into_iter()
            .filter(|o| !required.contains(o))
            .collect();
        if !optional.is_empty() {
            failures.push(format!(
                "optional container features missing without an exception: {}",
                optional.join(" ")
            ));
        }
        let stale: Vec<String> = self
            .kspp
            .iter()
            .chain(&self.containers)
            .filter(|o| o.met() && o.check.exception.is_some())
            .map(|o| format!("CONFIG_{}", o.check.config))
            .collect();
        if !stale.is_empty() {
            failures.push(format!(
                "met items that still carry an exception (update the list): {}",
                stale.join(" ")
            ));
        }
        failures
    }

    /// The report for people: scores, every miss with its reason, and (with
    /// `verbose`) every met item.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let k = self.kspp_score();
        let _ = writeln!(
            out,
            "KSPP recommendations (x86_64): {}/{} met ({:.1}%, bar {KSPP_BAR}%)",
            k.met,
            k.total,
            k.percent()
        );
        render_outcomes(&mut out, &self.kspp, verbose);
        let c = self.container_score();
        let required = self.containers.iter().filter(|o| o.check.required).count();
        let _ = writeln!(
            out,
            "Container host requirements: {}/{} required met, {} missing; {}/{} in all",
            required - c.required_missed,
            required,
            c.required_missed,
            c.met,
            c.total
        );
        render_outcomes(&mut out, &self.containers, verbose);
        let failures = self.failures();
        if failures.is_empty() {
            let _ = writeln!(out, "result: PASS");
        } else {
            for f in &failures {
                let _ = writeln!(out, "result: FAIL: {f}");
            }
        }
        out
    }
}

fn render_outcomes(out: &mut String, outcomes: &[Outcome], verbose: bool) {
    for o in outcomes {
        let c = o.check;
        let name = format!("CONFIG_{}", c.config);
        let tag = if c.required { "" } else { " (optional)" };
        let _ = match &o.status {
            Status::Met if c.exception.is_some() => writeln!(
                out,
                "  met      {name}={} [{}]: has an exception but is met: drop the exception",
                c.want, c.source
            ),
            Status::Met if verbose => writeln!(out, "  met      {name}={} [{}]", c.want, c.source),
            Status::MetBy(alt) if verbose => {
                writeln!(out, "  met      {name} by CONFIG_{alt} [{}]", c.source)
            }
            Status::Met | Status::MetBy(_) => Ok(()),
            Status::Missed(have) => writeln!(
                out,
                "  MISSED{tag} {name}: want {}, have {} [{}] ({})\n           Terra: {}",
                c.want,
                have.as_deref().unwrap_or("absent"),
                c.source,
                c.why,
                c.exception.as_deref().unwrap_or("NO EXCEPTION GIVEN")
            ),
        };
    }
}

/// Evaluates the shipped lists on the `.config` text and renders the report;
/// `Ok(true)` when it passes.
pub fn check_text(config: &str, verbose: bool) -> Result<(String, bool)> {
    let kspp = CheckList::parse(checks::KSPP)?;
    let containers = CheckList::parse(checks::CONTAINERS)?;
    let config = KernelConfig::parse(config);
    let report = Report::new(&kspp, &containers, &config);
    Ok((report.render(verbose), report.failures().is_empty()))
}
