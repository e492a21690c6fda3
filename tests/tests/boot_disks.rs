//! QEMU tier: where the partition is: the second partition of a GPT disk,
//! a second disk, and a disk that appears only after stage 1 started waiting.

use std::time::Duration;

use anyhow::{ensure, Result};
use terra_qemu::Vm;
use terra_tests::boot::{boot_probe, lines_with, tail, Scenario, BOOT_TIMEOUT};
use terra_tests::initramfs::Flavor;
use terra_tests::partition::hostname_of;
use terra_tests::probe::Report;

#[test]
fn partition_found_as_the_second_partition() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.partitioned_disk("gpt.img")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, console) = boot_probe(&s.vm(&initrd, &[&disk], ""))?;
    ensure!(
        !lines_with(&console, "terra: found partition terra on /dev/vda2").is_empty(),
        "want /dev/vda2:\n{}",
        tail(&console)
    );
    ensure!(r.get("hostname")? == hostname_of("v1"));
    ensure!(r.mount_at("/run/terra/partition")?.source == "/dev/vda2");
    Ok(())
}

#[test]
fn partition_found_on_a_second_disk() -> Result<()> {
    let s = Scenario::new()?;
    // The first disk has the same tree under another label: it must be ignored.
    let other = s.standard_disk("other.img", "other")?;
    let terra = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, console) = boot_probe(&s.vm(&initrd, &[&other, &terra], ""))?;
    ensure!(
        !lines_with(&console, "terra: found partition terra on /dev/vdb").is_empty(),
        "want /dev/vdb:\n{}",
        tail(&console)
    );
    ensure!(r.get("hostname")? == hostname_of("v1"));
    ensure!(r.mount_at("/var/lib/containerd")?.source == "/dev/vdb");
    Ok(())
}

#[test]
fn a_disk_added_late_is_waited_for() -> Result<()> {
    let s = Scenario::new()?;
    let terra = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s.vm(&initrd, &[], "terra.timeout=60").qmp(s.dir.path());
    let mut vm = Vm::start(&cfg)?;
    // Stage 1 is running (and finds nothing) before the disk exists.
    vm.wait_for("terra: ", BOOT_TIMEOUT)?;
    std::thread::sleep(Duration::from_secs(3));
    let before = vm.console.lines();
    ensure!(
        lines_with(&before, "terra: found partition").is_empty()
            && lines_with(&before, "terra: FATAL").is_empty(),
        "stage 1 did not wait:\n{}",
        tail(&before)
    );
    vm.hot_add_disk(&terra)?;
    let found = vm.wait_for(
        "terra: found partition terra on /dev/vda",
        Duration::from_secs(40),
    )?;
    let r = Report::read(&mut vm, BOOT_TIMEOUT)?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    ensure!(r.get("hostname")? == hostname_of("v1"), "{found}: {r:#?}");
    Ok(())
}
