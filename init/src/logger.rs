//! A tiny `log` backend: `<level>terra: msg` to /dev/kmsg (so `dmesg` has the
//! boot story) and `terra: msg` to the console.
//!
//! Records are held in memory until the command line is read ([`configure`]),
//! because only then do we know `quiet` and `terra.debug`; before the sinks
//! are opened (devtmpfs is not mounted yet) the same buffer holds them.
//!
//! Two kernel quirks shape the writes:
//! - The kernel echoes a /dev/kmsg record to the console itself when its level
//!   is below `console_loglevel` (first field of /proc/sys/kernel/printk), with
//!   a timestamp in front. We print to the console ourselves (so console lines
//!   start with `terra:` exactly, which the tests and people grep for), so a
//!   record we print is written to kmsg at no more urgent a level than
//!   `console_loglevel`: no line is printed twice (each serial line costs boot
//!   time). With `quiet` (console_loglevel 4) warnings keep their level and
//!   errors become warnings; without it, dmesg shows our lines at debug level.
//! - /dev/kmsg rate-limits writers to 10 lines per 5 s by default
//!   (`printk.devkmsg=ratelimit`); stage 1 turns it `on` and puts the old
//!   value back before the handoff ([`restore_ratelimit`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct State {
    kmsg: Option<File>,
    console: Option<File>,
    configured: bool,
    debug: bool,
    quiet: bool,
    /// The kernel's console_loglevel; it echoes kmsg records below it.
    console_loglevel: u8,
    pending: Vec<(Level, String)>,
    /// (path of printk_devkmsg, its value before we turned it on)
    ratelimit: Option<(PathBuf, String)>,
}

struct Logger {
    state: Mutex<State>,
}

static LOGGER: Logger = Logger {
    state: Mutex::new(State {
        kmsg: None,
        console: None,
        configured: false,
        debug: false,
        quiet: false,
        console_loglevel: 7,
        pending: Vec::new(),
        ratelimit: None,
    }),
};

fn state() -> MutexGuard<'static, State> {
    // A panic while logging must not silence PID 1 for good.
    LOGGER.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the logger (buffering until [`configure`]). Call first thing.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}

/// Opens /dev/kmsg and /dev/console under `dev`, reads the kernel's console
/// log level from `printk` and lifts the /dev/kmsg rate limit
/// (`printk_devkmsg`). Missing pieces are tolerated: the console falls back
/// to stdout.
pub fn open(dev: &Path, printk: &Path, printk_devkmsg: &Path) {
    let kmsg = OpenOptions::new().write(true).open(dev.join("kmsg")).ok();
    let console = OpenOptions::new()
        .write(true)
        .open(dev.join("console"))
        .ok();
    let level = fs::read_to_string(printk)
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()));
    let old = fs::read_to_string(printk_devkmsg).ok();
    let mut st = state();
    st.kmsg = kmsg;
    st.console = console;
    if let Some(level) = level {
        st.console_loglevel = level;
    }
    if let Some(old) = old {
        let old = old.trim().to_string();
        // Fails (EINVAL) when printk.devkmsg= was given on the command line:
        // then it is the user's choice and we keep it.
        if old != "on" && fs::write(printk_devkmsg, "on\n").is_ok() {
            st.ratelimit = Some((printk_devkmsg.to_path_buf(), old));
        }
    }
}

/// Sets the filters from the command line and writes what was held back.
pub fn configure(debug: bool, quiet: bool) {
    let mut st = state();
    st.debug = debug;
    st.quiet = quiet;
    flush(&mut st);
}

/// Writes held-back records with whatever is known (for the fatal path).
pub fn flush_pending() {
    flush(&mut state());
}

fn flush(st: &mut State) {
    st.configured = true;
    for (level, msg) in std::mem::take(&mut st.pending) {
        write(st, level, &msg);
    }
}

/// Puts back the kernel's /dev/kmsg rate limit (before the handoff).
pub fn restore_ratelimit() {
    if let Some((path, old)) = state().ratelimit.take() {
        let _ = fs::write(path, format!("{old}\n"));
    }
}

/// Where a record goes, given the filters. Pure, so it is tested.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub console: bool,
    /// The syslog level written to kmsg, if any.
    pub kmsg: Option<u8>,
}

pub(crate) fn route(level: Level, debug: bool, quiet: bool, console_loglevel: u8) -> Route {
    let syslog = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let console = match level {
        Level::Error | Level::Warn => true,
        Level::Info => !quiet,
        Level::Debug | Level::Trace => debug,
    };
    let wanted = level <= Level::Info || debug;
    let kmsg = wanted.then(|| {
        if console {
            syslog.max(console_loglevel.min(7))
        } else {
            syslog
        }
    });
    Route { console, kmsg }
}

fn write(st: &mut State, level: Level, msg: &str) {
    let r = route(level, st.debug, st.quiet, st.console_loglevel);
    for line in msg.lines() {
        if let (Some(l), Some(k)) = (r.kmsg, st.kmsg.as_mut()) {
            // One write() is one kmsg record.
            let _ = k.write_all(format!("<{l}>terra: {line}\n").as_bytes());
        }
        if r.console {
            let text = format!("terra: {line}\n");
            let _ = match st.console.as_mut() {
                Some(c) => c.write_all(text.as_bytes()),
                None => std::io::stdout().write_all(text.as_bytes()),
            };
        }
    }
}

impl Log for Logger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let msg = record.args().to_string();
        let mut st = state();
        if st.configured {
            write(&mut st, record.level(), &msg);
        } else {
            st.pending.push((record.level(), msg));
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_level_quiet_and_debug() {
        // Default console_loglevel 7: what we print is not echoed by the kernel.
        assert_eq!(
            route(Level::Info, false, false, 7),
            Route {
                console: true,
                kmsg: Some(7)
            }
        );
        assert_eq!(
            route(Level::Debug, false, false, 7),
            Route {
                console: false,
                kmsg: None
            }
        );
        assert_eq!(
            route(Level::Debug, true, false, 7),
            Route {
                console: true,
                kmsg: Some(7)
            }
        );
        // quiet (console_loglevel 4): info only in kmsg, at its own level.
        assert_eq!(
            route(Level::Info, false, true, 4),
            Route {
                console: false,
                kmsg: Some(6)
            }
        );
        assert_eq!(
            route(Level::Warn, false, true, 4),
            Route {
                console: true,
                kmsg: Some(4)
            }
        );
        assert_eq!(
            route(Level::Error, false, true, 4),
            Route {
                console: true,
                kmsg: Some(4)
            }
        );
        // loglevel=1: the kernel echoes nothing, levels are kept.
        assert_eq!(
            route(Level::Error, false, false, 1),
            Route {
                console: true,
                kmsg: Some(3)
            }
        );
    }
}
