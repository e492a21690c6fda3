//! A guard between the decompressor and the tar reader. The `tar` crate
//! reads GNU long names (`L`, `K`) and pax headers (`x`, `g`) whole into
//! memory, with no limit, so a small gzip of zeros claiming an 8 GB long name
//! would fill memory; and it splits pax records on newlines (see
//! [`crate::pax`]). This reader follows the tar stream block by block on its
//! own (headers, pax `size=` overrides, data) and
//!
//! - fails cleanly when such a metadata entry is larger than [`MAX_META`];
//! - holds each pax header's data until it is whole, checks its records
//!   (length-prefixed, any byte in a value) and passes on a copy in which
//!   records holding a newline are blanked out ([`crate::pax::sanitize`]),
//!   so the tar crate reads no record that was never written;
//! - keeps the original records of the entry being read in a [`PaxSlot`],
//!   for the unpacker to read with [`crate::pax::records`].
//!
//! File data passes untouched. The tar crate reads exactly what it needs
//! (a header, then an entry's data through `take`), so when it hands out an
//! entry the slot holds that entry's pax header and no later one.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// The largest long name or pax header accepted.
pub const MAX_META: u64 = 1 << 20;

const BLOCK: usize = 512;

/// The original pax records of the entry the tar reader is on (None when it
/// has no pax header).
pub type PaxSlot = Rc<RefCell<Option<Vec<u8>>>>;

enum State {
    /// Collecting a header block.
    Header {
        buf: Box<[u8; BLOCK]>,
        filled: usize,
    },
    /// Inside an entry's data (rounded up to whole blocks).
    Data { left: u64 },
    /// Inside a pax header's records (`left` of them still to come), then
    /// `pad` bytes up to the block boundary.
    Pax { data: Vec<u8>, left: u64, pad: u64 },
}

pub struct TarGuard<R> {
    inner: R,
    state: State,
    /// `size=` from the last pax header, for the next entry.
    next_size: Option<u64>,
    /// Bytes for the reader that were held back: a pax header's (sanitized)
    /// records, and whatever followed them in the same read.
    out: Vec<u8>,
    out_pos: usize,
    /// The last pax header's records, for the next file entry.
    pending: Option<Vec<u8>>,
    slot: PaxSlot,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: header(),
            next_size: None,
            out: Vec::new(),
            out_pos: 0,
            pending: None,
            slot: PaxSlot::default(),
        }
    }

    /// Where the original pax records of the current entry are kept.
    pub fn slot(&self) -> PaxSlot {
        Rc::clone(&self.slot)
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows `bytes`; returns how many leading ones pass as they are. The
    /// rest (from where a pax header's records begin) went to `out`.
    fn follow(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut direct: Option<usize> = None;
        let mut i = 0;
        while i < bytes.len() {
            let held = direct.is_some();
            match &mut self.state {
                State::Header { buf, filled } => {
                    let n = (BLOCK - *filled).min(bytes.len() - i);
                    buf[*filled..*filled + n].copy_from_slice(&bytes[i..i + n]);
                    *filled += n;
                    if held {
                        self.out.extend_from_slice(&bytes[i..i + n]);
                    }
                    i += n;
                    if *filled == BLOCK {
                        let block = std::mem::replace(buf, Box::new([0; BLOCK]));
                        *filled = 0;
                        self.on_header(&block)?;
                    }
                }
                State::Data { left } => {
                    let n = (*left).min((bytes.len() - i) as u64) as usize;
                    if held {
                        self.out.extend_from_slice(&bytes[i..i + n]);
                    }
                    *left -= n as u64;
                    i += n;
                    if *left == 0 {
                        self.state = header();
                    }
                }
                State::Pax { data, left, pad } => {
                    direct.get_or_insert(i);
                    let n = (*left).min((bytes.len() - i) as u64) as usize;
                    data.extend_from_slice(&bytes[i..i + n]);
                    *left -= n as u64;
                    i += n;
                    if *left == 0 {
                        let (data, pad) = (std::mem::take(data), *pad);
                        self.state = if pad > 0 {
                            State::Data { left: pad }
                        } else {
                            header()
                        };
                        self.pax_done(data)?;
                    }
                }
            }
        }
        Ok(direct.unwrap_or(bytes.len()))
    }

    /// A pax header is whole: check it, note its size override, keep the
    /// original for the entry, pass the sanitized copy on.
    fn pax_done(&mut self, original: Vec<u8>) -> io::Result<()> {
        let bad = |e: crate::pax::PaxError| io::Error::new(io::ErrorKind::InvalidData, e);
        self.next_size = crate::pax::size(&original).map_err(bad)?;
        let mut copy = original.clone();
        crate::pax::sanitize(&mut copy).map_err(bad)?;
        self.out.extend_from_slice(&copy);
        self.pending = Some(original);
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
        if !meta {
            // The entry the pending pax header describes.
            *self.slot.borrow_mut() = self.pending.take();
        }
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.state = if kind == b'x' && size > 0 {
            State::Pax {
                data: Vec::with_capacity(size as usize),
                left: size,
                pad: padded - size,
            }
        } else if padded > 0 {
            State::Data { left: padded }
        } else {
            header()
        };
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

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                return Ok(n);
            }
            // While a pax header is collected, read no further than its
            // end: what follows is the reader's to ask for.
            let want = match &self.state {
                State::Pax { left, .. } => buf.len().min(*left as usize),
                _ => buf.len(),
            };
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(0);
            }
            let direct = self.follow(&buf[..n])?;
            if direct > 0 {
                return Ok(direct);
            }
        }
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
