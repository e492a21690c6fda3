//! Time sync: an SNTP client (RFC 4330) that asks a time server for the
//! time over UDP and steps the clock when it is off. TLS (registries over
//! HTTPS) refuses certificates "not yet valid" on a machine whose clock
//! starts in 1970 or drifted, and Debian's busybox-static has no `ntpd`.
//!
//! The packet codec is hand-written: one 48-byte packet each way, four
//! timestamps and four checks. The `sntpc` crate would need two traits
//! implemented (its socket and its clock) around the same few lines and
//! still leave the clock step and the checks below to us.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_TO_UNIX: i128 = 2_208_988_800;
const NANOS: i128 = 1_000_000_000;
/// The packet without extensions or authenticator (RFC 4330 section 4).
pub const PACKET_LEN: usize = 48;
/// Version 4, mode 3 (client), leap indicator 0.
const CLIENT_HEADER: u8 = (4 << 3) | 3;

/// What a server's answer failed, or why there was none.
#[derive(Debug, thiserror::Error)]
pub enum SntpError {
    #[error("resolving {server}: {source}")]
    Resolve {
        server: String,
        source: std::io::Error,
    },
    #[error("{server}: no IPv4 or IPv6 address")]
    NoAddress { server: String },
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {} s", after.as_secs_f32())]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("expected a {PACKET_LEN}-byte reply, found {0} bytes")]
    Short(usize),
    #[error(
        "expected a server reply (mode 4, version 3 or 4), found mode {mode} version {version}"
    )]
    NotAReply { mode: u8, version: u8 },
    #[error("the server is not synchronized (leap indicator 3 or stratum 0: kiss code {kiss:?})")]
    Unsynchronized { kiss: String },
    #[error("the reply's originate timestamp is not our request's (a stale or forged reply)")]
    WrongOriginate,
    #[error("the reply's transmit timestamp is zero")]
    NoTime,
}

/// A time as nanoseconds since the Unix epoch (negative before 1970).
pub type Nanos = i128;

/// Now, from the system clock.
pub fn now() -> Nanos {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A time as the 64-bit NTP timestamp: seconds since 1900 (modulo 2^32,
/// so era 1 starts in 2036) and a 32-bit binary fraction.
pub fn to_ntp(t: Nanos) -> u64 {
    let ntp = t + NTP_TO_UNIX * NANOS;
    let secs = ntp.div_euclid(NANOS) as u64 & 0xffff_ffff;
    let frac = ((ntp.rem_euclid(NANOS) << 32) / NANOS) as u64;
    (secs << 32) | frac
}

/// The inverse of [`to_ntp`], for times from 1968 to 2104: a seconds field
/// with the top bit clear is in era 1 (RFC 4330 section 3).
pub fn from_ntp(ts: u64) -> Nanos {
    let mut secs = i128::from(ts >> 32);
    if secs < 0x8000_0000 {
        secs += 1 << 32;
    }
    let frac = (i128::from(ts & 0xffff_ffff) * NANOS) >> 32;
    (secs - NTP_TO_UNIX) * NANOS + frac
}

/// The client's request, sent at `t1`: the time goes in the transmit
/// field, which the server echoes as the originate timestamp.
pub fn request(t1: Nanos) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = CLIENT_HEADER;
    p[40..48].copy_from_slice(&to_ntp(t1).to_be_bytes());
    p
}

/// The two server timestamps of a checked reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// When the server received the request (t2).
    pub receive: Nanos,
    /// When the server sent the reply (t3).
    pub transmit: Nanos,
    pub stratum: u8,
}

