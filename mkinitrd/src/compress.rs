//! Compression of the image, and decompression of modules and images.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};

/// How the initramfs is compressed. The kernel must have the matching
/// `CONFIG_RD_*` option (Debian's has them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd at the given level (1-22; 19 and up are slow to build).
    Zstd(i32),
    /// gzip (deflate), best compression; the header carries no name or time.
    Gzip,
    /// lz4 high compression (level 9) in the legacy frame format: larger
    /// than zstd but the fastest for the kernel to unpack (docs/benchmarks.md).
    Lz4,
    /// A plain cpio archive.
    None,
}

/// The zstd level used when none is given. Measured on Debian's cloud
/// kernel (docs/mkinitrd.md): level 19 makes the vm image about 16% smaller
/// than level 3 (777 KB against 921 KB) but costs 40 times the build time;
/// 9 gets most of that gain for three times level 3's.
pub const DEFAULT_ZSTD_LEVEL: i32 = 9;

impl Compression {
    /// Compresses a whole cpio archive.
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>> {
        match self {
            Compression::Zstd(level) => {
                let mut c = zstd::bulk::Compressor::new(level).context("starting zstd")?;
                // The kernel's decompressor needs no checksum; the content size
                // lets tools show it.
                c.include_contentsize(true).context("zstd option")?;
                c.include_checksum(false).context("zstd option")?;
                c.compress(data).context("compressing with zstd")
            }
            Compression::Gzip => {
                let mut enc = flate2::GzBuilder::new().mtime(0).write(
                    Vec::with_capacity(data.len() / 3),
                    flate2::Compression::best(),
                );
                enc.write_all(data).context("compressing with gzip")?;
                enc.finish().context("compressing with gzip")
            }
            Compression::Lz4 => lz4_legacy(data),
            Compression::None => Ok(data.to_vec()),
        }
    }

    /// A short name (`zstd -19`, `gzip`, `none`).
    pub fn describe(self) -> String {
        match self {
            Compression::Zstd(level) => format!("zstd -{level}"),
            Compression::Gzip => "gzip".into(),
            Compression::Lz4 => format!("lz4 -{LZ4_LEVEL}"),
            Compression::None => "none".into(),
        }
    }
}

/// Decompression speed does not depend on the level; 9 is within 0.4 % of
/// level 12's size at a fifth of its build time (70 ms against 340 ms for
/// the VM image).
const LZ4_LEVEL: i32 = 9;
/// The legacy lz4 frame: the only lz4 format the kernel's initramfs unpacker
/// reads (lib/decompress_unlz4.c, `ARCHIVE_MAGICNUMBER`), little endian.
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// Each legacy block holds at most 8 MiB uncompressed
/// (`LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE` in lib/decompress_unlz4.c).
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// The legacy frame is a magic number, then blocks each prefixed by their
/// compressed size; the `lz4` crate compresses the blocks (liblz4's HC
/// compressor), the framing is these few lines.
fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2);
    out.extend_from_slice(&LZ4_LEGACY_MAGIC.to_le_bytes());
    for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
        let block = lz4::block::compress(
            chunk,
            Some(lz4::block::CompressionMode::HIGHCOMPRESSION(LZ4_LEVEL)),
            false,
        )
        .context("compressing with lz4")?;
        let len = u32::try_from(block.len()).context("an lz4 block over 4 GiB")?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Reads a legacy lz4 frame (several may follow each other, as the kernel allows).
fn unlz4_legacy(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let magic = LZ4_LEGACY_MAGIC.to_le_bytes();
    while !data.is_empty() {
        let Some((head, rest)) = data.split_first_chunk::<4>() else {
            bail!("lz4: {} stray bytes at the end", data.len());
        };
        data = rest;
        if *head == magic {
            continue;
        }
        let len = u32::from_le_bytes(*head) as usize;
        if len > data.len() {
            bail!("lz4: a block of {len} bytes, but only {} left", data.len());
        }
        let block = lz4::block::decompress(&data[..len], Some(LZ4_LEGACY_BLOCK as i32))
            .context("decompressing lz4")?;
        out.extend_from_slice(&block);
        data = &data[len..];
    }
    Ok(out)
}

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `28 b5 2f fd`
    Zstd,
    /// `1f 8b`
    Gzip,
    /// `fd 37 7a 58 5a 00` ("\xfd7zXZ\0")
    Xz,
    /// `02 21 4c 18` (lz4 legacy frame)
    Lz4,
    /// Not compressed (or unknown).
    Plain,
}

impl Format {
    /// Detects the format from the first bytes.
    pub fn detect(data: &[u8]) -> Format {
        if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else if data.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else if data.starts_with(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
            Format::Lz4
        } else {
            Format::Plain
        }
    }

    /// The name shown by `--list`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Lz4 => "lz4",
            Format::Plain => "none",
        }
    }
}

