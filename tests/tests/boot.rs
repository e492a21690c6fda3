//! QEMU tier: booting versions of the standard test partition (v1 default,
//! v2 newer), each test a real boot of Debian's cloud kernel with Terra's
//! initramfs, reading the serial console. Needs `scripts/build` first.

use anyhow::{ensure, Result};
use terra_layout::partition::{layer_snapshot, version_rw};
use terra_layout::Metadata;
use terra_layout::Partition;
use terra_tests::boot::{boot_probe, check_default_boot, lines_with, tail, Scenario};
use terra_tests::initramfs::Flavor;
use terra_tests::partition::VLC_FILE;
use terra_tests::probe::Report;

fn version_of(report: &Report) -> Result<String> {
    Ok(report
        .get("hostname")?
        .trim_start_matches("terra-")
        .to_string())
}

#[test]
fn default_version_boots_with_overlay_root_vlc_and_handoff_as_pid1() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, console) = boot_probe(&s.vm(&initrd, &[&disk], ""))?;
    check_default_boot(&r, &console)?;

    // The root is an overlay of exactly v1's layers, top-most first, and its upper dir.
    let meta = Metadata::load(&Partition::new(s.standard_tree()?).metadata())?;
    let v1 = &meta.versions["v1"];
    let root = r.mount_at("/")?;
    let lowerdir = option(&root.options, "lowerdir").unwrap_or_default();
    let lowers: Vec<&str> = lowerdir.split(':').collect();
    ensure!(
        lowers.len() == v1.lowers.len(),
        "lowerdir {lowerdir} vs {:?}",
        v1.lowers
    );
    for (seen, want) in lowers.iter().zip(&v1.lowers) {
        ensure!(
            seen.ends_with(want.as_str()),
            "lowerdir {lowerdir} must list {want} in order"
        );
    }
    let upper = option(&root.options, "upperdir").unwrap_or_default();
    ensure!(upper.ends_with(&version_rw("v1").0), "upperdir {upper}");

    // /var/lib/containerd is the partition's vlc/ (mounted from /dev/vda,
    // checked above), with its files.
    let shared = format!("{}:{}", VLC_FILE.0, VLC_FILE.1);
    ensure!(
        r.all("vlc").contains(&shared.as_str()),
        "vlc files {:?}",
        r.all("vlc")
    );

    for (target, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "devtmpfs"),
        ("/run", "tmpfs"),
        ("/tmp", "tmpfs"),
        ("/run/terra/partition", "ext4"),
    ] {
        let m = r.mount_at(target)?;
        ensure!(m.fstype == fstype, "{target} is {m:?}, want {fstype}");
    }

    // The timeline for the running system.
    let timeline = r.get("bootjson")?;
    ensure!(
        timeline.starts_with('{') && timeline.contains("\"v1\"") && timeline.contains("/dev/vda"),
        "/run/terra/boot.json: {timeline:?}"
    );
    Ok(())
}

#[test]
fn terra_version_picks_each_version() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    for name in ["v2", "v1"] {
        let (r, console) = boot_probe(&s.vm(&initrd, &[&disk], &format!("terra.version={name}")))?;
        let want = format!("terra: booting version {name} (requested)");
        ensure!(
            !lines_with(&console, &want).is_empty(),
            "want {want:?}:\n{}",
            tail(&console)
        );
        ensure!(
            version_of(&r)? == name,
            "booted {:?}, asked {name}",
            r.get("hostname")
        );
        let lowerdir = option(&r.mount_at("/")?.options, "lowerdir").unwrap_or_default();
        let host_layer = layer_snapshot(&terra_tests::partition::fake_chain_id(&format!(
            "hostname-{name}"
        )));
        ensure!(
            lowerdir.contains(&host_layer),
            "{name}'s layer in {lowerdir}"
        );
    }
    Ok(())
}

#[test]
fn writes_persist_per_version_and_vlc_is_shared() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let boot = |append: &str| boot_probe(&s.vm(&initrd, &[&disk], append)).map(|(r, _)| r);

    // v1 writes a file in its root and one in vlc.
    let r = boot("terra.version=v1 probe.write=marker-v1 probe.vlcwrite=v1")?;
    ensure!(
        r.get("wrote")? == "marker-v1" && r.get("vlcwrote")? == "v1",
        "{r:#?}"
    );
    // Its next boot still has it (the same disk image: the upper layer is persistent).
    let r = boot("terra.version=v1")?;
    ensure!(
        r.get("marker")? == "marker-v1",
        "v1's file did not persist: {r:#?}"
    );
    // v2 does not see v1's root file, but sees both files in vlc.
    let r = boot("terra.version=v2")?;
    ensure!(version_of(&r)? == "v2");
    ensure!(r.get("marker")? == "none", "v2 sees v1's file: {r:#?}");
    let vlc = r.all("vlc");
    ensure!(
        vlc.contains(&"from-v1:v1") && vlc.contains(&"shared-file:from-vlc"),
        "vlc in v2: {vlc:?}"
    );
    Ok(())
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_files() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, _) = boot_probe(&s.vm(&initrd, &[&disk], "terra.version=v2"))?;
    ensure!(
        r.get("whiteout")? == "hidden",
        "/etc/whiteme (a whiteout above it) is visible"
    );
    ensure!(
        r.all("opaque") == ["upper-file"],
        "/opt/opaque is opaque: only the upper file, saw {:?}",
        r.all("opaque")
    );
    Ok(())
}

#[test]
fn unknown_version_falls_back_to_the_default_and_says_so() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, console) = boot_probe(&s.vm(&initrd, &[&disk], "terra.version=nope"))?;
    let t = tail(&console);
    ensure!(
        version_of(&r)? == "v1",
        "booted {:?}, want the default v1",
        r.get("hostname")
    );
    let said = console
        .iter()
        .any(|l| l.starts_with("terra: ") && l.contains("nope") && !l.contains("Command line"));
    ensure!(
        said,
        "no terra: line names the unknown version 'nope':\n{t}"
    );
    let chosen = lines_with(&console, "terra: booting version v1 (");
    ensure!(
        chosen
            .iter()
            .any(|l| l.ends_with("(default)") || l.ends_with("(fallback)")),
        "want v1 (default|fallback), got {chosen:?}:\n{t}"
    );
    Ok(())
}

/// The value of `key=` in a comma-separated mount option list.
fn option(options: &str, key: &str) -> Option<String> {
    options
        .split(',')
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}
