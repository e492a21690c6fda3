//! The EFI system partition: a FAT filesystem written in-process through
//! the whole disk at the partition's offset (the `fatfs` crate), so an
//! image file needs no loop device and the live system needs no mtools.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use fatfs::{FileSystem, FormatVolumeOptions, FsOptions};
use fscommon::{BufStream, StreamSlice};

use super::table::{read_at, Part};

/// Where UEFI firmware looks on removable media, and on any disk without a
/// boot entry in NVRAM (UEFI spec 3.5.1.1): no NVRAM entry is needed.
pub const REMOVABLE_PATH: [&str; 3] = ["EFI", "BOOT", "BOOTX64.EFI"];

/// What the partition holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A FAT boot sector (a filesystem to add a file to).
    Fat,
    /// Zeros where a boot sector would be: never formatted.
    Blank,
    /// Something else: not ours to format.
    Other,
}

/// Looks at the first sector: FAT's boot signature and its type string
/// (at 0x36 for FAT12/16, 0x52 for FAT32, in the BIOS parameter block).
pub fn content(disk: &Path, esp: &Part) -> Result<Content> {
    let s = read_at(disk, esp.offset(), 512)?;
    if s.iter().all(|&b| b == 0) {
        return Ok(Content::Blank);
    }
    let fat =
        s[510..512] == [0x55, 0xaa] && (&s[0x36..0x39] == b"FAT" || &s[0x52..0x57] == b"FAT32");
    Ok(if fat { Content::Fat } else { Content::Other })
}

fn open_slice(disk: &Path, esp: &Part) -> Result<BufStream<StreamSlice<std::fs::File>>> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {} to write", disk.display()))?;
    let slice = StreamSlice::new(f, esp.offset(), esp.offset() + esp.bytes())
        .with_context(|| format!("the EFI system partition of {}", disk.display()))?;
    Ok(BufStream::new(slice))
}

/// Formats the partition FAT32 (FAT16 when too small for FAT32), labelled
/// `TERRA-ESP`.
pub fn format(disk: &Path, esp: &Part) -> Result<()> {
    let mut s = open_slice(disk, esp)?;
    let opts = || FormatVolumeOptions::new().volume_label(*b"TERRA-ESP  ");
    // FAT32 needs at least 65525 clusters; fatfs refuses otherwise, and
    // firmware reads FAT16 as well.
    if fatfs::format_volume(&mut s, opts().fat_type(fatfs::FatType::Fat32)).is_err() {
        fatfs::format_volume(&mut s, opts()).with_context(|| {
            format!("formatting the EFI system partition of {}", disk.display())
        })?;
    }
    s.flush()?;
    Ok(())
}

/// The ESP's FAT filesystem, opened in place through the whole disk.
fn open_fs(disk: &Path, esp: &Part) -> Result<FileSystem<BufStream<StreamSlice<std::fs::File>>>> {
    FileSystem::new(open_slice(disk, esp)?, FsOptions::new()).with_context(|| {
        format!(
            "reading the FAT of {}'s EFI system partition",
            disk.display()
        )
    })
}

/// Writes `data` to `path` in the FAT (directories made as needed,
/// an existing file replaced).
pub fn write_file(disk: &Path, esp: &Part, path: &[&str], data: &[u8]) -> Result<()> {
    let fs = open_fs(disk, esp)?;
    let Some((name, dirs)) = path.split_last() else {
        bail!("an empty path");
    };
    let mut dir = fs.root_dir();
    for d in dirs {
        dir = dir
            .create_dir(d)
            .with_context(|| format!("making {d} in the ESP"))?;
    }
    let mut f = dir
        .create_file(name)
        .with_context(|| format!("making {} in the ESP", path.join("/")))?;
    f.truncate()?;
    f.write_all(data)?;
    f.flush()?;
    drop(f);
    drop(dir);
    fs.unmount()
        .with_context(|| format!("closing the FAT of {}", disk.display()))?;
    Ok(())
}

/// Reads `path` from the FAT (`None` when absent).
pub fn read_file(disk: &Path, esp: &Part, path: &[&str]) -> Result<Option<Vec<u8>>> {
    let fs = open_fs(disk, esp)?;
    let mut f = match fs.root_dir().open_file(&path.join("/")) {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    Ok(Some(data))
}
