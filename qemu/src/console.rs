//! The guest's serial console, captured line by line.
//!
//! A reader thread appends every line QEMU prints; tests wait for a line that
//! starts with a prefix. Each [`Console`] keeps a cursor, so successive waits
//! read the console forward, the way a person reads a boot log.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

#[derive(Default)]
struct State {
    lines: Vec<String>,
    /// The reader reached end of file: QEMU closed its stdout (it exited).
    closed: bool,
}

/// Shared, growing console log with a read cursor.
#[derive(Clone)]
pub struct Console {
    shared: Arc<(Mutex<State>, Condvar)>,
    cursor: usize,
    echo: bool,
}

impl Console {
    /// Starts a thread that reads `source` until end of file. With `echo`,
    /// every line is also printed to stdout as it arrives.
    pub fn capture(source: impl Read + Send + 'static, echo: bool) -> Self {
        let console = Self {
            shared: Arc::new((Mutex::new(State::default()), Condvar::new())),
            cursor: 0,
            echo,
        };
        let shared = Arc::clone(&console.shared);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                let (lock, cond) = &*shared;
                let Ok(mut state) = lock.lock() else { return };
                if n == 0 {
                    state.closed = true;
                    cond.notify_all();
                    return;
                }
                let line = clean_line(&buf);
                if echo {
                    println!("{line}");
                }
                state.lines.push(line);
                cond.notify_all();
            }
        });
        console
    }

    /// Waits for the next line that starts with `prefix` (after the cursor)
    /// and returns it; the cursor moves past it.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        self.wait_for_any(&[prefix], timeout).map(|(_, line)| line)
    }

    /// Waits for the next line that starts with any of `prefixes`; returns
    /// which one (its index) and the line.
    pub fn wait_for_any(
        &mut self,
        prefixes: &[&str],
        timeout: Duration,
    ) -> Result<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.shared;
        let mut state = lock
            .lock()
            .map_err(|_| anyhow::anyhow!("console poisoned"))?;
        loop {
            while self.cursor < state.lines.len() {
                let line = &state.lines[self.cursor];
                self.cursor += 1;
                if let Some(i) = prefixes.iter().position(|p| line.starts_with(p)) {
                    return Ok((i, line.clone()));
                }
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                let why = if state.closed {
                    "QEMU exited".to_string()
                } else {
                    format!("timed out after {:.0?}", timeout)
                };
                bail!(
                    "no console line starting with {prefixes:?} ({why}); the console ends:\n{}",
                    tail(&state.lines, 80)
                );
            }
            state = cond
                .wait_timeout(state, deadline - now)
                .map_err(|_| anyhow::anyhow!("console poisoned"))?
                .0;
        }
    }

    /// How many lines the waits have read past: the index of the line
    /// after the last one [`Console::wait_for`] returned.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Every line read so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .0
            .lock()
            .map(|s| s.lines.clone())
            .unwrap_or_default()
    }

    /// The whole console so far, one string.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits (up to `timeout`) until QEMU closes its output, so every line
    /// is in; returns whether it did.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.shared;
        let Ok(mut state) = lock.lock() else {
            return false;
        };
        while !state.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match cond.wait_timeout(state, deadline - now) {
                Ok((s, _)) => state = s,
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether lines are echoed to stdout as they arrive.
    pub fn echoes(&self) -> bool {
        self.echo
    }
}

/// The last `n` lines, for error messages.
pub fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One console line as text: serial line ends are `\r\n`, and a terminal
/// reset or stray escape must not hide the prefix a test waits for.
fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    // Drop ANSI escape sequences (ESC [ ... letter) and other control bytes.
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_prefixes_in_order() {
        let data = b"boot\r\nterra: found partition terra on /dev/vda\r\n\x1b[0mterra: booting version v1 (default)\nend";
        let mut c = Console::capture(&data[..], false);
        let found = c.wait_for("terra: found", Duration::from_secs(5)).unwrap();
        assert_eq!(found, "terra: found partition terra on /dev/vda");
        let booting = c
            .wait_for("terra: booting", Duration::from_secs(5))
            .unwrap();
        assert_eq!(booting, "terra: booting version v1 (default)");
        // The cursor moved on: the first line is not found again.
        let err = c
            .wait_for("terra: found", Duration::from_secs(5))
            .unwrap_err();
        assert!(err.to_string().contains("QEMU exited"), "{err}");
        assert!(
            err.to_string().contains("end"),
            "the tail is in the error: {err}"
        );
        assert!(c.wait_closed(Duration::from_secs(1)));
        assert_eq!(c.lines().len(), 4);
    }

    #[test]
    fn times_out_with_the_tail() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let mut c = Console::capture(reader, false);
        let err = c.wait_for("never", Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}
