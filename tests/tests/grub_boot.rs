//! QEMU tier: a disk that boots through GRUB, with no `-kernel`. Two
//! versions installed by `terra install` (each image carries Debian's cloud
//! kernel and a Terra initramfs in /boot), GRUB in the MBR, and the menu
//! read and driven on the serial console: the default boots by itself, the
//! second entry is picked with the arrow keys, and after `terra default v2`
//! the next boot's default is v2. Needs `scripts/build` first.

use std::time::Duration;

use anyhow::{ensure, Result};
use terra_qemu::{Vm, VmConfig};
use terra_tests::boot::{lines_with, tail, Scenario};
use terra_tests::grubdisk::{
    bios_grub_disk, install, last_highlighted, layout_with_kernel, menu_entries, terra,
    wait_for_text, GRUB_FS_MIB,
};
use terra_tests::initramfs::Flavor;
use terra_tests::partition::hostname_of;
use terra_tests::probe::Report;

/// From QEMU's start to the probe's report: about 15 s here under TCG
/// (the menu waits 5 s of it); the rest is room for a loaded machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// GRUB has drawn its menu and reads keys.
const MENU_UP: &str = "Press enter to boot the selected OS";

/// The down arrow as a VT100 terminal sends it, then Enter.
const SECOND_ENTRY: &str = "\x1b[B\r";

struct Booted {
    report: Report,
    console: Vec<String>,
    secs: f64,
}

/// Boots `disk` through its firmware and GRUB; with `keys`, types them once
/// the menu is up. Returns the probe's report and the whole console.
fn boot(disk: &std::path::Path, keys: Option<&str>) -> Result<Booted> {
    let cfg = VmConfig::disk_boot()
        .disk(disk)
        .echo(terra_tests::boot::echo_requested());
    let mut vm = Vm::start(&cfg)?;
    wait_for_text(&vm, MENU_UP, BOOT_TIMEOUT)?;
    if let Some(keys) = keys {
        vm.send(keys)?;
    }
    let report = Report::read(&mut vm, BOOT_TIMEOUT)?;
    let secs = vm.elapsed().as_secs_f64();
    vm.expect_poweroff(Duration::from_secs(30))?;
    Ok(Booted {
        report,
        console: vm.console.lines(),
        secs,
    })
}

/// The version booted: the kernel's command line and the probe's hostname agree.
fn check_booted(b: &Booted, version: &str, entries: &[&str]) -> Result<()> {
    let t = tail(&b.console);
    let menu = menu_entries(&b.console, &["v1", "v2"]);
    ensure!(menu == entries, "menu {menu:?}, not {entries:?}:\n{t}");
    let cmdline: Vec<&String> = b
        .console
        .iter()
        .filter(|l| l.contains("] Command line: "))
        .collect();
    ensure!(
        cmdline.len() == 1
            && cmdline[0].contains(&format!(
                "BOOT_IMAGE=/boot/{version}/vmlinuz-{}",
                terra_tests::tools::tools()?.kernel.version
            ))
            && cmdline[0].contains(&format!(" terra.version={version} ")),
        "{cmdline:?}\n{t}"
    );
    ensure!(
        b.report.get("hostname")? == hostname_of(version),
        "{:#?}\n{t}",
        b.report
    );
    ensure!(
        b.report.mount_at("/")?.fstype == "overlay",
        "{:#?}",
        b.report
    );
    Ok(())
}

#[test]
fn a_grub_disk_boots_the_default_and_the_entry_picked_on_the_serial_console() -> Result<()> {
    let s = Scenario::new()?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let layout = layout_with_kernel(s.tools, &initrd, &s.path("oci"), &["v1", "v2"])?;
    let tree = s.path("tree");
    install(&tree, &layout, &["v1", "v2"])?;
    let disk = s.path("disk.img");
    bios_grub_disk(&tree, "terra", &disk, GRUB_FS_MIB)?;

    // The default (the first installed) boots when nobody types.
    let b = boot(&disk, None)?;
    println!("boot 1 (default, menu timeout): {:.1} s", b.secs);
    check_booted(&b, "v1", &["*Terra v1 (default)", "Terra v2"])?;
    ensure!(
        !lines_with(&b.console, "terra: handoff: exec /sbin/init").is_empty(),
        "{}",
        tail(&b.console)
    );

    // Down arrow and Enter on the serial console: the second entry.
    let b = boot(&disk, Some(SECOND_ENTRY))?;
    println!("boot 2 (second entry, typed): {:.1} s", b.secs);
    check_booted(&b, "v2", &["*Terra v1 (default)", "Terra v2"])?;
    // GRUB redrew the menu with the highlight on the second entry.
    let picked = last_highlighted(&b.console);
    ensure!(
        picked.as_deref() == Some("Terra v2"),
        "{picked:?}:\n{}",
        tail(&b.console)
    );

    // terra default rewrites grub.cfg; the next boot's default is v2.
    let root = tree.to_str().unwrap_or_default();
    terra(&["--root", root, "default", "v2"])?;
    let cfg = std::fs::read_to_string(tree.join("boot/grub/grub.cfg"))?;
    ensure!(
        cfg.lines()
            .find(|l| l.starts_with("menuentry"))
            .is_some_and(|l| l.contains("'Terra v2 (default)'")),
        "{cfg}"
    );
    bios_grub_disk(&tree, "terra", &disk, GRUB_FS_MIB)?;
    let b = boot(&disk, None)?;
    println!("boot 3 (v2 made default): {:.1} s", b.secs);
    check_booted(&b, "v2", &["*Terra v2 (default)", "Terra v1"])?;
    Ok(())
}
