//! A tiny `log` backend: `terra: message` on stderr; `-v` shows debug lines.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        // Our own lines; the HTTP client's only at -vv.
        m.level() <= log::max_level()
            && (m.target().starts_with("terra") || log::max_level() >= LevelFilter::Trace)
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            match r.level() {
                Level::Error | Level::Warn => {
                    eprintln!("terra: {}: {}", r.level().as_str().to_lowercase(), r.args())
                }
                _ => eprintln!("terra: {}", r.args()),
            }
        }
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// `verbose`: 0 = info, 1 = debug, 2+ = trace.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
