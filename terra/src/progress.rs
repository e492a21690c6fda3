//! Progress: a bar per download and unpack on a terminal (indicatif), plain
//! log lines otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: Option<MultiProgress>,
}

pub struct Bar {
    bar: Option<ProgressBar>,
    what: String,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi }
    }

    /// A bar for `what`, `len` bytes long (0 for a spinner).
    pub fn bar(&self, what: String, len: u64) -> Bar {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(len));
            let style = ProgressStyle::with_template(
                "{msg:28!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_message(what.clone());
            b
        });
        if bar.is_none() {
            log::debug!("{what}: started ({len} bytes)");
        }
        Bar {
            bar,
            what,
            started: Instant::now(),
        }
    }
}

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    pub fn set_position(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }
    pub fn finish_with(&self, how: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(format!("{} {how}", self.what)),
            None => log::info!(
                "{}: {how} ({:.2} s)",
                self.what,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }
}
