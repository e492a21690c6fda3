//! Reading a filesystem label from a device, over `Read + Seek`: used by
//! stage 1 to find the partition and by `terra --device` to check it.
//!
//! Only the ext2/3/4 superblock is read: Terra's partition is ext4, and
//! anything else is reported as "no ext4 filesystem".

use std::io::{self, Read, Seek, SeekFrom};

/// The superblock starts 1024 bytes into the device, whatever the block
/// size (linux/fs/ext4/ext4.h: `EXT4_MIN_BLOCK_SIZE`; fs/ext4/super.c reads
/// it at `sb_block = 1` of 1024 bytes).
const SUPERBLOCK_OFFSET: u64 = 1024;
/// `__le16 s_magic` at 0x38 of `struct ext4_super_block` (linux/fs/ext4/ext4.h).
const MAGIC_OFFSET: usize = 0x38;
/// `EXT4_SUPER_MAGIC` (include/uapi/linux/magic.h).
const EXT4_MAGIC: u16 = 0xEF53;
/// `char s_volume_name[EXT4_LABEL_MAX]` at 0x78, `EXT4_LABEL_MAX` = 16,
/// NUL-padded (not terminated when 16 long).
const LABEL_OFFSET: usize = 0x78;
const LABEL_MAX: usize = 16;

/// What a probe found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An ext2/3/4 filesystem with this label (empty when unlabelled).
    Ext4 { label: String },
    /// No ext4 superblock (another filesystem, a partition table, or zeros).
    Unknown,
}

/// Reads the ext4 superblock label. Short devices are `Unknown`.
pub fn probe<R: Read + Seek>(dev: &mut R) -> io::Result<Probe> {
    let mut sb = [0u8; LABEL_OFFSET + LABEL_MAX];
    dev.seek(SeekFrom::Start(SUPERBLOCK_OFFSET))?;
    match dev.read_exact(&mut sb) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Probe::Unknown),
        Err(e) => return Err(e),
    }
    let magic = u16::from_le_bytes([sb[MAGIC_OFFSET], sb[MAGIC_OFFSET + 1]]);
    if magic != EXT4_MAGIC {
        return Ok(Probe::Unknown);
    }
    let raw = &sb[LABEL_OFFSET..LABEL_OFFSET + LABEL_MAX];
    let len = raw.iter().position(|&b| b == 0).unwrap_or(LABEL_MAX);
    Ok(Probe::Ext4 {
        label: String::from_utf8_lossy(&raw[..len]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Cursor;
    use std::path::Path;
    use std::process::Command;

    /// An 8 MiB image made by the real mkfs.ext4 (fails, not skips, without it).
    fn mkfs(dir: &Path, name: &str, label: Option<&str>) -> File {
        let img = dir.join(name);
        File::create(&img).unwrap().set_len(8 << 20).unwrap();
        let mut cmd = Command::new("mkfs.ext4");
        cmd.args(["-q", "-F"]);
        if let Some(l) = label {
            cmd.args(["-L", l]);
        }
        let out = cmd
            .arg(&img)
            .output()
            .expect("mkfs.ext4 (e2fsprogs) is needed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        File::open(img).unwrap()
    }

    #[test]
    fn reads_labels_of_mkfs_made_images() {
        let dir = tempfile::tempdir().unwrap();
        for (label, want) in [
            (Some("terra"), "terra"),
            (Some("exactly16chars!!"), "exactly16chars!!"),
            (Some("dé"), "dé"),
            (None, ""),
        ] {
            let mut f = mkfs(dir.path(), "img", label);
            assert_eq!(
                probe(&mut f).unwrap(),
                Probe::Ext4 { label: want.into() },
                "{label:?}"
            );
        }
    }

    #[test]
    fn other_content_is_unknown() {
        assert_eq!(
            probe(&mut Cursor::new(vec![0u8; 4096])).unwrap(),
            Probe::Unknown
        );
        assert_eq!(
            probe(&mut Cursor::new(vec![0u8; 100])).unwrap(),
            Probe::Unknown
        );
        assert_eq!(probe(&mut Cursor::new(Vec::new())).unwrap(), Probe::Unknown);
        // The magic alone makes an (unlabelled) ext4 superblock.
        let mut img = vec![0u8; 2048];
        img[1024 + 0x38] = 0x53;
        img[1024 + 0x39] = 0xEF;
        img[1024 + 0x78..1024 + 0x7d].copy_from_slice(b"hello");
        assert_eq!(
            probe(&mut Cursor::new(img)).unwrap(),
            Probe::Ext4 {
                label: "hello".into()
            }
        );
    }
}
