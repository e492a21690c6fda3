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
    /// A plain cpio archive.
    None,
}

/// The zstd level used when none is given. Measured on Debian's cloud
/// kernel (see the README): level 19 makes the vm image about 6% smaller
/// than level 3 but costs several times the build time.
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
            Compression::None => Ok(data.to_vec()),
        }
    }

    /// A short name (`zstd -19`, `gzip`, `none`).
    pub fn describe(self) -> String {
        match self {
            Compression::Zstd(level) => format!("zstd -{level}"),
            Compression::Gzip => "gzip".into(),
            Compression::None => "none".into(),
        }
    }
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
            (Compression::None, Format::Plain),
        ] {
            let packed = c.compress(TEXT).unwrap();
            assert_eq!(Format::detect(&packed), f, "{c:?}");
            assert_eq!(decompress(&packed).unwrap(), TEXT, "{c:?}");
            assert_eq!(c.compress(TEXT).unwrap(), packed, "{c:?} is deterministic");
        }
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
