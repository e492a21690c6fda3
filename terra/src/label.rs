//! The ext4 label of a device, read from its superblock (no blkid needed).

use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};

/// The superblock starts 1024 bytes in (linux/fs/ext4/ext4.h, `struct ext4_super_block`).
const SUPERBLOCK: u64 = 1024;
/// `s_magic` at offset 0x38 of the superblock: 0xEF53, little endian.
const MAGIC_OFFSET: usize = 0x38;
const MAGIC: u16 = 0xEF53;
/// `s_volume_name[16]` at offset 0x78.
const LABEL_OFFSET: usize = 0x78;

/// What the superblock says: `None` when it is not ext2/3/4 at all.
pub fn ext4_label<R: Read + Seek>(dev: &mut R) -> Result<Option<String>> {
    let mut sb = [0u8; 0x88];
    dev.seek(SeekFrom::Start(SUPERBLOCK))?;
    if let Err(e) = dev.read_exact(&mut sb) {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Ok(None);
        }
        return Err(e).context("reading the superblock");
    }
    let magic = u16::from_le_bytes([sb[MAGIC_OFFSET], sb[MAGIC_OFFSET + 1]]);
    if magic != MAGIC {
        return Ok(None);
    }
    let raw = &sb[LABEL_OFFSET..LABEL_OFFSET + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(Some(String::from_utf8_lossy(&raw[..end]).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn image(label: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 4096];
        v[1024 + MAGIC_OFFSET..1024 + MAGIC_OFFSET + 2].copy_from_slice(&MAGIC.to_le_bytes());
        v[1024 + LABEL_OFFSET..1024 + LABEL_OFFSET + label.len()].copy_from_slice(label);
        v
    }

    #[test]
    fn reads_labels() {
        assert_eq!(
            ext4_label(&mut Cursor::new(image(b"terra")))
                .unwrap()
                .as_deref(),
            Some("terra")
        );
        assert_eq!(
            ext4_label(&mut Cursor::new(image(b"sixteen-chars-ab")))
                .unwrap()
                .as_deref(),
            Some("sixteen-chars-ab")
        );
        assert_eq!(ext4_label(&mut Cursor::new(vec![0u8; 4096])).unwrap(), None);
        assert_eq!(ext4_label(&mut Cursor::new(vec![0u8; 100])).unwrap(), None);
    }

    #[test]
    fn reads_a_real_mkfs_image() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let ok = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "terra"])
            .arg(&img)
            .status()
            .expect("mkfs.ext4 (e2fsprogs) is needed")
            .success();
        assert!(ok);
        let mut f = std::fs::File::open(&img).unwrap();
        assert_eq!(ext4_label(&mut f).unwrap().as_deref(), Some("terra"));
    }
}
