//! BIOS disks that boot Terra through GRUB, as a machine does: the firmware
//! runs GRUB from the disk's MBR, GRUB finds the partition labelled `terra`
//! and reads the `boot/grub/grub.cfg` that `terra` wrote there.
//!
//! The versions on it are installed by the real `terra` CLI from an OCI
//! layout whose top layer carries `/boot/vmlinuz-<kver>` (Debian's cloud
//! kernel) and `/boot/initrd.img-<kver>` (Terra's mkinitrd), so `terra`
//! copies them to `boot/<version>/` and lists them in the menu.
//!
//! GRUB goes on the disk the way `grub-install --target=i386-pc` puts it
//! there, without a loop device: `grub-mkimage` makes `core.img` (the disk,
//! partition table and ext4 drivers, and the prefix `(,msdos1)/boot/grub`:
//! the partition on the disk the BIOS booted), `boot.img` goes in the MBR's
//! code area (its stock block list points at sector 1) and `core.img` in the
//! gap before the first partition; the modules go to `boot/grub/i386-pc/`.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use terra_qemu::Vm;

use crate::disk::{run, run_with_stdin};
use crate::ocilayout::{Breakage, Layer, Layout, Tar};
use crate::partition::{base_layer, hostname_of};
use crate::tools::Tools;

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;

/// Where the first partition starts: 1 MiB, the usual alignment; the
/// sectors before it (after the MBR) hold `core.img`.
pub const PART_START: u64 = MIB;

/// Size of the terra filesystem on a GRUB disk: two versions with their own
/// kernel and initrd (each in a blob, a snapshot and `boot/`) and GRUB.
pub const GRUB_FS_MIB: u64 = 160;

/// GRUB's BIOS files (grub-pc-bin); `TERRA_GRUB_DIR` overrides.
pub fn grub_dir() -> PathBuf {
    std::env::var_os("TERRA_GRUB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/grub/i386-pc"))
}

/// `target/release/terra` built by scripts/build (`TERRA_BIN` overrides).
pub fn terra_bin() -> Result<PathBuf> {
    let p = std::env::var_os("TERRA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools::target_dir().join("release/terra"));
    ensure!(
        p.is_file(),
        "{} is missing: run scripts/build first",
        p.display()
    );
    Ok(p)
}

/// Runs `terra ARGS` and returns its output; its stderr is the error.
pub fn terra(args: &[&str]) -> Result<String> {
    let bin = terra_bin()?;
    let out = Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "terra {args:?} failed:\n{text}");
    Ok(text)
}

/// An OCI layout in `dir` with one image per name (tagged with it): the
/// probe's base layer (busybox, `/sbin/init` = the probe), then a top layer
/// with the version's `/etc/hostname` ([`hostname_of`]) and the kernel and
/// `initrd` under `/boot`.
pub fn layout_with_kernel(
    tools: &Tools,
    initrd: &Path,
    dir: &Path,
    names: &[&str],
) -> Result<Layout> {
    let base_dir = dir.with_extension("base");
    base_layer(&base_dir, &tools.busybox)?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &base_dir)?;
    let base = Layer::gzip(b.into_inner()?);
    let kver = &tools.kernel.version;
    let kernel = read(&tools.kernel.image)?;
    let initrd = read(initrd)?;
    let mut layout = Layout::create(dir)?;
    for name in names {
        let mut top = Tar::new();
        top.dir("etc", 0o755)
            .file(
                "etc/hostname",
                format!("{}\n", hostname_of(name)).as_bytes(),
                0o644,
            )
            .dir("boot", 0o755)
            .file(&format!("boot/vmlinuz-{kver}"), &kernel, 0o644)
            .file(&format!("boot/initrd.img-{kver}"), &initrd, 0o644);
        // The kernel and initrd are compressed already: stored as they are.
        let top = Layer::plain(top.finish());
        layout.add_image(Some(name), &[base.clone(), top], &Breakage::default())?;
    }
    Ok(layout)
}

/// Installs every `names` image of `layout` into the partition tree `tree`
/// with `terra --root TREE install oci:DIR:NAME --init /sbin/init` (the
/// first one becomes the default).
pub fn install(tree: &Path, layout: &Layout, names: &[&str]) -> Result<()> {
    fs::create_dir_all(tree).with_context(|| format!("creating {}", tree.display()))?;
    let root = tree.to_str().context("a partition path that is UTF-8")?;
    for name in names {
        terra(&[
            "--root",
            root,
            "install",
            &layout.reference(name),
            "--init",
            "/sbin/init",
        ])?;
    }
    Ok(())
}

