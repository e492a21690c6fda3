//! Root tier: `terra disk layout` and `terra bootloader install` on image
//! files, read back with sfdisk, mtools and the bytes themselves: what they
//! write, that a second run changes nothing, and that bad disks (no terra
//! partition, something mounted, no room for an EFI system partition, a
//! disk that is not blank) are refused before a byte is written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use terra_tests::bootdisk::terra;
use terra_tests::disk::{label_at, run, run_with_stdin};

const MIB: u64 = 1024 * 1024;
const ESP_TYPE: &str = "C12A7328-F812-11D2-BA4B-00A0C93EC93B";
const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";

/// sha256sum's (the debug build's sha2 takes seconds per image).
fn sha(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {}", path.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A sparse image of `mib` with the sfdisk `script` (none when empty).
fn image(dir: &Path, name: &str, mib: u64, script: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    fs::File::create(&p)?.set_len(mib * MIB)?;
    if !script.is_empty() {
        run_with_stdin(Command::new("sfdisk").arg("--quiet").arg(&p), script)?;
    }
    Ok(p)
}

/// mkfs.ext4 -L LABEL inside the image at `start_mib`.
fn ext4_at(img: &Path, start_mib: u64, size_mib: u64, label: &str) -> Result<()> {
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-E"])
        .arg(format!("offset={}", start_mib * MIB))
        .arg(img)
        .arg(format!("{size_mib}M")))
}

