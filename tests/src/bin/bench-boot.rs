//! `bench-boot`: how long each initramfs takes from kernel start to the
//! handoff, on the same disks and kernel, in one interleaved run
//! (A B C A B C …): (a) Terra's initramfs, (b) Debian's initramfs-tools
//! initrd with `root=LABEL=`, (c) the floor (an `/init` that only prints the
//! uptime). The handoff prints `/proc/uptime`; under `-icount shift=0` the
//! guest clock counts instructions, so the numbers repeat whatever the host
//! load. Also times building the images (mkinitrd against mkinitramfs).
//!
//! Run it with `scripts/bench-boot [--rounds N]` after `scripts/setup` and `scripts/build`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use terra_qemu::floor::{floor_initramfs, UPTIME_PREFIX};
use terra_qemu::{Vm, VmConfig};
use terra_tests::disk::{ext4_image, FS_MIB};
use terra_tests::initramfs::{self, Flavor};
use terra_tests::partition::{base_layer, standard};
use terra_tests::probe::parse_uptime;
use terra_tests::tools::{tools, Tools};

/// Boot-time benchmark: Terra's initramfs vs Debian's initramfs-tools vs the floor.
#[derive(Parser, Debug)]
struct Args {
    /// Boots of each image per table.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Only the -icount table (skip plain TCG).
    #[arg(long)]
    icount_only: bool,
    /// Skip timing mkinitrd against mkinitramfs.
    #[arg(long)]
    no_build_times: bool,
    /// Print every guest console line.
    #[arg(long)]
    verbose: bool,
}

/// The label of the plain ext4 root that initramfs-tools boots.
const PLAIN_LABEL: &str = "plainroot";
/// Common to every boot: the console is the serial port, kernel messages
/// quiet (printing them costs guest time under TCG, the same for every image).
const COMMON_APPEND: &str = "quiet";

struct Case {
    name: &'static str,
    initrd: PathBuf,
    append: String,
}

