//! `terra list`

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use terra_layout::boot_state::Status;
use terra_layout::Metadata;

use super::Global;

/// List installed versions: default, boot state, image, size, shared layers.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    name: String,
    default: bool,
    reference: Option<String>,
    digest: Option<String>,
    size: u64,
    installed_at: u64,
    layers: usize,
    /// Layers this version shares with another installed version.
    shared_layers: usize,
    kernel: Option<String>,
    handoff: terra_layout::Handoff,
    boot: Boot,
}

/// A version's boot counting state, as `terra list --json` shows it.
#[derive(Serialize, Debug, PartialEq, Eq)]
struct Boot {
    /// `good`, `pending`, `failed` or `untried`.
    state: &'static str,
    /// Boots left to pass the health gate (pending only).
    #[serde(skip_serializing_if = "Option::is_none")]
    tries_left: Option<u32>,
    /// Why its last boot did not become good.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_failure: Option<String>,
    /// When stage 1 gave up on it, RFC 3339 (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_at: Option<String>,
}

impl Boot {
    fn of(b: &terra_layout::record::BootState) -> Self {
        let (state, tries_left, failed_at) = match b.status() {
            Status::Good => ("good", None, None),
            Status::Pending { tries_left } => ("pending", Some(tries_left), None),
            // Out of tries: stage 1 records the failure at the next boot.
            Status::Exhausted => ("pending", Some(0), None),
            Status::Failed { at, .. } => ("failed", None, Some(rfc3339(at))),
            Status::Untried => ("untried", None, None),
        };
        Boot {
            state,
            tries_left,
            last_failure: b.last_failure.clone(),
            failed_at,
        }
    }

    /// One cell of the text listing.
    fn cell(&self) -> String {
        match (self.state, self.tries_left, &self.failed_at) {
            ("pending", Some(n), _) => format!("pending ({n} left)"),
            ("failed", _, Some(at)) => format!("failed {at}"),
            (state, _, _) => state.to_string(),
        }
    }
}

fn rfc3339(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[derive(Serialize)]
struct Listing {
    default: Option<String>,
    /// Where a pending default falls back to (the last good default).
    fallback: Option<String>,
    versions: Vec<Row>,
}

fn rows(meta: &Metadata) -> Listing {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for r in meta.versions.values() {
        for l in &r.lowers {
            *uses.entry(l.as_str()).or_default() += 1;
        }
    }
    let versions = terra_grub::menu_order(meta)
        .into_iter()
        .map(|(name, r)| Row {
            name: name.to_string(),
            default: meta.default.as_deref() == Some(name),
            reference: r.image.as_ref().map(|i| i.reference.clone()),
            digest: r.image.as_ref().map(|i| i.digest.clone()),
            size: r.size,
            installed_at: r.installed_at,
            layers: r.lowers.len(),
            shared_layers: r.lowers.iter().filter(|l| uses[l.as_str()] > 1).count(),
            kernel: r.kernel.clone(),
            handoff: r.handoff.clone(),
            boot: Boot::of(&r.boot),
        })
        .collect();
    Listing {
        default: meta.default.clone(),
        fallback: meta.good_fallback().map(String::from),
        versions,
    }
}

pub fn run(g: &Global, a: ListArgs) -> Result<()> {
    let target = g.open(crate::target::Access::Read)?;
    let meta = Metadata::load(&target.part.metadata())?;
    let listing = rows(&meta);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    if listing.versions.is_empty() {
        println!("no versions installed");
        return Ok(());
    }
    println!(
        "{:<2}{:<16} {:<30} {:>9} {:>6} {:>6}  {:<19} IMAGE",
        "", "NAME", "STATE", "SIZE", "LAYERS", "SHARED", "DIGEST"
    );
    let mut failures = Vec::new();
    for r in listing.versions {
        let digest = r
            .digest
            .as_deref()
            .map(|d| &d[..d.len().min(19)])
            .unwrap_or("-");
        if let Some(why) = &r.boot.last_failure {
            failures.push(format!("{}: {why}", r.name));
        }
        println!(
            "{:<2}{:<16} {:<30} {:>8.1}M {:>6} {:>6}  {:<19} {}",
            if r.default { "*" } else { "" },
            r.name,
            r.boot.cell(),
            r.size as f64 / 1e6,
            r.layers,
            r.shared_layers,
            digest,
            r.reference.as_deref().unwrap_or("-")
        );
    }
    if let Some(f) = &listing.fallback {
        println!("\nfalls back to: {f}");
    }
    if !failures.is_empty() {
        println!("\nlast failures:");
        for f in failures {
            println!("  {f}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use terra_layout::record::BootState;

    #[test]
    fn boot_states_as_listed() {
        let cases = [
            (BootState::default(), "untried", "untried"),
            (
                BootState {
                    good: true,
                    ..BootState::default()
                },
                "good",
                "good",
            ),
            (
                BootState {
                    tries_left: Some(2),
                    ..BootState::default()
                },
                "pending",
                "pending (2 left)",
            ),
            (
                BootState {
                    tries_left: Some(0),
                    last_failure: Some("health gate: containerd not ready".into()),
                    failed_at: Some(1_764_441_600),
                    ..BootState::default()
                },
                "failed",
                "failed 2025-11-29T18:40:00Z",
            ),
        ];
        for (b, state, cell) in cases {
            let got = Boot::of(&b);
            assert_eq!((got.state, got.cell().as_str()), (state, cell), "{b:?}");
        }
    }
}