/// Makes `image`: an MBR disk whose one partition (bootable, from 1 MiB) is
/// an ext4 filesystem labelled `label`, `size_mib` big, filled from `tree`,
/// and GRUB in the MBR and the gap. GRUB's modules are copied into
/// `tree/boot/grub/i386-pc/` first (as grub-install does). The tree must
/// have `boot/grub/grub.cfg` (terra writes it on every change).
pub fn bios_grub_disk(tree: &Path, label: &str, image: &Path, size_mib: u64) -> Result<()> {
    let grub = grub_dir();
    let boot_img = grub.join("boot.img");
    if !boot_img.is_file() {
        bail!(
            "{} not found: install grub-pc-bin (scripts/setup)",
            boot_img.display()
        );
    }
    let cfg = tree.join("boot/grub/grub.cfg");
    ensure!(
        cfg.is_file(),
        "{} is missing: terra writes it",
        cfg.display()
    );
    copy_modules(&grub, &tree.join("boot/grub/i386-pc"))?;

    let file = fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
    file.set_len(PART_START + size_mib * MIB)?;
    drop(file);
    let script = format!(
        "label: dos\nstart={}, size={}, type=83, bootable\n",
        PART_START / SECTOR,
        size_mib * MIB / SECTOR
    );
    run_with_stdin(Command::new("sfdisk").arg("--quiet").arg(image), &script)
        .context("partitioning with sfdisk (fdisk package: scripts/setup)")?;
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-d"])
        .arg(tree)
        .arg("-E")
        .arg(format!("offset={PART_START}"))
        .arg(image)
        .arg(format!("{size_mib}M")))
    .context("mkfs.ext4 (e2fsprogs: scripts/setup)")?;

    let core = image.with_extension("core.img");
    run(Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-d"])
        .arg(&grub)
        .arg("-o")
        .arg(&core)
        .args(["-p", "(,msdos1)/boot/grub"])
        .args(["biosdisk", "part_msdos", "ext2"]))
    .context("grub-mkimage (grub-common: scripts/setup)")?;
    let core_bytes = read(&core)?;
    let _ = fs::remove_file(&core);
    write_boot_code(image, &read(&boot_img)?, &core_bytes)
}

/// GRUB's MBR code and core image, the way grub-bios-setup lays them out
/// for a core image right after the MBR.
fn write_boot_code(image: &Path, boot_img: &[u8], core_img: &[u8]) -> Result<()> {
    // The MBR's code area ends where the disk signature (0x1b8) and the
    // partition table (0x1be) begin: those stay as sfdisk wrote them.
    const CODE_END: usize = 0x1b8;
    ensure!(
        boot_img.len() == SECTOR as usize,
        "boot.img is {} bytes, not one sector",
        boot_img.len()
    );
    let gap = PART_START - SECTOR;
    ensure!(
        core_img.len() as u64 <= gap,
        "core.img ({} bytes) does not fit in the {gap} bytes before the partition",
        core_img.len()
    );
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(image)
        .with_context(|| format!("opening {}", image.display()))?;
    f.write_all(&boot_img[..CODE_END])?;
    // boot.img loads sector 1 (its default kernel_sector), and the first
    // sector of core.img (diskboot) reads the rest from sector 2 on, with
    // the length grub-mkimage wrote into its block list.
    f.seek(SeekFrom::Start(SECTOR))?;
    f.write_all(core_img)?;
    f.sync_all()?;
    Ok(())
}

