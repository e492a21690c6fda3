//! A guard between the decompressor and the tar reader: the `tar` crate reads
//! GNU long names (`L`, `K`) and pax headers (`x`, `g`) whole into memory,
//! with no limit, so a small gzip of zeros claiming an 8 GB long name would
//! fill memory. This reader follows the tar stream block by block on its own
//! (headers, pax `size=` overrides, data) and fails cleanly when such a
//! metadata entry is larger than [`MAX_META`]. File data passes untouched.

use std::io::{self, Read};

/// The largest long name or pax header accepted.
pub const MAX_META: u64 = 1 << 20;

const BLOCK: usize = 512;

enum State {
    /// Collecting a header block.
    Header {
        buf: Box<[u8; BLOCK]>,
        filled: usize,
    },
    /// Inside an entry's data (rounded up to whole blocks); `pax` collects
    /// a pax header's records to find a `size=` override.
    Data { left: u64, pax: Option<Vec<u8>> },
}

pub struct TarGuard<R> {
    inner: R,
    state: State,
    /// `size=` from the last pax header, for the next entry.
    next_size: Option<u64>,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: header(),
            next_size: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Header { buf, filled } => {
                    let n = (BLOCK - *filled).min(bytes.len());
                    buf[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == BLOCK {
                        let block = std::mem::replace(buf, Box::new([0; BLOCK]));
                        *filled = 0;
                        self.on_header(&block)?;
                    }
                }
                State::Data { left, pax } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some(p) = pax {
                        p.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if let State::Data { pax: Some(p), .. } =
                            std::mem::replace(&mut self.state, header())
                        {
                            self.next_size = pax_size(&p);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_header(&mut self, block: &[u8; BLOCK]) -> io::Result<()> {
        if block.iter().all(|&b| b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        let kind = block[156];
        let size = match self.next_size.take() {
            Some(s) if !matches!(kind, b'x' | b'g') => s,
            _ => header_size(&block[124..136])?,
        };
        let meta = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if meta && size > MAX_META {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "refused: a tar {} entry of {size} bytes (more than {MAX_META}): a memory bomb",
                    if kind == b'L' || kind == b'K' {
                        "long name"
                    } else {
                        "pax header"
                    }
                ),
            ));
        }
        let left = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let pax = (kind == b'x').then(Vec::new);
        if left > 0 {
            self.state = State::Data { left, pax };
        }
        Ok(())
    }
}

fn header() -> State {
    State::Header {
        buf: Box::new([0; BLOCK]),
        filled: 0,
    }
}

/// The size field: octal text, or base-256 when the high bit is set.
fn header_size(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for &b in &field[4..] {
            v = v.checked_shl(8).map(|v| v | b as u64).unwrap_or(u64::MAX);
        }
        return Ok(v);
    }
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, '\0' | ' '))
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(&text, 8).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad tar size field {text:?}"),
        )
    })
}

/// `size=` among pax records (`<len> size=<n>\n`).
fn pax_size(records: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(records)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, kv)| kv))
        .find_map(|kv| kv.strip_prefix("size=").and_then(|v| v.trim().parse().ok()))
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_path("x").unwrap();
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.resize(out.len() + size.div_ceil(512) as usize * 512, b'a');
        out
    }

    fn read_all(bytes: &[u8]) -> io::Result<u64> {
        // Small reads, as a decompressor gives them.
        let mut g = TarGuard::new(bytes);
        let mut total = 0;
        let mut buf = [0u8; 77];
        loop {
            let n = g.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    #[test]
    fn large_files_pass_large_long_names_do_not() {
        assert!(read_all(&tar_with(tar::EntryType::Regular, 3 << 20)).is_ok());
        assert!(read_all(&tar_with(tar::EntryType::GNULongName, 1000)).is_ok());
        let err = read_all(&tar_with(tar::EntryType::GNULongName, 2 << 20)).unwrap_err();
        assert!(err.to_string().contains("memory bomb"), "{err}");
        assert!(read_all(&tar_with(tar::EntryType::XHeader, 2 << 20)).is_err());
    }

    #[test]
    fn follows_pax_size_overrides() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(80) + "file";
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
        b.append_pax_extensions([("size", &b"600"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_path("big").unwrap();
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend(vec![b'z'; 1024]); // 600 bytes rounded up to 1024
        let mut bytes = b.into_inner().unwrap();
        bytes.truncate(bytes.len() - 1024);
        bytes.extend(data);
        // A long name after the override must be seen as a header again.
        bytes.extend(tar_with(tar::EntryType::GNULongName, 4 << 20));
        let err = read_all(&bytes).unwrap_err();
        assert!(err.to_string().contains("memory bomb"), "{err}");
    }
}
