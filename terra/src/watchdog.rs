//! Time limits on registry transfers. A read timeout alone does not end a
//! transfer that trickles (one byte every few seconds never leaves the
//! socket silent long enough), and an install holds the partition lock
//! while it runs: so every response body is read through a [`Watchdog`]
//! that ends a transfer making too little progress (the stall timeout) and
//! any transfer past the overall deadline, naming the registry and what was
//! being fetched.
//!
//! Hand-written because ureq 2 offers only a per-read timeout and an
//! overall one per request: nothing bounds a minimum rate, and its overall
//! timeout cannot span a command's many requests.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Progress below this many bytes within a stall window counts as none.
pub const STALL_BYTES: u64 = 1024;

/// The limits of one command's registry transfers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A transfer that receives fewer than [`STALL_BYTES`] in this long
    /// (and is not finished) is stalled.
    pub stall: Duration,
    /// All transfers of the command end by then.
    pub deadline: Instant,
    /// The overall timeout the deadline came from, for messages.
    pub overall: Duration,
}

impl Limits {
    pub fn new(stall: Duration, overall: Duration) -> Self {
        Self {
            stall,
            deadline: Instant::now() + overall,
            overall,
        }
    }

    /// Time left before the deadline; an error naming `what` once it passed.
    pub fn left(&self, what: &str) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.expired(what));
        }
        Ok(left)
    }

    /// The error of a transfer cut by the deadline.
    pub fn expired(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{what}: the registry transfers did not finish within {} s (--timeout)",
                self.overall.as_secs()
            ),
        )
    }
}

/// Reads `inner`, failing with `TimedOut` once the transfer stalls or the
/// deadline passes. `what` names the registry and the object in errors.
pub struct Watchdog<R> {
    inner: R,
    limits: Limits,
    what: String,
    /// Start of the current window and the bytes received in it.
    window: Instant,
    in_window: u64,
    total: u64,
    /// Whether the slow-transfer warning was given for this window.
    warned: bool,
}

impl<R> Watchdog<R> {
    pub fn new(inner: R, limits: Limits, what: String) -> Self {
        Self {
            inner,
            limits,
            what,
            window: Instant::now(),
            in_window: 0,
            total: 0,
            warned: false,
        }
    }
}

impl<R: Read> Read for Watchdog<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.limits.left(&self.what)?;
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            // The client's own read timeout: not a byte for the stall time.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                // The request's own timeout is the deadline: say which ran out.
                if self.limits.deadline <= Instant::now() + Duration::from_millis(100) {
                    return Err(self.limits.expired(&self.what));
                }
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: stalled: no data for {} s ({} received in all; --stall-timeout)",
                        self.what,
                        self.limits.stall.as_secs(),
                        self.total
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        self.total += n as u64;
        self.in_window += n as u64;
        if n == 0 || self.in_window >= STALL_BYTES {
            if self.warned && n > 0 {
                log::info!("{}: receiving again", self.what);
            }
            self.window = Instant::now();
            self.in_window = 0;
            self.warned = false;
            return Ok(n);
        }
        let quiet = self.window.elapsed();
        if quiet >= self.limits.stall {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{}: stalled: {} bytes in the last {:.0} s ({} received in all); a transfer that gets under {STALL_BYTES} bytes in {} s is given up (--stall-timeout)",
                    self.what,
                    self.in_window,
                    quiet.as_secs_f64(),
                    self.total,
                    self.limits.stall.as_secs()
                ),
            ));
        }
        // Shown while it can still recover, so a stalled transfer does not
        // look like a working one.
        if !self.warned && quiet >= self.limits.stall / 2 {
            self.warned = true;
            log::warn!(
                "{}: stalled: {} bytes in the last {:.0} s",
                self.what,
                self.in_window,
                quiet.as_secs_f64()
            );
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One byte a read, each read after `pause`.
    struct Trickle {
        left: usize,
        pause: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.pause);
            self.left -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }

    fn limits(stall_ms: u64, overall_ms: u64) -> Limits {
        Limits::new(
            Duration::from_millis(stall_ms),
            Duration::from_millis(overall_ms),
        )
    }

    #[test]
    fn a_trickle_is_stalled() {
        let t = Trickle {
            left: 1000,
            pause: Duration::from_millis(10),
        };
        let started = Instant::now();
        let mut w = Watchdog::new(t, limits(200, 60_000), "registry r: blob b".into());
        let err = io::copy(&mut w, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let msg = err.to_string();
        assert!(msg.starts_with("registry r: blob b: stalled"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_steady_transfer_is_not_stalled_but_meets_the_deadline() {
        let fast = Trickle {
            left: 5000,
            pause: Duration::ZERO,
        };
        let mut w = Watchdog::new(fast, limits(50, 60_000), "x".into());
        assert_eq!(io::copy(&mut w, &mut io::sink()).unwrap(), 5000);
        let slow = Trickle {
            left: usize::MAX,
            pause: Duration::from_micros(100),
        };
        let mut w = Watchdog::new(slow, limits(60_000, 300), "x".into());
        let err = io::copy(&mut w, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("--timeout"), "{err}");
    }
}
