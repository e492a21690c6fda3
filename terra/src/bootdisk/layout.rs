//! `terra disk layout DISK`: a blank disk laid out for Terra in one step:
//! GPT with a BIOS boot partition (1 MiB), an EFI system partition (FAT32)
//! and the rest as the `terra` ext4 partition. Only a blank disk (no
//! partition table, zeros in its first and last MiB) is written; a disk
//! already laid out this way is left as it is.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::plan::{BIOS_BOOT_MIB, ESP_MIB};
use super::table::{self, read_at, Part, GPT_BIOS_BOOT, GPT_ESP, GPT_LINUX, MIB_SECTORS};
use super::{esp, mib, mounted, terra_parts};
use terra_layout::Partition;

/// The smallest terra partition worth making: the OS image is about
/// 130 MB, and a second version shares its layers.
pub const MIN_TERRA_MIB: u64 = 256;
const MIB: u64 = 1024 * 1024;

/// How `layout` makes the disk (all off by default).
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// Derive the ids from this text: see [`script`] and [`mkfs_ext4`].
    pub ids_from: Option<&'a str>,
    /// Fill the terra partition with this tree (an installed Terra
    /// partition) through `mkfs.ext4 -d`: files in sorted order, placed
    /// by mke2fs rather than by the kernel's allocator, so the same tree
    /// gives the same bytes.
    pub populate: Option<&'a Path>,
    /// Only check and say.
    pub dry_run: bool,
}

/// What `layout` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Made,
    AlreadyLaidOut,
}

