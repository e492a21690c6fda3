//! Is anything on a disk mounted? Writing a boot sector, a partition table
//! or a FAT under a mounted filesystem corrupts it, so the boot loader and
//! layout commands look first.
//!
//! A block device's partitions are found in sysfs (`/sys/dev/block/M:N`);
//! an image file's mounts go through loop devices whose `backing_file` is
//! the image (a partition either as `loopNpM` or as a loop `offset`).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where on the disk a mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The whole disk (or a loop device over the whole image).
    Disk,
    /// A partition by number.
    Part(u32),
    /// A loop device over the image at this byte offset.
    Offset(u64),
}

/// One mount of something on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub place: Place,
    pub mount_point: String,
}

/// The `major:minor` and mount point of every mount (`/proc/self/mountinfo`
/// fields 3 and 5).
pub fn parse_mountinfo(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(2)?.to_string(), f.get(4)?.to_string()))
        })
        .collect()
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// The devices (major:minor) that are the disk or part of it.
fn devices(disk: &Path) -> Result<Vec<(String, Place)>> {
    let meta = fs::metadata(disk).with_context(|| format!("reading {}", disk.display()))?;
    let mut out = Vec::new();
    if meta.file_type().is_block_device() {
        let rdev = meta.rdev();
        let id = format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev));
        out.push((id.clone(), Place::Disk));
        out.extend(partitions_of(&PathBuf::from(format!(
            "/sys/dev/block/{id}"
        ))));
        return Ok(out);
    }
    let want = fs::canonicalize(disk)?;
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let sys = e.path();
        let Some(backing) = read_trim(&sys.join("loop/backing_file")) else {
            continue;
        };
        if Path::new(&backing) != want {
            continue;
        }
        let Some(id) = read_trim(&sys.join("dev")) else {
            continue;
        };
        let offset: u64 = read_trim(&sys.join("loop/offset"))
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        out.push((
            id,
            if offset == 0 {
                Place::Disk
            } else {
                Place::Offset(offset)
            },
        ));
        out.extend(partitions_of(&sys));
    }
    Ok(out)
}

/// `NAME/NAMEpN/` dirs with a `partition` file: the partitions the kernel knows.
fn partitions_of(sys: &Path) -> Vec<(String, Place)> {
    let Ok(entries) = fs::read_dir(sys) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let n: u32 = read_trim(&e.path().join("partition"))?.parse().ok()?;
            Some((read_trim(&e.path().join("dev"))?, Place::Part(n)))
        })
        .collect()
}

/// The partition number when `disk` is a block device that is a
/// partition (sysfs gives it a `partition` file), else `None`.
pub fn partition_number(disk: &Path) -> Result<Option<u32>> {
    let meta = fs::metadata(disk).with_context(|| format!("reading {}", disk.display()))?;
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    let rdev = meta.rdev();
    let sys = format!(
        "/sys/dev/block/{}:{}/partition",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    );
    Ok(read_trim(Path::new(&sys)).and_then(|n| n.parse().ok()))
}

/// Every mount of the disk or of something on it.
pub fn mounts(disk: &Path) -> Result<Vec<Mount>> {
    let devs = devices(disk)?;
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&info)
        .into_iter()
        .filter_map(|(id, mp)| {
            let (_, place) = devs.iter().find(|(d, _)| *d == id)?;
            Some(Mount {
                place: place.clone(),
                mount_point: mp,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields() {
        let t = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw\n\
                 40 1 7:3 / /tmp/esp rw - vfat /dev/loop3 rw\n";
        assert_eq!(
            parse_mountinfo(t),
            [
                ("98:0".to_string(), "/mnt/parent".to_string()),
                ("7:3".to_string(), "/tmp/esp".to_string())
            ]
        );
    }
}
