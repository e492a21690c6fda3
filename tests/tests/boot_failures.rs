//! QEMU tier: what stage 1 does when it cannot boot: no `terra` partition
//! (the FATAL block; the rescue shell when the initramfs has one), two of
//! them (refused, both named; `terra.device=` chooses).

use std::time::Duration;

use anyhow::{ensure, Result};
use terra_qemu::Vm;
use terra_tests::boot::{boot_probe, fatal_block, lines_with, tail, Scenario, BOOT_TIMEOUT};
use terra_tests::initramfs::Flavor;
use terra_tests::partition::hostname_of;

#[test]
fn no_terra_partition_prints_the_fatal_block_and_keeps_waiting() -> Result<()> {
    let s = Scenario::new()?;
    let other = s.standard_disk("other.img", "other")?;
    let blank = s.blank_disk("blank.img")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let mut vm = Vm::start(&s.vm(&initrd, &[&other, &blank], "terra.timeout=3"))?;
    let block = fatal_block(&mut vm, BOOT_TIMEOUT)?;
    // What was looked for, and what was seen: both disks, and the other label.
    for want in ["terra", "/dev/vda", "other", "/dev/vdb"] {
        ensure!(
            block.contains(want),
            "the FATAL block does not mention {want:?}:\n{block}"
        );
    }
    // PID 1 did not exit: no panic, QEMU still running a few seconds later.
    std::thread::sleep(Duration::from_secs(3));
    let console = vm.console.lines();
    ensure!(
        !console.iter().any(|l| l.contains("Kernel panic")),
        "PID 1 died:\n{}",
        tail(&console)
    );
    ensure!(
        matches!(
            vm.wait(Duration::from_millis(10))?,
            terra_qemu::Outcome::TimedOut
        ),
        "the guest stopped instead of waiting:\n{}",
        tail(&console)
    );
    Ok(())
}

#[test]
fn no_terra_partition_with_a_shell_starts_the_rescue_shell() -> Result<()> {
    let s = Scenario::new()?;
    let other = s.standard_disk("other.img", "other")?;
    let initrd = s.initramfs(Flavor::VmShell)?;
    let mut vm = Vm::start(&s.vm(&initrd, &[&other], "terra.timeout=3"))?;
    vm.wait_for("terra: FATAL:", BOOT_TIMEOUT)?;
    vm.wait_for(
        "terra: starting rescue shell /bin/sh",
        Duration::from_secs(30),
    )?;
    // Type a command; its output (not the echo of the typed line) proves a shell ran it.
    let mut answered = Err(anyhow::anyhow!("no answer"));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        vm.send("echo RESCUE-$((6*7))\n")?;
        answered = vm.wait_for("RESCUE-42", Duration::from_secs(5));
        if answered.is_ok() {
            break;
        }
    }
    answered.map(|_| ())
}

#[test]
fn two_terra_partitions_are_refused_naming_both() -> Result<()> {
    let s = Scenario::new()?;
    let a = s.standard_disk("a.img", "terra")?;
    let b = s.standard_disk("b.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let mut vm = Vm::start(&s.vm(&initrd, &[&a, &b], "terra.timeout=5"))?;
    let block = fatal_block(&mut vm, BOOT_TIMEOUT)?;
    ensure!(
        block.contains("/dev/vda") && block.contains("/dev/vdb"),
        "both partitions must be named:\n{block}"
    );
    ensure!(
        lines_with(&vm.console.lines(), "terra: booting version").is_empty(),
        "it booted anyway:\n{}",
        tail(&vm.console.lines())
    );
    Ok(())
}

#[test]
fn terra_device_chooses_between_two_terra_partitions() -> Result<()> {
    let s = Scenario::new()?;
    let a = s.standard_disk("a.img", "terra")?;
    let b = s.standard_disk("b.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, console) = boot_probe(&s.vm(&initrd, &[&a, &b], "terra.device=/dev/vdb"))?;
    ensure!(
        !lines_with(&console, "terra: found partition terra on /dev/vdb").is_empty(),
        "want /dev/vdb:\n{}",
        tail(&console)
    );
    ensure!(r.get("hostname")? == hostname_of("v1"));
    Ok(())
}