/// A UUID derived from `seed` for one `role` (the disk, a partition, the
/// filesystem): the first 16 bytes of a sha256, marked as RFC 9562's
/// version 8 ("custom"). Written here because it is four lines; the uuid
/// crate's v5 would add a SHA-1 dependency for the same property.
pub fn derived_uuid(seed: &str, role: &str) -> String {
    let h = Sha256::digest(format!("terra disk layout\0{seed}\0{role}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// The sfdisk script for a disk of `sectors`. With `ids_from`, the disk's
/// and the partitions' GUIDs are derived from it (else sfdisk picks them
/// at random).
pub fn script(esp_mib: u64, label: &str, ids_from: Option<&str>) -> String {
    let bios = BIOS_BOOT_MIB * MIB_SECTORS;
    let esp = esp_mib * MIB_SECTORS;
    let disk_id = ids_from.map_or(String::new(), |seed| {
        format!("label-id: {}\n", derived_uuid(seed, "gpt"))
    });
    let uuid = |n: u32| {
        ids_from.map_or(String::new(), |seed| {
            format!(", uuid={}", derived_uuid(seed, &format!("part{n}")))
        })
    };
    format!(
        "label: gpt\n{disk_id}\
         start={s1}, size={bios}, type={GPT_BIOS_BOOT}, name=\"BIOS boot\"{u1}\n\
         start={s2}, size={esp}, type={GPT_ESP}, name=\"EFI system\"{u2}\n\
         start={s3}, type={GPT_LINUX}, name=\"{label}\"{u3}\n",
        s1 = MIB_SECTORS,
        s2 = MIB_SECTORS + bios,
        s3 = MIB_SECTORS + bios + esp,
        u1 = uuid(1),
        u2 = uuid(2),
        u3 = uuid(3),
    )
}

/// The smallest disk `layout` accepts.
pub fn min_bytes(esp_mib: u64) -> u64 {
    // 1 MiB before the first partition, 1 MiB for the backup GPT at the end.
    (1 + BIOS_BOOT_MIB + esp_mib + MIN_TERRA_MIB + 1) * MIB
}

/// Lays out `disk`, printing each step.
pub fn layout(disk: &Path, label: &str, o: &Options) -> Result<Outcome> {
    let d = disk.display();
    if let Some(tree) = o.populate {
        check_tree(tree)?;
    }
    let esp_mib = ESP_MIB;
    if let Some(n) = mounted::partition_number(disk)? {
        bail!("{d} is partition {n} of a disk: terra disk layout lays out a whole disk (lsblk shows which)");
    }
    if let Some(m) = mounted::mounts(disk)?.first() {
        bail!("{d} is in use: something on it is mounted at {}; terra disk layout writes only a blank disk", m.mount_point);
    }
    if let Some(t) = table::read(disk)? {
        let ours = t.parts.len() == 3
            && t.parts[0].is_bios_boot()
            && t.parts[1].is_esp()
            && terra_parts(disk, &t.parts[2..], label)?.len() == 1;
        if ours && o.populate.is_some() {
            bail!("{d} is laid out for Terra already: --populate makes the terra partition anew and writes only a blank disk (terra install adds versions to this one)");
        }
        if ours {
            println!(
                "{d} is laid out for Terra already (BIOS boot, EFI system, {label}): nothing to do"
            );
            return Ok(Outcome::AlreadyLaidOut);
        }
        bail!(
            "{d} has a partition table ({} partitions): terra disk layout writes only a blank disk and deletes nothing; make an ext4 partition labelled {label} yourself (mkfs.ext4 -L {label}), or wipe the disk first if nothing on it is needed (wipefs -a {d})",
            t.parts.len()
        );
    }
    let size = table::disk_bytes(disk)?;
    if size < min_bytes(esp_mib) {
        bail!(
            "{d} is {}: too small for Terra's layout (1 MiB BIOS boot, {esp_mib} MiB EFI system partition, at least {MIN_TERRA_MIB} MiB for {label}, and the partition tables: {} in all)",
            mib(size),
            mib(min_bytes(esp_mib))
        );
    }
    let head = read_at(disk, 0, MIB as usize)?;
    let tail = read_at(disk, size - MIB, MIB as usize)?;
    if head.iter().chain(tail.iter()).any(|&b| b != 0) {
        bail!("{d} is not blank: its first or last MiB holds data (a filesystem or a partition table terra does not know; blkid {d} says what), and terra disk layout deletes nothing; wipe it first if nothing on it is needed (wipefs -a {d})");
    }
    let script = script(esp_mib, label, o.ids_from);
    println!(
        "{d} ({}): GPT with 1: BIOS boot (1 MiB), 2: EFI system ({esp_mib} MiB, FAT32), 3: {label} (ext4 labelled {label}, {})",
        mib(size),
        mib(size - min_bytes(esp_mib) + MIN_TERRA_MIB * MIB)
    );
    if o.dry_run {
        return Ok(Outcome::Made);
    }
    table::sfdisk(disk, &[], &script)?;
    let t = table::read(disk)?.context("the partition table sfdisk just wrote")?;
    let [_, esp_part, terra] = t.parts.as_slice() else {
        bail!("sfdisk wrote {} partitions on {d}, not 3", t.parts.len());
    };
    esp::format(disk, esp_part)?;
    mkfs_ext4(disk, terra, label, o)?;
    match o.populate {
        Some(tree) => println!(
            "{d}: laid out, {label} made from {}; next: terra bootloader install {d}",
            tree.display()
        ),
        None => println!("{d}: laid out; next: terra --device <partition 3> install REF, then terra bootloader install {d}"),
    }
    Ok(Outcome::Made)
}

/// `--populate` takes an installed Terra partition, nothing else: a wrong
/// directory would otherwise become the disk's terra partition.
fn check_tree(tree: &Path) -> Result<()> {
    let t = tree.display();
    if !tree.is_dir() {
        bail!("--populate {t}: expected a directory holding an installed Terra partition (a mounted one), found no such directory");
    }
    let metadata = Partition::new(tree).metadata();
    if !metadata.is_file() {
        bail!(
            "--populate {t}: expected an installed Terra partition (with {}), found none: install into a partition first (terra --device DEV install REF) and give its mount point",
            metadata.strip_prefix(tree).unwrap_or(&metadata).display()
        );
    }
    Ok(())
}

/// mkfs.ext4 on the partition: through its device node on a block device
/// (the kernel was told of it by sfdisk), at its offset in an image file.
/// With `ids_from`, the filesystem's UUID and its directory hash seed are
/// derived from it (the seed also steers where ext4 puts directories).
/// With `populate`, `-d` copies the tree in (mke2fs sorts each directory
/// with strcoll: `LC_ALL=C` makes that the same order everywhere).
fn mkfs_ext4(disk: &Path, part: &Part, label: &str, o: &Options) -> Result<()> {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-L", label]).stdin(Stdio::null());
    if let Some(tree) = o.populate {
        cmd.arg("-d").arg(tree).env("LC_ALL", "C");
    }
    // mke2fs reads only its last -E: the options go in one.
    let mut ext = Vec::new();
    if let Some(seed) = o.ids_from {
        cmd.arg("-U").arg(derived_uuid(seed, "ext4"));
        ext.push(format!(
            "hash_seed={}",
            derived_uuid(seed, "ext4 hash seed")
        ));
    }
    let is_block = std::fs::metadata(disk)?.file_type().is_block_device();
    if is_block {
        let node = Path::new(&part.node);
        // devtmpfs makes the node when the kernel learns of the partition.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !node.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        cmd.arg(node);
        if !ext.is_empty() {
            cmd.arg("-E").arg(ext.join(","));
        }
    } else {
        // -F: mkfs.ext4 asks before writing into a file that holds a
        // partition table, which is the point here.
        ext.push(format!("offset={}", part.offset()));
        cmd.arg("-F")
            .arg("-E")
            .arg(ext.join(","))
            .arg(disk)
            .arg(format!("{}k", part.bytes() / 1024));
    }
    let out = cmd.output().context("running mkfs.ext4 (e2fsprogs)")?;
    if !out.status.success() {
        bail!(
            "mkfs.ext4 on {}: {}",
            part.node,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_has_three_partitions_from_1_mib() {
        let s = script(64, "terra", None);
        assert!(s.starts_with("label: gpt\n"));
        assert!(s.contains(&format!("start=2048, size=2048, type={GPT_BIOS_BOOT}")));
        assert!(s.contains(&format!("start=4096, size=131072, type={GPT_ESP}")));
        assert!(s.contains(&format!("start=135168, type={GPT_LINUX}, name=\"terra\"")));
        assert_eq!(min_bytes(64), 323 * MIB);
        assert!(!s.contains("label-id") && !s.contains("uuid="));
    }

    #[test]
    fn ids_from_a_seed_are_fixed_and_differ_by_role_and_seed() {
        let s = script(64, "terra", Some("v1"));
        let gpt = derived_uuid("v1", "gpt");
        assert!(
            s.starts_with(&format!("label: gpt\nlabel-id: {gpt}\n")),
            "{s}"
        );
        for n in 1..=3 {
            let u = derived_uuid("v1", &format!("part{n}"));
            assert!(s.contains(&format!("uuid={u}\n")), "{s}");
        }
        assert_eq!(s, script(64, "terra", Some("v1")));
        assert_ne!(s, script(64, "terra", Some("v2")));
        assert_ne!(derived_uuid("v1", "part1"), derived_uuid("v1", "part2"));
        let u = derived_uuid("v1", "ext4");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8", "version 8: {u}");
        assert!("89ab".contains(&u[19..20]), "the RFC variant: {u}");
    }
}
