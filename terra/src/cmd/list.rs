//! `terra list`

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use terra_layout::Metadata;

use super::Global;

/// List installed versions: default, image, size, shared layers.
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
}

#[derive(Serialize)]
struct Listing {
    default: Option<String>,
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
        })
        .collect();
    Listing {
        default: meta.default.clone(),
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
        "{:<2}{:<16} {:>9} {:>6} {:>6}  {:<19} IMAGE",
        "", "NAME", "SIZE", "LAYERS", "SHARED", "DIGEST"
    );
    for r in listing.versions {
        let digest = r
            .digest
            .as_deref()
            .map(|d| &d[..d.len().min(19)])
            .unwrap_or("-");
        println!(
            "{:<2}{:<16} {:>8.1}M {:>6} {:>6}  {:<19} {}",
            if r.default { "*" } else { "" },
            r.name,
            r.size as f64 / 1e6,
            r.layers,
            r.shared_layers,
            digest,
            r.reference.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
