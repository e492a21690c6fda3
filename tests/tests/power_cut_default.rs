//! QEMU tier: power cuts while the running system switches its default.
//! v1 (good) boots, pinned with `terra.version=v1`, and a service of its own
//! runs `terra default v2 --tries 3` and `terra rollback` in a loop on the
//! mounted partition; QEMU is killed at a random instant of the loop, 20
//! times. After each cut `e2fsck` after journal replay finds the filesystem
//! consistent, and the records parse and are exactly the state before a
//! command or after it (never torn, never a mix). Then one boot without a
//! pin ends on a good version.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use terra_layout::{Metadata, Partition};
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::initramfs::Flavor;
use terra_tests::osimage::{self, records, replay_and_check, CutInstants};
use terra_tests::partition::fake_chain_id;

/// From QEMU's start to the first flip (stage 2 starts the service at
/// once), with room for a loaded machine.
const BOOT: Duration = Duration::from_secs(300);

/// The service v1 carries: it flips the default until the power is cut.
const FLIP_SERVICE: &str =
    r#"{"argv": ["/bin/sh", "/usr/lib/terra/flip"], "after": [], "restart": "never"}"#;
const FLIP_SCRIPT: &str = r#"#!/bin/sh
t="terra --root /run/terra/partition"
i=0
while :; do
  i=$((i + 1))
  echo "FLIP $i default"
  $t default v2 --tries 3 || { echo "FLIP-FAILED default"; exit 1; }
  echo "FLIP $i rollback"
  $t rollback || { echo "FLIP-FAILED rollback"; exit 1; }
done
"#;

/// The disk (v1 good and the default, v2 installed, made pending once and
/// rolled back, as the loop leaves it) and the two states the records may
/// hold: after a rollback, and after `terra default v2 --tries 3`.
fn disk(s: &Scenario) -> Result<(PathBuf, Metadata, Metadata)> {
    let root = osimage::partition_tree(&s.path("tree"), osimage::os_image()?, &["v1", "v2"])?;
    let part = Partition::new(&root);
    let rel = terra_layout::partition::layer_snapshot(&fake_chain_id("power-cut-default"));
    let dir = part.resolve(&rel)?;
    for (path, text) in [
        ("etc/terra/services/flip.json", FLIP_SERVICE),
        ("usr/lib/terra/flip", FLIP_SCRIPT),
    ] {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().context("parent")?)?;
        std::fs::write(&file, text)?;
    }
    let mut meta = Metadata::load(&part.metadata())?;
    let v1 = meta.versions.get_mut("v1").context("v1")?;
    v1.boot.good = true;
    v1.lowers.insert(0, rel);
    meta.activate("v2", 3)?;
    meta.rollback()?;
    meta.store(&part.metadata())?;
    let rolled_back = meta.clone();
    let mut pending = meta.clone();
    pending.activate("v2", 3)?;
    let image = s.path("disk.img");
    terra_tests::disk::ext4_image(&root, "terra", &image, osimage::DISK_MIB)?;
    Ok((image, rolled_back, pending))
}

#[test]
fn power_cuts_during_terra_default_and_rollback() -> Result<()> {
    let s = Scenario::new()?;
    let (disk, rolled_back, pending) = disk(&s)?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let mut cuts = CutInstants::from_env();
    let (mut old, mut new, mut flips) = (0, 0, 0);
    for round in 0..20 {
        // Up to 3 s into the loop: several commands, cut anywhere in them.
        let at = Duration::from_millis(cuts.next_below(3000));
        let cfg = s.vm(&initrd, &[&disk], "terra.version=v1").memory_mb(1024);
        let mut vm = Vm::start(&cfg)?;
        vm.wait_for("terra: flip: FLIP 1 default", BOOT)
            .with_context(|| format!("round {round}"))?;
        std::thread::sleep(at);
        vm.kill();
        let c = vm.console.lines();
        ensure!(
            !c.iter().any(|l| l.contains("FLIP-FAILED")),
            "round {round}: a command failed:\n{}",
            tail(&c)
        );
        let last = c.iter().rev().find(|l| l.contains("terra: flip: FLIP "));
        flips += c
            .iter()
            .filter(|l| l.contains("terra: flip: FLIP "))
            .count();
        replay_and_check(&disk).with_context(|| format!("round {round}, cut at {at:?}"))?;
        let m = records(&disk).with_context(|| format!("round {round}, cut at {at:?}"))?;
        if m == rolled_back {
            old += 1;
        } else if m == pending {
            new += 1;
        } else {
            anyhow::bail!(
                "round {round}: cut {at:?} into the loop ({last:?}): the records are neither state: {m:?}"
            );
        }
        eprintln!(
            "round {round}: cut {:.1} s into the loop, after {last:?}: default {:?}",
            at.as_secs_f64(),
            m.default
        );
    }
    eprintln!(
        "cuts left v1 the default {old} times, v2 pending {new} times; {flips} commands started"
    );
    // The next boot, without a pin, ends on a good version: v1, or v2 once
    // its gate passes.
    let cfg = s.vm(&initrd, &[&disk], "").memory_mb(1024);
    let mut vm = Vm::start(&cfg)?;
    let line = vm.wait_for("terra: booting version ", BOOT)?;
    vm.wait_for("terra: health gate passed", BOOT)
        .with_context(|| line.clone())?;
    // The good mark is written (fsync'd) right after the verdict line.
    let name = line
        .strip_prefix("terra: booting version ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("")
        .to_string();
    if name == "v2" {
        vm.wait_for("terra: boot counting: version v2 marked good", BOOT)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    vm.kill();
    let c = vm.console.lines();
    replay_and_check(&disk)?;
    let m = records(&disk)?;
    let rec = m
        .versions
        .get(&name)
        .with_context(|| format!("{line}\n{}", tail(&c)))?;
    ensure!(rec.boot.good, "{line}: {m:?}\n{}", tail(&c));
    eprintln!("the boot after the cuts: {line}, good");
    Ok(())
}
