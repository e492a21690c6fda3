//! Stage 2 in QEMU with Debian's cloud kernel and Terra's real OS image
//! (containerd, runc, busybox from Debian; `osimage/build`): terra-init stays
//! PID 1, starts containerd, supervises and reaps, and shuts down cleanly.
//!
//! Each boot picks a scenario of the image's test hook with
//! `osimage.hook=NAME`; the hook prints `TERRA-HOOK ...` markers, which reach
//! the console through stage 2's log as `terra: hook: TERRA-HOOK ...`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use terra_qemu::qmp::Qmp;
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::initramfs::Flavor;
use terra_tests::osimage;

/// From QEMU's start to containerd answering and the hook's end: about
/// 20 s on an idle machine under TCG; the rest is room for a loaded one.
const BOOT: Duration = Duration::from_secs(240);
const HOOK: &str = "terra: hook: TERRA-HOOK ";

/// Boots the disk with `osimage.hook=HOOK` (+ `extra`), waits for containerd
/// to be ready, for the hook to ask for the power-off and for the guest to
/// power off. Returns the console.
fn boot_hook(s: &Scenario, disk: &Path, hook: &str, extra: &str) -> Result<Vec<String>> {
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s
        .vm(&initrd, &[disk], &format!("osimage.hook={hook} {extra}"))
        .memory_mb(1024);
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: handoff: supervise", BOOT)?;
    vm.wait_for("terra: containerd is ready", BOOT)?;
    vm.wait_for(&format!("{HOOK}poweroff"), BOOT)?;
    vm.wait_for("terra: powering off", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    Ok(vm.console.lines())
}

fn has(console: &[String], needle: &str) -> bool {
    console.iter().any(|l| l.contains(needle))
}

fn marker<'a>(console: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{HOOK}{name}=");
    console.iter().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[test]
fn containerd_answers_and_runs_a_container() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let c = boot_hook(&s, &disk, "basic", "")?;
    let t = tail(&c);
    assert!(
        has(&c, "TERRA-HOOK ctr-version-ok"),
        "ctr version failed:\n{t}"
    );
    assert!(
        has(&c, "TERRA-HOOK import-ok"),
        "ctr image import failed:\n{t}"
    );
    assert!(
        c.iter()
            .any(|l| l == "terra: hook: Hello from a container on Terra"),
        "no line from the container:\n{t}"
    );
    assert_eq!(marker(&c, "container-exit"), Some("0"), "{t}");
    // Stage 2 set up the container host.
    assert!(has(&c, "terra: hostname terra"), "{t}");
    assert_eq!(marker(&c, "cgroup2"), Some("yes"), "{t}");
    for m in [
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys/kernel/security",
        "/sys/fs/bpf",
    ] {
        assert!(
            has(&c, &format!("TERRA-HOOK mounted={m}")),
            "{m} is not mounted:\n{t}"
        );
    }
    assert_eq!(marker(&c, "ptmx"), Some("pts/ptmx"), "{t}");
    assert_eq!(marker(&c, "hostname"), Some("terra"), "{t}");
    assert_eq!(marker(&c, "lo"), Some("up"), "{t}");
    assert_eq!(
        marker(&c, "containerd-ppid"),
        Some("1"),
        "containerd is not a child of PID 1:\n{t}"
    );
    // Boot counting: containerd answered, so v1 is marked good on the partition.
    let meta = terra_tests::disk::debugfs(&disk, "cat /ov/metadata.db")?;
    let meta = terra_layout::Metadata::parse(&meta)?;
    assert!(
        meta.versions["v1"].boot.good,
        "v1 not marked good: {meta:?}"
    );
    assert!(!meta.versions["v2"].boot.good);
    // The orderly shutdown left a clean filesystem.
    osimage::fsck_clean(&disk)?;
    Ok(())
}

#[test]
fn containerd_killed_is_restarted_and_the_log_says_why() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let c = boot_hook(&s, &disk, "restart", "")?;
    let t = tail(&c);
    let line =
        marker(&c, "containerd-restarted old").context(format!("no restart marker:\n{t}"))?;
    let (old, new) = line.split_once(" new=").context("marker format")?;
    assert!(
        !new.is_empty() && new != old,
        "containerd was not restarted: {line}\n{t}"
    );
    assert!(
        c.iter().any(|l| l.starts_with(&format!(
            "terra: containerd (pid {old}) was killed by signal SIGKILL"
        )) && l.contains("restarting in")),
        "the log does not say containerd died and is restarted:\n{t}"
    );
    let ready = c
        .iter()
        .filter(|l| l.starts_with("terra: containerd is ready:"))
        .count();
    assert!(
        ready >= 2,
        "containerd was not ready again after the restart:\n{t}"
    );
    osimage::fsck_clean(&disk)?;
    Ok(())
}