fn main() {
    if let Err(err) = run(Args::parse()) {
        eprintln!("bench-boot: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let tools = tools()?;
    let scratch = tempfile::Builder::new().prefix("terra-bench-").tempdir()?;
    let dir = scratch.path();
    let kver = &tools.kernel.version;

    // The same two disks for every boot: Terra's partition, and a plain ext4
    // root (busybox + the probe as /sbin/init) for initramfs-tools.
    let terra_disk = dir.join("terra.img");
    ext4_image(
        &standard(&dir.join("terra-tree"), &tools.busybox)?,
        "terra",
        &terra_disk,
        FS_MIB,
    )?;
    let plain_tree = dir.join("plain-tree");
    base_layer(&plain_tree, &tools.busybox)?;
    std::fs::write(plain_tree.join("etc/hostname"), "plain-root\n")?;
    let plain_disk = dir.join("plain.img");
    ext4_image(&plain_tree, PLAIN_LABEL, &plain_disk, FS_MIB)?;

    let floor = dir.join("floor.cpio");
    std::fs::write(&floor, floor_initramfs()?)?;
    let debian = tools.kernel.debian_initrd();
    if !debian.is_file() {
        bail!(
            "{} not found: install initramfs-tools and run update-initramfs -c -k {kver}",
            debian.display()
        );
    }
    let cases = [
        Case {
            name: "terra",
            initrd: initramfs::build(tools, dir, Flavor::Vm)?,
            append: COMMON_APPEND.to_string(),
        },
        Case {
            name: "initramfs-tools",
            initrd: debian,
            append: format!("{COMMON_APPEND} root=LABEL={PLAIN_LABEL} ro init=/sbin/init"),
        },
        Case {
            name: "floor",
            initrd: floor,
            append: COMMON_APPEND.to_string(),
        },
    ];
    println!("kernel {kver}; disks: vda terra ({FS_MIB} MiB ext4), vdb {PLAIN_LABEL} ({FS_MIB} MiB ext4); {} rounds", args.rounds);
    println!(
        "time = /proc/uptime printed by the handoff (Terra, initramfs-tools) or by /init (floor)\n"
    );

    let modes: &[(bool, &str)] = if args.icount_only {
        &[(
            true,
            "TCG -icount shift=0 (guest clock counts instructions)",
        )]
    } else {
        &[
            (
                true,
                "TCG -icount shift=0 (guest clock counts instructions)",
            ),
            (false, "plain TCG (varies with host load)"),
        ]
    };
    for &(icount, title) in modes {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        let mut timelines = Vec::new();
        for round in 0..args.rounds {
            for (i, case) in cases.iter().enumerate() {
                let (t, timeline) = boot_once(
                    tools,
                    case,
                    &[&terra_disk, &plain_disk],
                    icount,
                    args.verbose,
                )
                .with_context(|| format!("{} boot, round {}", case.name, round + 1))?;
                eprintln!(
                    "  {title:.20} round {} {:>16}: {t:.2} s",
                    round + 1,
                    case.name
                );
                times[i].push(t);
                timelines.extend(timeline);
            }
        }
        print_table(title, &cases, &times)?;
        print_timeline(&timelines);
    }
    if !args.no_build_times {
        build_times(tools, dir, args.rounds.clamp(1, 3))?;
    }
    Ok(())
}

/// One boot; returns the uptime the handoff printed and, for Terra, the
/// boot timeline (`/run/terra/boot.json`) the probe printed.
fn boot_once(
    tools: &Tools,
    case: &Case,
    disks: &[&Path],
    icount: bool,
    verbose: bool,
) -> Result<(f64, Option<serde_json::Value>)> {
    let mut cfg = VmConfig::new(&tools.kernel.image)
        .initrd(&case.initrd)
        .append(&case.append)
        .icount(icount)
        .echo(verbose);
    for d in disks {
        cfg = cfg.disk(*d);
    }
    let mut vm = Vm::start(&cfg)?;
    let line = vm.wait_for(UPTIME_PREFIX, Duration::from_secs(180))?;
    let uptime = parse_uptime(&line[UPTIME_PREFIX.len()..])?;
    let timeline = if case.name == "terra" {
        let line = vm.wait_for("probe.bootjson=", Duration::from_secs(60))?;
        serde_json::from_str(&line["probe.bootjson=".len()..]).ok()
    } else {
        None
    };
    vm.expect_poweroff(Duration::from_secs(120))?;
    Ok((uptime, timeline))
}

/// Where Terra's time goes: the median of each step of stage 1's own
/// timeline (`/run/terra/boot.json`: steps with `name` and `duration_ms`).
fn print_timeline(timelines: &[serde_json::Value]) {
    let mut names: Vec<String> = Vec::new();
    let mut durations: Vec<Vec<f64>> = Vec::new();
    let mut starts = Vec::new();
    for t in timelines {
        starts.extend(t["uptime_at_start_ms"].as_f64());
        for step in t["steps"].as_array().into_iter().flatten() {
            let (Some(name), Some(ms)) = (step["name"].as_str(), step["duration_ms"].as_f64())
            else {
                continue;
            };
            match names.iter().position(|n| n == name) {
                Some(i) => durations[i].push(ms),
                None => {
                    names.push(name.to_string());
                    durations.push(vec![ms]);
                }
            }
        }
    }
    if names.is_empty() {
        return;
    }
    println!("Where Terra's stage 1 spends its time (medians of /run/terra/boot.json):\n");
    println!("| step | ms |");
    println!("| --- | ---: |");
    if !starts.is_empty() {
        println!(
            "| (kernel: uptime when /init started) | {:.0} |",
            median(&starts)
        );
    }
    for (name, d) in names.iter().zip(&durations) {
        println!("| {name} | {:.1} |", median(d));
    }
    println!();
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn print_table(title: &str, cases: &[Case], times: &[Vec<f64>]) -> Result<()> {
    let floor = median(&times[cases.len() - 1]);
    let own: Vec<f64> = times.iter().map(|t| median(t) - floor).collect();
    println!("## {title}\n");
    println!("| initramfs | size | median | min | max | own cost over the floor |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (i, case) in cases.iter().enumerate() {
        let size = std::fs::metadata(&case.initrd)?.len();
        let t = &times[i];
        let (min, max) = t
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            case.name,
            human(size),
            median(t),
            min,
            max,
            own[i]
        );
    }
    let (terra, tools) = (own[0], own[1]);
    println!();
    println!(
        "Terra's own cost is {:.1}% of initramfs-tools' ({:.2} s vs {:.2} s; {:.1}x less)",
        100.0 * terra / tools,
        terra,
        tools,
        tools / terra
    );
    println!(
        "Terra boots in {:.2}x the floor's time, initramfs-tools in {:.2}x\n",
        median(&times[0]) / floor,
        median(&times[1]) / floor
    );
    Ok(())
}

/// mkinitrd (vm and server module sets) against mkinitramfs, for the same kernel.
fn build_times(tools: &Tools, dir: &Path, rounds: usize) -> Result<()> {
    let kver = &tools.kernel.version;
    let mk = |set: &str, out: &Path| {
        let mut c = Command::new(&tools.mkinitrd);
        c.args(["--kernel-version", kver, "--module-set", set, "--init"])
            .arg(&tools.init)
            .arg("--output")
            .arg(out);
        c
    };
    let builds: Vec<(&str, Command, PathBuf)> = vec![
        (
            "mkinitrd --module-set vm",
            mk("vm", &dir.join("vm.img")),
            dir.join("vm.img"),
        ),
        (
            "mkinitrd --module-set server",
            mk("server", &dir.join("server.img")),
            dir.join("server.img"),
        ),
        (
            "mkinitramfs (initramfs-tools)",
            {
                let mut c = Command::new("mkinitramfs");
                c.arg("-o").arg(dir.join("debian.img")).arg(kver);
                c
            },
            dir.join("debian.img"),
        ),
    ];
    println!("## building the image ({rounds} runs each)\n");
    println!("| command | median | size |");
    println!("| --- | ---: | ---: |");
    for (name, mut cmd, out) in builds {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            let res = cmd.output().with_context(|| format!("running {name}"))?;
            if !res.status.success() {
                bail!("{name} failed: {}", String::from_utf8_lossy(&res.stderr));
            }
            times.push(start.elapsed().as_secs_f64());
        }
        println!(
            "| {name} | {:.3} s | {} |",
            median(&times),
            human(std::fs::metadata(&out)?.len())
        );
    }
    println!();
    Ok(())
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}