/// Checks a reply to the request sent at `t1` and reads its timestamps.
pub fn parse_reply(buf: &[u8], t1: Nanos) -> Result<Reply, SntpError> {
    if buf.len() < PACKET_LEN {
        return Err(SntpError::Short(buf.len()));
    }
    let (leap, version, mode) = (buf[0] >> 6, (buf[0] >> 3) & 7, buf[0] & 7);
    if mode != 4 || !(3..=4).contains(&version) {
        return Err(SntpError::NotAReply { mode, version });
    }
    let stratum = buf[1];
    if leap == 3 || stratum == 0 || stratum > 15 {
        // A kiss-o'-death packet carries an ASCII code in the reference id.
        let kiss = String::from_utf8_lossy(&buf[12..16]).into_owned();
        return Err(SntpError::Unsynchronized { kiss });
    }
    let ts = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if ts(24) != to_ntp(t1) {
        return Err(SntpError::WrongOriginate);
    }
    if ts(40) == 0 {
        return Err(SntpError::NoTime);
    }
    Ok(Reply {
        receive: from_ntp(ts(32)),
        transmit: from_ntp(ts(40)),
        stratum,
    })
}

/// The clock's offset from the server's: ((t2 - t1) + (t3 - t4)) / 2, the
/// network delay assumed the same both ways (RFC 4330 section 5).
pub fn offset(t1: Nanos, r: &Reply, t4: Nanos) -> Nanos {
    ((r.receive - t1) + (r.transmit - t4)) / 2
}

/// One answer: which server, how far off this clock is, and the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub addr: SocketAddr,
    pub offset: Nanos,
    pub delay: Nanos,
    pub stratum: u8,
}

/// Asks `server` (`host:port`) for the time, each of its addresses in turn
/// until one answers within `timeout`; the last error when none does.
pub fn query(server: &str, timeout: Duration) -> Result<Sample, SntpError> {
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(|source| SntpError::Resolve {
            server: server.to_string(),
            source,
        })?
        .collect();
    let mut last = SntpError::NoAddress {
        server: server.to_string(),
    };
    for addr in addrs {
        match query_addr(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn query_addr(addr: SocketAddr, timeout: Duration) -> Result<Sample, SntpError> {
    let io = |source| SntpError::Io { addr, source };
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.connect(addr).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    let t1 = now();
    sock.send(&request(t1)).map_err(io)?;
    let mut buf = [0u8; 512];
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            // A read timeout is WouldBlock on Linux (TimedOut elsewhere).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(SntpError::Timeout {
                    addr,
                    after: timeout,
                })
            }
            Err(e) => return Err(io(e)),
        };
        let t4 = now();
        match parse_reply(&buf[..n], t1) {
            // A late answer to an earlier request: keep waiting for ours.
            Err(SntpError::WrongOriginate) => continue,
            Err(e) => return Err(e),
            Ok(r) => {
                return Ok(Sample {
                    addr,
                    offset: offset(t1, &r, t4),
                    delay: (t4 - t1) - (r.transmit - r.receive),
                    stratum: r.stratum,
                })
            }
        }
    }
}

/// Steps the system clock by `offset` (needs CAP_SYS_TIME).
pub fn step(offset: Nanos) -> std::io::Result<Nanos> {
    let target = now() + offset;
    let ts = rustix::time::Timespec {
        tv_sec: target.div_euclid(NANOS) as i64,
        tv_nsec: target.rem_euclid(NANOS) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts)?;
    Ok(target)
}

/// Seconds with a sign and milliseconds, for the log: `+3.250 s`.
pub fn seconds(n: Nanos) -> String {
    let sign = if n < 0 { '-' } else { '+' };
    let ms = n.unsigned_abs() / 1_000_000;
    format!("{sign}{}.{:03} s", ms / 1000, ms % 1000)
}

/// A time for the log, RFC 3339 in UTC.
pub fn rfc3339(t: Nanos) -> String {
    let d = Duration::from_secs(t.max(0).div_euclid(NANOS) as u64);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + d).to_string()
}

/// How long to wait after `failures` failed rounds in a row: 2 s doubling
/// up to `every`, so a server that comes up later is found soon and one
/// that stays away is not hammered.
pub fn backoff(failures: u32, every: Duration) -> Duration {
    let first = Duration::from_secs(2);
    first
        .checked_mul(1u32 << failures.saturating_sub(1).min(16))
        .unwrap_or(every)
        .min(every)
}

#[cfg(test)]
#[path = "timesync_tests.rs"]
mod tests;