/// `sfdisk --json` of the image: (start, size, type) per partition.
fn parts(img: &Path) -> Result<Vec<(u64, u64, String)>> {
    let out = Command::new("sfdisk").arg("--json").arg(img).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("sfdisk --json")?;
    let mut ps: Vec<(u64, u64, String)> = v["partitiontable"]["partitions"]
        .as_array()
        .context("partitions")?
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap_or(0),
                p["size"].as_u64().unwrap_or(0),
                p["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    ps.sort();
    Ok(ps)
}

/// A file from the FAT at `offset` (mtools), or its error.
fn fat_file(img: &Path, offset: u64, path: &str) -> Result<Vec<u8>> {
    let out = Command::new("mcopy")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{offset}", img.display()))
        .arg(format!("::{path}"))
        .arg("-")
        .output()
        .context("mcopy (mtools: scripts/setup)")?;
    ensure!(
        out.status.success(),
        "mcopy {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn blkid_uuid(img: &Path, offset: u64) -> Result<String> {
    let out = Command::new("blkid")
        .args(["-p", "-s", "UUID", "-o", "value", "-O"])
        .arg(offset.to_string())
        .arg(img)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn grub_file(target: &str, name: &str) -> Result<Vec<u8>> {
    let p = Path::new("/usr/lib/grub").join(target).join(name);
    fs::read(&p).with_context(|| format!("{} (grub-pc-bin: scripts/setup)", p.display()))
}

#[test]
fn a_blank_disk_laid_out_and_made_bootable_for_uefi_and_bios() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let img = image(dir.path(), "disk.img", 512, "")?;
    let d = img.to_str().context("utf-8")?;
    let (ok, out) = terra(&["disk", "layout", d])?;
    ensure!(ok, "{out}");
    let ps = parts(&img)?;
    ensure!(ps.len() == 3, "{ps:?}");
    ensure!(ps[0] == (2048, 2048, BIOS_BOOT_TYPE.to_string()), "{ps:?}");
    ensure!(ps[1] == (4096, 64 * 2048, ESP_TYPE.to_string()), "{ps:?}");
    let terra_off = ps[2].0 * 512;
    ensure!(label_at(&img, terra_off)? == "terra");
    let layout_hash = sha(&img)?;
    let (ok, out) = terra(&["disk", "layout", d])?;
    ensure!(ok && out.contains("laid out for Terra already"), "{out}");
    ensure!(
        sha(&img)? == layout_hash,
        "a second layout changed the disk"
    );

    let (ok, out) = terra(&["bootloader", "install", d])?;
    ensure!(ok, "{out}");
    let uuid = blkid_uuid(&img, terra_off)?;
    ensure!(
        out.contains(&format!("by its UUID {uuid}")) && out.contains("EFI/BOOT/BOOTX64.EFI"),
        "it says what it writes: {out}"
    );
    // UEFI: a PE image at the removable-media path, its early config
    // searching the terra partition by UUID.
    let efi = fat_file(&img, ps[1].0 * 512, "/EFI/BOOT/BOOTX64.EFI")?;
    ensure!(efi.starts_with(b"MZ"), "not a PE image");
    let needle = format!("search --no-floppy --fs-uuid --set=root {uuid}");
    ensure!(
        efi.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "no UUID search in BOOTX64.EFI"
    );
    // BIOS: boot.img's code in the MBR pointing at the BIOS boot
    // partition; core.img there, reading its rest from the next sector.
    let disk = fs::read(&img)?;
    let boot = grub_file("i386-pc", "boot.img")?;
    ensure!(disk[..0x5c] == boot[..0x5c]);
    ensure!(disk[0x5c..0x64] == 2048u64.to_le_bytes());
    ensure!(disk[510..512] == [0x55, 0xaa]);
    let core = &disk[2048 * 512..];
    let diskboot = grub_file("i386-pc", "diskboot.img")?;
    ensure!(core[..0x100] == diskboot[..0x100]);
    ensure!(core[0x1f4..0x1fc] == 2049u64.to_le_bytes());

    // Again: the same bytes.
    let installed = sha(&img)?;
    let (ok, out) = terra(&["bootloader", "install", d])?;
    ensure!(ok, "{out}");
    ensure!(sha(&img)? == installed, "a second install changed the disk");
    Ok(())
}

#[test]
fn a_disk_a_person_partitioned_gets_the_partitions_grub_needs_in_free_space() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // GPT, the terra partition alone at 1 MiB, 100 MiB free after it.
    let img = image(
        dir.path(),
        "gpt.img",
        200,
        "label: gpt\nstart=2048, size=94MiB, type=linux\n",
    )?;
    ext4_at(&img, 1, 94, "terra")?;
    let before = fs::read(&img)?[MIB as usize..95 * MIB as usize].to_vec();
    let d = img.to_str().context("utf-8")?;
    let (ok, out) = terra(&["bootloader", "install", d])?;
    ensure!(
        ok && out.contains("new EFI system partition") && out.contains("new BIOS boot partition"),
        "{out}"
    );
    let ps = parts(&img)?;
    ensure!(ps.len() == 3, "{ps:?}");
    ensure!(ps[1].2 == ESP_TYPE && ps[2].2 == BIOS_BOOT_TYPE, "{ps:?}");
    fat_file(&img, ps[1].0 * 512, "/EFI/BOOT/BOOTX64.EFI")?;
    ensure!(
        fs::read(&img)?[MIB as usize..95 * MIB as usize] == before[..],
        "the terra partition changed"
    );
    let hash = sha(&img)?;
    let (ok, out) = terra(&["bootloader", "install", d])?;
    ensure!(ok && !out.contains("new "), "{out}");
    ensure!(sha(&img)? == hash, "a second install changed the disk");
    Ok(())
}

/// Runs `terra ARGS` expecting a refusal that says `why`, and checks the
/// disk is unchanged.
fn refused(img: &Path, args: &[&str], why: &str) -> Result<()> {
    let before = sha(img)?;
    let (ok, out) = terra(args)?;
    ensure!(!ok, "{args:?} was not refused:\n{out}");
    ensure!(
        out.contains(why),
        "{args:?}: the message does not say {why:?}:\n{out}"
    );
    ensure!(sha(img)? == before, "{args:?} wrote to the disk:\n{out}");
    Ok(())
}

#[test]
fn bad_disks_are_refused_and_left_unwritten() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // No terra partition: one ext4 labelled other.
    let other = image(
        dir.path(),
        "other.img",
        100,
        "label: gpt\nstart=2048, type=linux\n",
    )?;
    ext4_at(&other, 1, 90, "other")?;
    let o = other.to_str().context("utf-8")?;
    refused(
        &other,
        &["bootloader", "install", o],
        "no partition with an ext4 filesystem labelled \"terra\"",
    )?;
    refused(
        &other,
        &["bootloader", "install", o],
        "ext4 labelled \"other\"",
    )?;
    // One ext4 over the whole disk: no table, no room for GRUB.
    let whole = image(dir.path(), "whole.img", 64, "")?;
    ext4_at(&whole, 0, 64, "terra")?;
    refused(
        &whole,
        &["bootloader", "install", whole.to_str().context("utf-8")?],
        "no partition table",
    )?;
    // MBR, a person's one partition filling the disk: no room for an ESP.
    let full = image(
        dir.path(),
        "full.img",
        64,
        "label: dos\nstart=2048, type=83\n",
    )?;
    ext4_at(&full, 1, 63, "terra")?;
    let f = full.to_str().context("utf-8")?;
    refused(
        &full,
        &["bootloader", "install", f],
        "too small for an EFI system partition",
    )?;
    // ... which boots by BIOS alone: the table stays as the person made it.
    let table = fs::read(&full)?[0x1b8..0x200].to_vec();
    let (ok, out) = terra(&["bootloader", "install", "--bios-only", f])?;
    ensure!(
        ok && out.contains("the gap between the MBR and the first partition"),
        "{out}"
    );
    ensure!(fs::read(&full)?[0x1b8..0x200] == table[..]);
    // --dry-run says and writes nothing.
    let blank = image(dir.path(), "laid.img", 400, "")?;
    let b = blank.to_str().context("utf-8")?;
    let (ok, out) = terra(&["disk", "layout", b])?;
    ensure!(ok, "{out}");
    refused_ok_dry(&blank)?;
    // Another partition of the disk mounted (the host kernel here has no
    // vfat to mount an ESP with): refused, and layout refuses a disk in use.
    let busy = image(
        dir.path(),
        "busy.img",
        200,
        "label: gpt\nstart=1MiB, size=100MiB, type=linux\nstart=102MiB, size=90MiB, type=linux\n",
    )?;
    let b = busy.to_str().context("utf-8")?;
    ext4_at(&busy, 1, 100, "terra")?;
    ext4_at(&busy, 102, 90, "data")?;
    let mnt = dir.path().join("data");
    fs::create_dir(&mnt)?;
    run(Command::new("mount")
        .args(["-o", &format!("loop,ro,offset={}", 102 * MIB)])
        .arg(&busy)
        .arg(&mnt))?;
    let blank = &busy;
    let r = refused(blank, &["bootloader", "install", b], "is mounted at")
        .and_then(|()| refused(blank, &["disk", "layout", b], "is in use"));
    run(Command::new("umount").arg(&mnt))?;
    r?;
    // layout: a disk that is not blank, a disk too small.
    refused(&other, &["disk", "layout", o], "has a partition table")?;
    let used = image(dir.path(), "used.img", 400, "")?;
    ext4_at(&used, 0, 400, "data")?;
    refused(
        &used,
        &["disk", "layout", used.to_str().context("utf-8")?],
        "is not blank",
    )?;
    let small = image(dir.path(), "small.img", 200, "")?;
    refused(
        &small,
        &["disk", "layout", small.to_str().context("utf-8")?],
        "too small for Terra's layout",
    )?;
    // --populate: only an installed Terra partition's tree, only on a blank
    // disk (a laid-out one would lose its versions).
    let pop = image(dir.path(), "pop.img", 400, "")?;
    let not_terra = dir.path().join("not-terra");
    fs::create_dir_all(not_terra.join("etc"))?;
    let not_terra = not_terra.to_str().context("utf-8")?;
    let p = pop.to_str().context("utf-8")?;
    refused(
        &pop,
        &["disk", "layout", p, "--populate", not_terra],
        "expected an installed Terra partition",
    )?;
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("ov"))?;
    fs::write(tree.join("ov/metadata.db"), "{}")?;
    let laid = dir.path().join("laid.img");
    refused(
        &laid,
        &[
            "disk",
            "layout",
            laid.to_str().context("utf-8")?,
            "--populate",
            tree.to_str().context("utf-8")?,
        ],
        "is laid out for Terra already",
    )?;
    Ok(())
}

fn refused_ok_dry(img: &Path) -> Result<()> {
    let before = sha(img)?;
    let (ok, out) = terra(&[
        "bootloader",
        "install",
        "--dry-run",
        img.to_str().context("utf-8")?,
    ])?;
    ensure!(ok && out.contains("nothing written"), "{out}");
    ensure!(sha(img)? == before, "--dry-run wrote");
    Ok(())
}
