//! QEMU tier, end to end: versions installed by `terra install` from the
//! registry into a partition directory, made into an ext4 image
//! (`mkfs.ext4 -d`), booted with `terra.version=`; an install killed during
//! the download, during the unpack, after the sync and right before its
//! record leaves the earlier version booting, and the rerun finishes. Needs
//! `scripts/build` first.

use std::fs;

use anyhow::{ensure, Result};
use terra_tests::boot::{boot_probe, lines_with, tail, Scenario};
use terra_tests::disk::{ext4_image, FS_MIB};
use terra_tests::initramfs::Flavor;
use terra_tests::install_support::*;
use terra_tests::ocilayout::{noise, Breakage, Layer, Layout, Tar};
use terra_tests::partition::{base_layer as probe_base, hostname_of};

/// The probe's base layer (busybox, /sbin/init = the probe) as a tar.
fn base_tar(s: &Scenario) -> Result<Layer> {
    let dir = s.path("base");
    fs::create_dir(&dir)?;
    probe_base(&dir, &s.tools.busybox)?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &dir)?;
    Ok(Layer::gzip(b.into_inner()?))
}

/// The same whiteout and opaque dir as the boot tests' partition, OCI style.
fn whiteout_tar() -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .whiteout("etc", "whiteme")
        .dir("opt", 0o755)
        .dir("opt/opaque", 0o755)
        .opaque("opt/opaque")
        .file("opt/opaque/upper-file", b"seen\n", 0o644);
    Layer::gzip(t.finish())
}

fn host_tar(version: &str) -> Layer {
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file(
            "etc/hostname",
            format!("{}\n", hostname_of(version)).as_bytes(),
            0o644,
        )
        .dir("boot", 0o755)
        .file(
            &format!("boot/vmlinuz-6.1.0-{version}"),
            b"not a real kernel",
            0o644,
        );
    Layer::zstd(t.finish())
}

/// 300 small files and 256 KiB that do not compress.
fn data_tar() -> Layer {
    let mut t = Tar::new();
    t.dir("data", 0o755);
    let noise = noise(256 << 10, 0x1234_5678);
    t.file("data/noise", &noise, 0o644);
    for i in 0..300 {
        t.file(&format!("data/f{i}"), b"x", 0o644);
    }
    Layer::gzip(t.finish())
}

#[test]
fn installed_versions_boot_and_a_killed_install_leaves_the_old_one_booting() -> Result<()> {
    let s = Scenario::new()?;
    let reg = terra_tests::registry::Registry::start()?;
    let mut layout = Layout::create(&s.path("img"))?;
    let base = base_tar(&s)?;
    layout.add_image(
        Some("v1"),
        &[base.clone(), whiteout_tar(), host_tar("v1")],
        &Breakage::default(),
    )?;
    // v2 has a layer of its own big enough to be caught mid-download and mid-unpack.
    layout.add_image(
        Some("v2"),
        &[base.clone(), whiteout_tar(), data_tar(), host_tar("v2")],
        &Breakage::default(),
    )?;
    let v1 = reg.push(&layout.dir, "v1", "terra/os")?;
    let v2 = reg.push(&layout.dir, "v2", "terra/os")?;
    let tree = s.path("tree");
    fs::create_dir(&tree)?;
    let r = tree.to_str().unwrap();
    ok(&["--root", r, "install", &v1, "--init", "/sbin/init"]);
    for point in ["download", "unpack", "publish", "record"] {
        kill_at(
            &terra_crash_bin(),
            point,
            &install_args(r, &v2, &["--init", "/sbin/init", "-j", "1"]),
        );
    }
    ensure!(!meta(&tree).versions.contains_key("v2"));

    let initrd = s.initramfs(Flavor::Vm)?;
    let boot = |name: &str, append: &str| -> Result<terra_tests::probe::Report> {
        // Sparse image files are cheap; one per boot keeps them independent.
        let disk = s.path(&format!("{name}.img"));
        ext4_image(&tree, "terra", &disk, FS_MIB)?;
        let (report, console) = boot_probe(&s.vm(&initrd, &[&disk], append))?;
        let t = tail(&console);
        ensure!(
            !lines_with(&console, "terra: handoff: exec /sbin/init").is_empty(),
            "{t}"
        );
        Ok(report)
    };

    // After the kill: v1 (the default) boots; asking for v2 falls back to it.
    let r1 = boot("after-kill", "")?;
    ensure!(r1.get("hostname")? == hostname_of("v1"), "{r1:#?}");
    ensure!(r1.get("whiteout")? == "hidden", "{r1:#?}");
    ensure!(r1.all("opaque") == ["upper-file"], "{r1:#?}");

    // The same command finishes the job; v2 boots when asked for.
    ok(&["--root", r, "install", &v2, "--init", "/sbin/init"]);
    let r2 = boot("v2", "terra.version=v2")?;
    ensure!(r2.get("hostname")? == hostname_of("v2"), "{r2:#?}");
    ensure!(r2.get("whiteout")? == "hidden", "{r2:#?}");
    let root = r2.mount_at("/")?;
    let m = meta(&tree);
    ensure!(root.fstype == "overlay", "{root:?}");
    ensure!(
        root.options.contains(&m.versions["v2"].lowers[0]),
        "v2's top layer in {root:?}"
    );
    let r1 = boot("v1", "terra.version=v1")?;
    ensure!(r1.get("hostname")? == hostname_of("v1"), "{r1:#?}");

    // The boot menu: one entry per version, the default first.
    let cfg = fs::read_to_string(tree.join("boot/grub/grub.cfg"))?;
    let entries: Vec<&str> = cfg.lines().filter(|l| l.starts_with("menuentry")).collect();
    ensure!(
        entries.len() == 2 && entries[0].contains("Terra v1 (default)"),
        "{cfg}"
    );
    ensure!(
        cfg.contains("linux /boot/v2/vmlinuz-6.1.0-v2 terra.version=v2"),
        "{cfg}"
    );
    Ok(())
}
