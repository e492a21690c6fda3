//! Terra's own figures in the Prometheus text format, for the node
//! exporter's textfile collector (`terra metrics`, docs/services.md): the
//! boot timeline (stage 1's `/run/terra/boot.json`), each service's
//! readiness (stage 2's `/run/terra/ready/NAME.json`), the booted version's
//! name and manifest digest, and its boot-counting state.
//!
//! Rendering is a pure function of what was read, so every metric is
//! unit-tested; [`read`] gathers the inputs and tolerates what is missing
//! (a root booted without stage 2 has no ready records).

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use terra_layout::boot_state::Status;
use terra_layout::Metadata;

/// Stage 1's timeline, as init writes it (the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Timeline {
    #[serde(default)]
    pub uptime_at_start_ms: f64,
    #[serde(default)]
    pub total_ms: f64,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub version: Option<String>,
    /// `requested`, `default`, `newest`, `fallback` or `last resort`.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub name: String,
    pub start_ms: f64,
    pub duration_ms: f64,
}

/// One service's readiness, as stage 2 records it.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub service: String,
    pub ready_uptime_s: f64,
    pub start_to_ready_ms: u64,
}

/// Everything the metrics are made of.
#[derive(Debug, Default)]
pub struct Inputs {
    pub timeline: Option<Timeline>,
    pub ready: Vec<Ready>,
    pub metadata: Option<Metadata>,
}

/// Reads the inputs; a missing or unreadable one is left out (and logged),
/// so that the exporter still gets the rest.
pub fn read(boot_json: &Path, ready_dir: &Path, metadata: &Path) -> Inputs {
    let timeline = read_json::<Timeline>(boot_json);
    let mut ready: Vec<Ready> = match std::fs::read_dir(ready_dir) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| read_json(&p))
            .collect(),
        Err(_) => Vec::new(),
    };
    ready.sort_by(|a, b| a.service.cmp(&b.service));
    let metadata = match Metadata::load(metadata) {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!("{}: {e}", metadata.display());
            None
        }
    };
    Inputs {
        timeline,
        ready,
        metadata,
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| log::warn!("{}: {e}", path.display()))
        .ok()?;
    serde_json::from_str(&text)
        .map_err(|e| log::warn!("{}: {e}", path.display()))
        .ok()
}

/// The states `terra_boot_state` reports, one series each.
const STATES: [&str; 4] = ["good", "pending", "failed", "untried"];

/// The Prometheus text exposition of `inputs`.
pub fn render(inputs: &Inputs) -> String {
    let mut out = String::new();
    if let Some(t) = &inputs.timeline {
        let init_start = t.uptime_at_start_ms / 1000.0;
        header(
            &mut out,
            "terra_boot_init_start_seconds",
            "Kernel uptime when Terra's init started.",
        );
        sample(&mut out, "terra_boot_init_start_seconds", &[], init_start);
        header(
            &mut out,
            "terra_boot_stage1_seconds",
            "Stage 1 from init's start to the handoff.",
        );
        sample(
            &mut out,
            "terra_boot_stage1_seconds",
            &[],
            t.total_ms / 1000.0,
        );
        header(
            &mut out,
            "terra_boot_step_seconds",
            "How long each step of stage 1 took.",
        );
        for s in &t.steps {
            let labels = [("step", s.name.as_str())];
            sample(
                &mut out,
                "terra_boot_step_seconds",
                &labels,
                s.duration_ms / 1000.0,
            );
        }
        header(
            &mut out,
            "terra_boot_step_start_seconds",
            "Kernel uptime when each step of stage 1 started.",
        );
        for s in &t.steps {
            let labels = [("step", s.name.as_str())];
            let at = init_start + s.start_ms / 1000.0;
            sample(&mut out, "terra_boot_step_start_seconds", &labels, at);
        }
    }
    if !inputs.ready.is_empty() {
        header(
            &mut out,
            "terra_service_ready_seconds",
            "Kernel uptime when each service last became ready (containerd: the end of the boot).",
        );
        for r in &inputs.ready {
            let labels = [("service", r.service.as_str())];
            sample(
                &mut out,
                "terra_service_ready_seconds",
                &labels,
                r.ready_uptime_s,
            );
        }
        header(
            &mut out,
            "terra_service_start_to_ready_seconds",
            "From each service's last start to its readiness.",
        );
        for r in &inputs.ready {
            let labels = [("service", r.service.as_str())];
            let took = r.start_to_ready_ms as f64 / 1000.0;
            sample(
                &mut out,
                "terra_service_start_to_ready_seconds",
                &labels,
                took,
            );
        }
    }
    let name = inputs.timeline.as_ref().and_then(|t| t.version.as_deref());
    let record = name.and_then(|n| inputs.metadata.as_ref()?.versions.get(n));
    if let Some(name) = name {
        let image = record.and_then(|r| r.image.as_ref());
        header(
            &mut out,
            "terra_version_info",
            "The booted version: its name, manifest digest and image reference.",
        );
        let labels = [
            ("version", name),
            ("digest", image.map_or("", |i| i.digest.as_str())),
            ("reference", image.map_or("", |i| i.reference.as_str())),
        ];
        sample(&mut out, "terra_version_info", &labels, 1.0);
    }
    if let Some(rec) = record {
        let now = match rec.boot.status() {
            Status::Good => "good",
            Status::Pending { .. } | Status::Exhausted => "pending",
            Status::Failed { .. } => "failed",
            Status::Untried => "untried",
        };
        header(
            &mut out,
            "terra_boot_state",
            "The booted version's boot-counting state (1 for the current one).",
        );
        for state in STATES {
            let v = if state == now { 1.0 } else { 0.0 };
            sample(&mut out, "terra_boot_state", &[("state", state)], v);
        }
    }
    if let Some(reason) = inputs.timeline.as_ref().and_then(|t| t.reason.as_deref()) {
        header(
            &mut out,
            "terra_boot_fallback",
            "1 when stage 1 booted a fallback (the default could not boot).",
        );
        let fallback = matches!(reason, "fallback" | "last resort");
        sample(
            &mut out,
            "terra_boot_fallback",
            &[],
            f64::from(u8::from(fallback)),
        );
    }
    out
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = write!(out, "{{{}}}", l.join(","));
    }
    // Microseconds are plenty, and keep 0.02968 from printing as
    // 0.029679999999999998.
    let _ = writeln!(out, " {}", (value * 1e6).round() / 1e6);
}

