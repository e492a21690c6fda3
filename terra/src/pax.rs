//! PAX extended header records (POSIX.1-2001, `pax` "Extended Header"):
//! each record is `"<len> <key>=<value>\n"` where `<len>` is the decimal
//! length of the whole record in bytes. The length, not a newline, ends a
//! record, so a value may hold any byte: NUL, newline, bytes above 127
//! (`SCHILY.xattr.security.capability` values are binary).
//!
//! Hand-written because the `tar` crate (0.4.46) splits the records on
//! newlines: a binary value holding `\n` makes it fail with "malformed pax
//! extension", and worse, bytes inside one value can then read as records of
//! their own (a `path=` smuggled in an xattr). [`TarGuard`] therefore hands
//! the tar crate a copy in which such records are blanked out
//! ([`sanitize`]), and the unpacker reads the original records with
//! [`records`].
//!
//! [`TarGuard`]: crate::targuard::TarGuard

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PaxError {
    #[error("malformed pax record at byte {at}: expected \"<length> <key>=<value>\\n\", found {found:?}")]
    Malformed { at: usize, found: String },
    #[error("pax record at byte {at} says it is {len} bytes, but only {left} are left")]
    TooLong { at: usize, len: usize, left: usize },
    #[error("pax record {key:?}: expected a decimal number, found {found:?}")]
    NotANumber { key: String, found: String },
}

/// One record: its key and its value, raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl Record<'_> {
    /// The value as a decimal number (`size`, `uid`, `gid`).
    pub fn number(&self) -> Result<u64, PaxError> {
        let text = std::str::from_utf8(self.value).unwrap_or("");
        text.parse().map_err(|_| PaxError::NotANumber {
            key: String::from_utf8_lossy(self.key).into_owned(),
            found: String::from_utf8_lossy(self.value).into_owned(),
        })
    }
}

/// One record's place in `data`: the whole record, and where key and value
/// start and end.
struct Span {
    start: usize,
    end: usize,
    eq: usize,
    key_start: usize,
}

fn spans(data: &[u8]) -> Result<Vec<Span>, PaxError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        // Some writers pad the header's data with NULs: the end.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let malformed = || PaxError::Malformed {
            at,
            found: String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned(),
        };
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(malformed)?;
        if len > rest.len() {
            return Err(PaxError::TooLong {
                at,
                len,
                left: rest.len(),
            });
        }
        if len < space + 3 || rest[len - 1] != b'\n' {
            return Err(malformed());
        }
        let key_start = at + space + 1;
        let eq = data[key_start..at + len - 1]
            .iter()
            .position(|&b| b == b'=')
            .map(|i| key_start + i)
            .ok_or_else(malformed)?;
        out.push(Span {
            start: at,
            end: at + len,
            eq,
            key_start,
        });
        at += len;
    }
    Ok(out)
}

/// The records of a pax header's data, in order.
pub fn records(data: &[u8]) -> Result<Vec<Record<'_>>, PaxError> {
    Ok(spans(data)?
        .into_iter()
        .map(|s| Record {
            key: &data[s.key_start..s.eq],
            value: &data[s.eq + 1..s.end - 1],
        })
        .collect())
}

/// The `size=` record, if any (it overrides the next header's size field).
pub fn size(data: &[u8]) -> Result<Option<u64>, PaxError> {
    records(data)?
        .iter()
        .find(|r| r.key == b"size")
        .map(Record::number)
        .transpose()
}

/// Rewrites, in place and at the same length, every record whose key or
/// value holds a newline into `"<len> ~=xxx…\n"`: a record no reader knows.
/// The `tar` crate, which splits records on newlines, then reads every other
/// record right and none that was never written. Fails on data that is not
/// well-formed records (the layer is refused).
pub fn sanitize(data: &mut [u8]) -> Result<(), PaxError> {
    for s in spans(data)? {
        if !data[s.start..s.end - 1].contains(&b'\n') {
            continue;
        }
        // The length prefix stays as it is; at least "<len> k=\n\n" was
        // there, so "~=" and the newline fit after it.
        let body = s.key_start;
        data[body] = b'~';
        data[body + 1] = b'=';
        data[body + 2..s.end - 1].fill(b'x');
        data[s.end - 1] = b'\n';
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        // The length counts its own digits: find the fixed point.
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        assert_eq!(r.len(), len);
        r
    }

    #[test]
    fn binary_values_are_read_whole() {
        let cap = b"\x01\x00\x00\x02\n\x00\xff\n20 path=smuggled\n";
        let mut data = record("SCHILY.xattr.security.capability", cap);
        data.extend(record("path", b"usr/bin/ping"));
        data.extend(record("size", b"42"));
        let recs = records(&data).unwrap();
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert_eq!(recs[0].value, cap);
        assert_eq!(recs[1].value, b"usr/bin/ping");
        assert_eq!(size(&data).unwrap(), Some(42));
    }

    #[test]
    fn sanitize_hides_only_records_with_newlines() {
        let mut data = record("SCHILY.xattr.user.bin", b"a\nb\n19 path=smuggled\n");
        data.extend(record("path", b"etc/real"));
        let before = data.len();
        sanitize(&mut data).unwrap();
        assert_eq!(data.len(), before);
        let recs = records(&data).unwrap();
        assert_eq!(recs[0].key, b"~");
        assert!(!recs[0].value.contains(&b'\n'));
        assert_eq!(recs[1].value, b"etc/real");
        // What the tar crate sees now: no smuggled path.
        let text = String::from_utf8_lossy(&data);
        assert!(!text.contains("smuggled"), "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(matches!(
            records(b"99 path=x\n"),
            Err(PaxError::TooLong { .. })
        ));
        assert!(records(b"abc path=x\n").is_err());
        assert!(records(b"10 pathx12\n").is_err());
        assert!(records(b"11 path=ab\nX").is_err(), "length must end on \\n");
        assert_eq!(records(b"11 path=ab\n\0\0\0").unwrap().len(), 1);
        assert!(size(&record("size", b"12x")).is_err());
    }
}
