//! `bench-kernel`: boot to the handoff with the Terra kernel against Debian's
//! cloud kernel, each with its Terra initramfs (the cloud kernel's carries
//! and loads virtio_pci, virtio_blk and overlay; the Terra kernel's has no
//! modules), plus the floor (an `/init` that only prints the clock) on each
//! kernel, which is the kernel's own share. Same disk, interleaved rounds
//! (A B C D A B C D …), TCG with `-icount shift=0` so the guest clock counts
//! instructions and the numbers repeat whatever the host load; medians.
//!
//! Run it with `scripts/bench-kernel [--rounds N]` after `scripts/setup`,
//! `scripts/build` and `scripts/build-kernel`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use terra_qemu::floor::floor_initramfs;
use terra_qemu::{Vm, VmConfig};
use terra_tests::disk::{ext4_image, FS_MIB};
use terra_tests::initramfs::{self, Flavor};
use terra_tests::kernel;
use terra_tests::partition::standard;
use terra_tests::probe::wait_handoff_clock;
use terra_tests::stats::{human, median};
use terra_tests::tools::tools;

/// Boot-time benchmark: the Terra kernel vs Debian's cloud kernel.
#[derive(Parser, Debug)]
struct Args {
    /// Boots of each case.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Plain TCG instead of -icount (varies with host load).
    #[arg(long)]
    no_icount: bool,
    /// Print every guest console line.
    #[arg(long)]
    verbose: bool,
}

/// The same for every boot: kernel messages cost guest time under TCG.
const APPEND: &str = "quiet";

struct Case {
    name: String,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn main() {
    if let Err(err) = run(Args::parse()) {
        eprintln!("bench-kernel: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let tools = tools()?;
    let terra = kernel::kernel()?;
    let scratch = tempfile::Builder::new().prefix("terra-bench-").tempdir()?;
    let dir = scratch.path();
    let disk = dir.join("terra.img");
    ext4_image(
        &standard(&dir.join("tree"), &tools.busybox)?,
        "terra",
        &disk,
        FS_MIB,
    )?;
    let floor = dir.join("floor.cpio");
    std::fs::write(&floor, floor_initramfs()?)?;
    let cloud = &tools.kernel;
    let cases = [
        Case {
            name: format!("cloud {} + terra initramfs (vm modules)", cloud.version),
            kernel: cloud.image.clone(),
            initrd: initramfs::build(tools, dir, Flavor::Vm)?,
        },
        Case {
            name: format!("terra {} + terra initramfs (no modules)", terra.version),
            kernel: terra.image.clone(),
            initrd: kernel::initramfs(tools, terra, dir)?.0,
        },
        Case {
            name: "cloud kernel + floor".into(),
            kernel: cloud.image.clone(),
            initrd: floor.clone(),
        },
        Case {
            name: "terra kernel + floor".into(),
            kernel: terra.image.clone(),
            initrd: floor,
        },
    ];
    let mode = if args.no_icount {
        "plain TCG (varies with host load)"
    } else {
        "TCG -icount shift=0 (guest clock counts instructions)"
    };
    println!(
        "{mode}; disk: vda terra ({FS_MIB} MiB ext4); append `{APPEND}`; {} rounds, interleaved",
        args.rounds
    );
    println!(
        "time = the clock (/proc/timer_list) at the handoff (probe) or in the floor's /init\n"
    );

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..args.rounds {
        for (i, case) in cases.iter().enumerate() {
            let t = boot_once(case, &disk, !args.no_icount, args.verbose)
                .with_context(|| format!("{}, round {}", case.name, round + 1))?;
            eprintln!("  round {} {:>52}: {t:.3} s", round + 1, case.name);
            times[i].push(t);
        }
    }

    println!("| kernel + initramfs | kernel size | initramfs size | median | min | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (case, t) in cases.iter().zip(&times) {
        let (min, max) = t
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {} | {} | {} | {:.3} s | {:.3} s | {:.3} s |",
            case.name,
            human(std::fs::metadata(&case.kernel)?.len()),
            human(std::fs::metadata(&case.initrd)?.len()),
            median(t),
            min,
            max
        );
    }
    let m: Vec<f64> = times.iter().map(|t| median(t)).collect();
    println!();
    println!(
        "To the handoff: Terra kernel {:.3} s vs cloud kernel {:.3} s: {:.3} s faster ({:.0}% of the time)",
        m[1],
        m[0],
        m[0] - m[1],
        100.0 * m[1] / m[0]
    );
    println!(
        "Kernel alone (floor): Terra {:.3} s vs cloud {:.3} s; initramfs share: Terra {:.3} s vs cloud {:.3} s",
        m[3],
        m[2],
        m[1] - m[3],
        m[0] - m[2]
    );
    Ok(())
}

/// One boot; returns the clock at the handoff.
fn boot_once(case: &Case, disk: &Path, icount: bool, verbose: bool) -> Result<f64> {
    let cfg = VmConfig::new(&case.kernel)
        .initrd(&case.initrd)
        .append(APPEND)
        .disk(disk)
        .icount(icount)
        .echo(verbose);
    let mut vm = Vm::start(&cfg)?;
    let time = wait_handoff_clock(&mut vm, Duration::from_secs(180))?;
    vm.expect_poweroff(Duration::from_secs(120))?;
    Ok(time)
}