/// Label values escape backslash, double quote and newline (the text format).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT_JSON: &str = r#"{"uptime_at_start_ms":1562.0,"total_ms":48.0,
        "steps":[{"name":"early","start_ms":0.0,"duration_ms":0.5},
                 {"name":"find","start_ms":0.5,"duration_ms":20.0}],
        "label":"terra","device":"/dev/vda","scans":1,"version":"v1","reason":"fallback"}"#;

    fn metadata(good: bool) -> Metadata {
        let json = format!(
            r#"{{"format":1,"default":"v1","versions":{{"v1":{{"lowers":["a"],"upper":"u",
            "work":"w","handoff":{{"kind":"supervise"}},"installed_at":1,"size":1,
            "image":{{"reference":"oci:/x:latest","digest":"sha256:ab"}},
            "boot":{{"good":{good},"tries_left":2}}}}}}}}"#
        );
        Metadata::parse(&json).unwrap()
    }

    fn inputs(good: bool) -> Inputs {
        Inputs {
            timeline: Some(serde_json::from_str(BOOT_JSON).unwrap()),
            ready: vec![Ready {
                service: "containerd".into(),
                ready_uptime_s: 2.391,
                start_to_ready_ms: 287,
            }],
            metadata: Some(metadata(good)),
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_boot_timeline_in_base_units() {
        let text = render(&inputs(true));
        let l = lines(&text);
        for want in [
            "terra_boot_init_start_seconds 1.562",
            "terra_boot_stage1_seconds 0.048",
            "terra_boot_step_seconds{step=\"early\"} 0.0005",
            "terra_boot_step_seconds{step=\"find\"} 0.02",
            "terra_boot_step_start_seconds{step=\"find\"} 1.5625",
            "terra_service_ready_seconds{service=\"containerd\"} 2.391",
            "terra_service_start_to_ready_seconds{service=\"containerd\"} 0.287",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
        assert!(text.contains("# TYPE terra_boot_step_seconds gauge\n"));
    }

    #[test]
    fn the_version_its_digest_and_its_state() {
        let text = render(&inputs(false));
        let l = lines(&text);
        assert!(l.contains(
            &"terra_version_info{version=\"v1\",digest=\"sha256:ab\",reference=\"oci:/x:latest\"} 1"
        ));
        assert!(
            l.contains(&"terra_boot_state{state=\"pending\"} 1"),
            "{text}"
        );
        assert!(l.contains(&"terra_boot_state{state=\"good\"} 0"), "{text}");
        assert!(l.contains(&"terra_boot_fallback 1"), "{text}");
        let text = render(&inputs(true));
        assert!(lines(&text).contains(&"terra_boot_state{state=\"good\"} 1"));
    }

    #[test]
    fn what_is_missing_is_left_out() {
        assert_eq!(render(&Inputs::default()), "");
        let mut i = inputs(true);
        i.metadata = None;
        let text = render(&i);
        assert!(text.contains("terra_version_info{version=\"v1\",digest=\"\",reference=\"\"} 1"));
        assert!(!text.contains("terra_boot_state"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