#[test]
fn orphans_are_reaped_no_zombies_are_left() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let c = boot_hook(&s, &disk, "zombies", "")?;
    let t = tail(&c);
    let orphans: u32 = marker(&c, "orphans-of-pid1")
        .context(format!("no orphans marker:\n{t}"))?
        .parse()?;
    assert!(orphans > 0, "the scenario made no orphans of PID 1:\n{t}");
    assert_eq!(marker(&c, "zombies"), Some("0"), "zombies were left:\n{t}");
    osimage::fsck_clean(&disk)?;
    Ok(())
}

#[test]
fn sigterm_powers_off_cleanly_and_vlc_data_persists() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let token = format!("t{}", std::process::id());
    let c = boot_hook(
        &s,
        &disk,
        "persist-write",
        &format!("osimage.token={token}"),
    )?;
    let t = tail(&c);
    assert_eq!(marker(&c, "written"), Some(token.as_str()), "{t}");
    // `kill -TERM 1` from the hook: services stopped, then the rest, then unmounts.
    assert!(has(&c, "terra: received SIGTERM"), "{t}");
    assert!(has(&c, "terra: stopping containerd"), "{t}");
    assert!(
        c.iter()
            .any(|l| l == "terra: mount -o remount,ro /run/terra/partition"),
        "the partition was not made read-only:\n{t}"
    );
    let report = osimage::fsck_clean(&disk)?;
    assert!(!report.contains("recover"), "{report}");

    // Next boot (the other version): the data in /var/lib/containerd is there,
    // and so is the image containerd imported.
    let c = boot_hook(&s, &disk, "persist-read", "terra.version=v2")?;
    let t = tail(&c);
    assert!(has(&c, "terra: booting version v2"), "{t}");
    assert_eq!(marker(&c, "persist"), Some(token.as_str()), "{t}");
    assert!(
        marker(&c, "images").is_some_and(|i| i.contains("docker.io/terra/hello:latest")),
        "the imported image is gone:\n{t}"
    );
    osimage::fsck_clean(&disk)?;
    Ok(())
}

#[test]
fn terra_init_still_execs_the_named_program() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s.vm(&initrd, &[&disk], "terra.init=/usr/lib/terra/probe");
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: handoff: exec /usr/lib/terra/probe", BOOT)?;
    vm.wait_for("TERRA-PROBE-BEGIN", BOOT)?;
    let pid = vm.wait_for("pid=", BOOT)?;
    assert_eq!(pid, "pid=1", "the probe is not PID 1");
    vm.wait_for("TERRA-PROBE-END", BOOT)?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    let c = vm.console.lines();
    assert!(
        !has(&c, "terra: stage 2"),
        "stage 2 ran although terra.init was given:\n{}",
        tail(&c)
    );
    Ok(())
}

#[test]
fn ctrl_alt_del_reboots_in_order() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s
        .vm(&initrd, &[&disk], "osimage.hook=stay")
        .memory_mb(1024)
        .qmp(s.dir.path());
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: containerd is ready", BOOT)?;
    vm.wait_for(&format!("{HOOK}staying up"), BOOT)?;
    // The keyboard's ctrl-alt-del: the kernel sends SIGINT to PID 1, because
    // stage 2 turned the immediate reboot off (reboot(2) CAD_OFF).
    let mut qmp = Qmp::connect(&s.path("qmp.sock"), Duration::from_secs(10))?;
    let keys: Vec<serde_json::Value> = ["ctrl", "alt", "delete"]
        .iter()
        .map(|k| serde_json::json!({"type": "qcode", "data": k}))
        .collect();
    qmp.execute("send-key", serde_json::json!({ "keys": keys }))?;
    vm.wait_for("terra: received SIGINT", Duration::from_secs(60))?;
    vm.wait_for("terra: stopping containerd", Duration::from_secs(60))?;
    vm.wait_for(
        "terra: mount -o remount,ro /run/terra/partition",
        Duration::from_secs(60),
    )?;
    vm.wait_for("terra: rebooting", Duration::from_secs(60))?;
    // -no-reboot: QEMU exits when the guest reboots.
    vm.expect_poweroff(Duration::from_secs(30))?;
    osimage::fsck_clean(&disk)?;
    Ok(())
}

#[test]
fn terra_reboot_reboots_in_order() -> Result<()> {
    let s = Scenario::new()?;
    let disk = osimage::disk(&s.path("disk.img"))?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s
        .vm(&initrd, &[&disk], "osimage.hook=reboot")
        .memory_mb(1024);
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for(&format!("{HOOK}reboot"), BOOT)?;
    vm.wait_for("terra: received SIGINT", Duration::from_secs(60))?;
    vm.wait_for("terra: rebooting", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    osimage::fsck_clean(&disk)?;
    Ok(())
}