/// `*.mod`, `*.lst` and the rest GRUB's normal mode loads from its prefix.
fn copy_modules(grub: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in fs::read_dir(grub).with_context(|| format!("reading {}", grub.display()))? {
        let path = entry?.path();
        let keep = path
            .extension()
            .is_some_and(|e| e == "mod" || e == "lst" || e == "o");
        if keep {
            if let Some(name) = path.file_name() {
                fs::copy(&path, dest.join(name))
                    .with_context(|| format!("copying {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// GRUB draws its menu with cursor moves, not line ends, so a menu row
/// reaches the console's line list only with the next line end. Waits for
/// `text` anywhere in a line (the cursor of [`Vm::wait_for`] is not moved).
pub fn wait_for_text(vm: &Vm, text: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = vm.console.lines();
        if let Some(line) = lines.iter().find(|l| l.contains(text)) {
            return Ok(line.clone());
        }
        if Instant::now() >= deadline {
            bail!(
                "no console line with {text:?} after {timeout:.0?}; the console ends:\n{}",
                terra_qemu::console::tail(&lines, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The console line that holds GRUB's menu rows: they follow the help text
/// on the same line, since GRUB moves the cursor instead of ending lines;
/// later redraws (a moved highlight) and the kernel's first line join it.
pub fn menu_line(console: &[String]) -> Option<&str> {
    let line = console
        .iter()
        .find(|l| l.contains("before booting or `c' for a command-line."))?;
    // The kernel's first line is not GRUB's.
    Some(line.split("] Linux version").next().unwrap_or(line))
}

/// The menu's entry titles as GRUB first drew them, in order; the
/// highlighted one starts with `*`.
pub fn menu_entries(console: &[String], names: &[&str]) -> Vec<String> {
    let Some(line) = menu_line(console) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, String)> = Vec::new();
    for name in names {
        for title in [format!("Terra {name} (default)"), format!("Terra {name}")] {
            if let Some(at) = line.find(&format!("{title} ")) {
                let star = at > 0 && line.as_bytes()[at - 1] == b'*';
                found.push((at, if star { format!("*{title}") } else { title }));
                break;
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, t)| t).collect()
}

/// The entry highlighted last (after the keys typed moved it): the title
/// after the menu line's last `*`, up to the padding.
pub fn last_highlighted(console: &[String]) -> Option<String> {
    let line = menu_line(console)?;
    let after = &line[line.rfind('*')? + 1..];
    Some(after.split("  ").next().unwrap_or(after).trim().to_string())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::label_at;

    /// The disk's layout without booting it: MBR code and signature,
    /// one bootable partition at 1 MiB with the label, core.img at sector 1.
    #[test]
    fn a_grub_disk_has_grub_in_the_mbr_and_the_partition_at_1_mib() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("boot/grub")).unwrap();
        fs::write(tree.join("boot/grub/grub.cfg"), "set timeout=1\n").unwrap();
        let image = dir.path().join("disk.img");
        bios_grub_disk(&tree, "terra", &image, 16).unwrap();
        let disk = fs::read(&image).unwrap();
        let boot = fs::read(grub_dir().join("boot.img")).unwrap();
        assert_eq!(disk[..0x1b8], boot[..0x1b8]);
        assert_eq!(disk[510..512], [0x55, 0xaa]);
        // Partition entry 1: active, type 0x83, starting at LBA 2048.
        assert_eq!(disk[0x1be], 0x80);
        assert_eq!(disk[0x1be + 4], 0x83);
        assert_eq!(disk[0x1be + 8..0x1be + 12], 2048u32.to_le_bytes());
        let diskboot = fs::read(grub_dir().join("diskboot.img")).unwrap();
        // core.img starts with diskboot.img (its block list at the end differs).
        assert_eq!(disk[512..512 + 0x100], diskboot[..0x100]);
        assert!(tree.join("boot/grub/i386-pc/normal.mod").is_file());
        assert_eq!(label_at(&image, PART_START).unwrap(), "terra");
    }

    #[test]
    fn menu_rows_in_drawing_order() {
        let console = vec![
            "GNU GRUB  version 2.06".to_string(),
            "      before booting or `c' for a command-line.  *Terra v1 (default)      Terra v2     The highlighted entry".to_string(),
        ];
        assert_eq!(
            menu_entries(&console, &["v2", "v1"]),
            ["*Terra v1 (default)", "Terra v2"]
        );
        assert_eq!(
            last_highlighted(&console).as_deref(),
            Some("Terra v1 (default)")
        );
        let redrawn = vec![format!(
            "{} Terra v1 (default)        *Terra v2       [    0.000000] Linux version 6.1.0 (x@y) #1 SMP *",
            console[1]
        )];
        assert_eq!(last_highlighted(&redrawn).as_deref(), Some("Terra v2"));
    }
}