/// Decompresses `data` whatever its format (by magic); plain data is
/// returned as is.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3);
    match Format::detect(data) {
        Format::Zstd => {
            zstd::stream::read::Decoder::new(data)
                .context("starting zstd")?
                .read_to_end(&mut out)
                .context("decompressing zstd")?;
        }
        Format::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .context("decompressing gzip")?;
        }
        Format::Xz => {
            xz2::read::XzDecoder::new_multi_decoder(data)
                .read_to_end(&mut out)
                .context("decompressing xz")?;
        }
        Format::Lz4 => return unlz4_legacy(data),
        Format::Plain => return Ok(data.to_vec()),
    }
    Ok(out)
}

/// A module file's name in the initramfs: `.ko.xz`, `.ko.zst` and `.ko.gz`
/// become `.ko` (the contents are decompressed so init only calls
/// finit_module).
pub fn uncompressed_module_path(path: &str) -> String {
    for ext in [".xz", ".zst", ".gz"] {
        if let Some(stem) = path.strip_suffix(ext) {
            if stem.ends_with(".ko") {
                return stem.to_string();
            }
        }
    }
    path.to_string()
}

/// Decompresses a module file's contents according to its name, checking
/// that the contents agree with the name.
pub fn module_contents(path: &str, data: Vec<u8>) -> Result<Vec<u8>> {
    let expected = if path.ends_with(".ko.xz") {
        Format::Xz
    } else if path.ends_with(".ko.zst") {
        Format::Zstd
    } else if path.ends_with(".ko.gz") {
        Format::Gzip
    } else {
        return Ok(data);
    };
    let found = Format::detect(&data);
    if found != expected {
        bail!(
            "{path} should be {} but starts like {}",
            expected.name(),
            found.name()
        );
    }
    decompress(&data).with_context(|| format!("decompressing {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"a kernel module, more or less, repeated repeated repeated repeated";

    #[test]
    fn every_compression_round_trips_and_is_detected() {
        for (c, f) in [
            (Compression::Zstd(3), Format::Zstd),
            (Compression::Zstd(19), Format::Zstd),
            (Compression::Gzip, Format::Gzip),
            (Compression::Lz4, Format::Lz4),
            (Compression::None, Format::Plain),
        ] {
            let packed = c.compress(TEXT).unwrap();
            assert_eq!(Format::detect(&packed), f, "{c:?}");
            assert_eq!(decompress(&packed).unwrap(), TEXT, "{c:?}");
            assert_eq!(c.compress(TEXT).unwrap(), packed, "{c:?} is deterministic");
        }
    }

    #[test]
    fn lz4_legacy_frames_span_blocks_and_read_back_with_the_lz4_tool() {
        // Over 8 MiB: two blocks, as the kernel reads them.
        let data: Vec<u8> = (0..(9u32 << 20))
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        let packed = Compression::Lz4.compress(&data).unwrap();
        assert_eq!(&packed[..4], &[0x02, 0x21, 0x4c, 0x18]);
        assert_eq!(decompress(&packed).unwrap(), data);
        // A second frame may follow the first (concatenated images).
        let mut twice = packed.clone();
        twice.extend_from_slice(&packed);
        assert_eq!(decompress(&twice).unwrap().len(), 2 * data.len());
        // liblz4's own tool agrees on the format (`lz4 -l` writes this framing).
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.lz4");
        std::fs::write(&file, &packed).unwrap();
        let out = std::process::Command::new("lz4")
            .args(["-dc", file.to_str().unwrap()])
            .output()
            .expect("lz4 (Debian package lz4) is needed: scripts/setup installs it");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data);
        assert!(
            decompress(&packed[..packed.len() - 1]).is_err(),
            "a cut block is an error"
        );
    }

    #[test]
    fn modules_are_decompressed_by_extension() {
        let mut xz = Vec::new();
        xz2::read::XzEncoder::new(TEXT, 6)
            .read_to_end(&mut xz)
            .unwrap();
        let zst = zstd::bulk::compress(TEXT, 3).unwrap();
        let gz = Compression::Gzip.compress(TEXT).unwrap();
        assert_eq!(module_contents("a.ko.xz", xz).unwrap(), TEXT);
        assert_eq!(module_contents("a.ko.zst", zst).unwrap(), TEXT);
        assert_eq!(module_contents("a.ko.gz", gz.clone()).unwrap(), TEXT);
        assert_eq!(module_contents("a.ko", TEXT.to_vec()).unwrap(), TEXT);
        let err = module_contents("a.ko.xz", gz).unwrap_err();
        assert!(
            err.to_string()
                .contains("should be xz but starts like gzip"),
            "{err}"
        );
    }

    #[test]
    fn module_paths_lose_their_compression_suffix() {
        assert_eq!(uncompressed_module_path("kernel/a.ko.xz"), "kernel/a.ko");
        assert_eq!(uncompressed_module_path("kernel/a.ko.zst"), "kernel/a.ko");
        assert_eq!(uncompressed_module_path("kernel/a.ko.gz"), "kernel/a.ko");
        assert_eq!(uncompressed_module_path("kernel/a.ko"), "kernel/a.ko");
    }
}
