//! VM tier for the runner itself: real boots of Debian's cloud kernel with
//! the floor initramfs (no Terra code involved), so a runner bug shows here
//! and not as a mysterious failure of a boot scenario.

use std::time::Duration;

use anyhow::{ensure, Result};
use terra_qemu::floor::{floor_initramfs, parse_clock, CLOCK_PREFIX, UPTIME_PREFIX};
use terra_qemu::{Kernel, Outcome, Vm, VmConfig};

fn floor_config(dir: &tempfile::TempDir) -> Result<VmConfig> {
    let kernel = Kernel::cloud()?;
    let initrd = dir.path().join("floor.cpio");
    std::fs::write(&initrd, floor_initramfs()?)?;
    Ok(VmConfig::new(kernel.image).initrd(initrd))
}

#[test]
fn the_floor_prints_its_clock_and_powers_off() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut vm = Vm::start(&floor_config(&dir)?.icount(true))?;
    let line = vm.wait_for(UPTIME_PREFIX, Duration::from_secs(60))?;
    let uptime: f64 = line[UPTIME_PREFIX.len()..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse()?;
    // Under -icount the guest clock counts instructions: about 1.56 s here.
    ensure!((0.5..5.0).contains(&uptime), "uptime {uptime}");
    // The same clock to the nanosecond, from /proc/timer_list, read just after.
    let clock = parse_clock(&vm.wait_for(CLOCK_PREFIX, Duration::from_secs(30))?)?;
    ensure!(
        (uptime..uptime + 0.02).contains(&clock),
        "timer_list clock {clock} s, uptime {uptime} s"
    );
    ensure!(vm.wait(Duration::from_secs(30))? == Outcome::PoweredOff);
    Ok(())
}

#[test]
fn a_kernel_panic_is_reported_as_such() -> Result<()> {
    // No initramfs and no disk: the kernel cannot mount a root and panics;
    // panic=-1 and -no-reboot make QEMU exit at once.
    let kernel = Kernel::cloud()?;
    let mut vm = Vm::start(&VmConfig::new(kernel.image))?;
    let outcome = vm.wait(Duration::from_secs(60))?;
    ensure!(outcome == Outcome::Panicked, "{outcome:?}");
    ensure!(outcome.exit_code() == 1);
    Ok(())
}

#[test]
fn a_guest_past_its_timeout_is_killed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut vm = Vm::start(&floor_config(&dir)?)?;
    let outcome = vm.wait(Duration::from_millis(300))?;
    ensure!(outcome == Outcome::TimedOut, "{outcome:?}");
    ensure!(outcome.exit_code() == 124);
    Ok(())
}
