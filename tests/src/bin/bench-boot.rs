//! `bench-boot`: how long each initramfs takes from kernel start to the
//! handoff, on the same disks and kernel, in one interleaved run
//! (A B C … A B C …): Terra's initramfs (zstd, lz4, and as an experiment
//! with the module signatures cut off), tiny-initramfs,
//! Debian's initramfs-tools, the module floor (an `/init` that only loads
//! the kernel modules Terra loads) and the floor (an `/init` that only
//! prints the clock). The handoff prints the clock (`/proc/timer_list`'s
//! nanoseconds; `/proc/uptime` has 10 ms steps); under `-icount shift=0`
//! the guest clock counts instructions, so the numbers repeat whatever the
//! host load. Also times building the images (mkinitrd against mkinitramfs
//! and mktirfs).
//!
//! Run it with `scripts/bench-boot [--rounds N]` after `scripts/setup` and `scripts/build`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use terra_qemu::floor::floor_initramfs;
use terra_qemu::{Vm, VmConfig};
use terra_tests::disk::{self, ext4_image, FS_MIB};
use terra_tests::initramfs::{self, Flavor};
use terra_tests::partition::{base_layer, standard};
use terra_tests::probe::wait_handoff_clock;
use terra_tests::stats::{human, median};
use terra_tests::tools::{tools, Tools};

/// Boot-time benchmark: Terra's initramfs vs tiny-initramfs, initramfs-tools and the floors.
#[derive(Parser, Debug)]
struct Args {
    /// Boots of each image per table.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Only the -icount table (skip plain TCG).
    #[arg(long)]
    icount_only: bool,
    /// Skip timing mkinitrd against mkinitramfs and mktirfs.
    #[arg(long)]
    no_build_times: bool,
    /// Print every guest console line.
    #[arg(long)]
    verbose: bool,
}

/// The label of the plain ext4 root that initramfs-tools and tiny-initramfs boot.
const PLAIN_LABEL: &str = "plainroot";
/// Common to every boot: the console is the serial port, kernel messages
/// quiet (printing them costs guest time under TCG, the same for every image).
const COMMON_APPEND: &str = "quiet";
/// What tiny-initramfs is asked to load (it has no dependency resolution of
/// its own at boot; mktirfs adds what these need).
const TINY_MODULES: &str = "virtio_pci,virtio_blk";

/// What a row is, for the summary under the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Terra,
    TerraLz4,
    /// An experiment: the same image with the module signatures cut off.
    TerraUnsigned,
    Tiny,
    InitramfsTools,
    ModuleFloor,
    Floor,
}

struct Case {
    name: &'static str,
    role: Role,
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
    // root (busybox + the probe as /sbin/init) for initramfs-tools and
    // tiny-initramfs.
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
    let plain_uuid = fs_uuid(&plain_disk)?;

    let floor = dir.join("floor.cpio");
    std::fs::write(&floor, floor_initramfs()?)?;
    let debian = tools.kernel.debian_initrd();
    if !debian.is_file() {
        bail!(
            "{} not found: install initramfs-tools and run update-initramfs -c -k {kver}",
            debian.display()
        );
    }
    let module_paths = initramfs::vm_modules(tools, dir)?;
    let module_floor = initramfs::module_floor(tools, dir, &module_paths)?;
    let unsigned = initramfs::unsigned_vm(tools, dir, &module_paths)?;
    let modules = module_names(&module_paths);
    let tiny = dir.join("tiny-initramfs.img");
    disk::run(&mut mktirfs(kver, &tiny))
        .context("building tiny-initramfs (scripts/setup installs tiny-initramfs-core)")?;
    let cases = [
        Case {
            name: "terra",
            role: Role::Terra,
            initrd: initramfs::build(tools, dir, Flavor::Vm)?,
            append: COMMON_APPEND.to_string(),
        },
        Case {
            name: "terra --compress lz4",
            role: Role::TerraLz4,
            initrd: initramfs::build(tools, dir, Flavor::VmLz4)?,
            append: COMMON_APPEND.to_string(),
        },
        Case {
            name: "terra, signatures cut off",
            role: Role::TerraUnsigned,
            initrd: unsigned,
            append: COMMON_APPEND.to_string(),
        },
        Case {
            name: "tiny-initramfs",
            role: Role::Tiny,
            initrd: tiny,
            append: format!("{COMMON_APPEND} root=UUID={plain_uuid} ro init=/sbin/init"),
        },
        Case {
            name: "initramfs-tools",
            role: Role::InitramfsTools,
            initrd: debian,
            append: format!("{COMMON_APPEND} root=LABEL={PLAIN_LABEL} ro init=/sbin/init"),
        },
        Case {
            name: "module floor",
            role: Role::ModuleFloor,
            initrd: module_floor,
            append: COMMON_APPEND.to_string(),
        },
        Case {
            name: "floor",
            role: Role::Floor,
            initrd: floor,
            append: COMMON_APPEND.to_string(),
        },
    ];
    println!("kernel {kver}; disks: vda terra ({FS_MIB} MiB ext4), vdb {PLAIN_LABEL} ({FS_MIB} MiB ext4); {} rounds", args.rounds);
    println!("time = the clock (/proc/timer_list) at the handoff (Terra, tiny-initramfs, initramfs-tools: the probe as /sbin/init) or in /init (the floors)");
    println!(
        "module floor = the floor's /init loading the {} modules Terra loads ({}), uncompressed\n",
        modules.len(),
        modules.join(", ")
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
                let boot = Boot {
                    tools,
                    disks: &[&terra_disk, &plain_disk],
                    icount,
                    verbose: args.verbose,
                    modules: &modules,
                };
                let (t, timeline) = boot
                    .once(case)
                    .with_context(|| format!("{} boot, round {}", case.name, round + 1))?;
                eprintln!(
                    "  {title:.20} round {} {:>22}: {t:.3} s",
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

/// Module names (`virtio_blk`) from their paths in the initramfs.
fn module_names(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| Path::new(p).file_stem())
        .map(|s| s.to_string_lossy().replace('-', "_"))
        .collect()
}

/// The UUID of the filesystem in an image (tiny-initramfs finds its root
/// by UUID, not by label).
fn fs_uuid(image: &Path) -> Result<String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "UUID"])
        .arg(image)
        .output()
        .context("running blkid (util-linux)")?;
    let uuid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(
        out.status.success() && !uuid.is_empty(),
        "blkid found no filesystem UUID in {}",
        image.display()
    );
    Ok(uuid)
}

/// tiny-initramfs's builder (Debian's tiny-initramfs-core) for the
/// virtio disk modules, without the host's own module list.
fn mktirfs(kver: &str, out: &Path) -> Command {
    let mut c = Command::new("mktirfs");
    c.arg("-o").arg(out).args([
        "-m",
        "no",
        &format!("--include-modules={TINY_MODULES}"),
        kver,
    ]);
    c
}

/// What every boot of one table shares.
struct Boot<'a> {
    tools: &'a Tools,
    disks: &'a [&'a Path],
    icount: bool,
    verbose: bool,
    /// The modules the module floor must have loaded.
    modules: &'a [String],
}

impl Boot<'_> {
    /// One boot; returns the clock at the handoff and, for Terra, the boot
    /// timeline (`/run/terra/boot.json`) the probe printed.
    fn once(&self, case: &Case) -> Result<(f64, Option<serde_json::Value>)> {
        let mut cfg = VmConfig::new(&self.tools.kernel.image)
            .initrd(&case.initrd)
            .append(&case.append)
            .icount(self.icount)
            .echo(self.verbose);
        for d in self.disks {
            cfg = cfg.disk(*d);
        }
        let mut vm = Vm::start(&cfg)?;
        let time = wait_handoff_clock(&mut vm, Duration::from_secs(180))?;
        let timeline = if case.role == Role::Terra {
            let line = vm.wait_for("probe.bootjson=", Duration::from_secs(60))?;
            serde_json::from_str(&line["probe.bootjson=".len()..]).ok()
        } else {
            None
        };
        vm.expect_poweroff(Duration::from_secs(120))?;
        if case.role == Role::ModuleFloor {
            // It printed /proc/modules: each module must be there, live.
            let lines = vm.console.lines();
            for m in self.modules {
                ensure!(
                    lines
                        .iter()
                        .any(|l| l.starts_with(&format!("{m} ")) && l.contains(" Live ")),
                    "the module floor did not load {m}: {lines:#?}"
                );
            }
        }
        Ok((time, timeline))
    }
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

fn print_table(title: &str, cases: &[Case], times: &[Vec<f64>]) -> Result<()> {
    let med: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let of = |role: Role| {
        cases
            .iter()
            .position(|c| c.role == role)
            .map(|i| med[i])
            .unwrap_or(f64::NAN)
    };
    let floor = of(Role::Floor);
    let module_floor = of(Role::ModuleFloor);
    println!("## {title}\n");
    // Over the module floor: what an initramfs costs beyond the kernel
    // loading the signed modules Terra needs, which no initramfs on this
    // kernel can avoid: the figure Terra answers for.
    println!("| initramfs | size | median | min | max | own cost over the floor | over the module floor |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, case) in cases.iter().enumerate() {
        let size = std::fs::metadata(&case.initrd)?.len();
        let t = &times[i];
        let (min, max) = t
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.1} ms | {:.1} ms |",
            case.name,
            human(size),
            med[i],
            min,
            max,
            1e3 * (med[i] - floor),
            1e3 * (med[i] - module_floor)
        );
    }
    let ms = |t: f64| 1e3 * (t - floor);
    let (terra, lz4, unsigned, tiny, debian, modules) = (
        ms(of(Role::Terra)),
        ms(of(Role::TerraLz4)),
        ms(of(Role::TerraUnsigned)),
        ms(of(Role::Tiny)),
        ms(of(Role::InitramfsTools)),
        ms(module_floor),
    );
    println!();
    println!(
        "- Terra's own cost is {:.1}% of initramfs-tools' ({terra:.1} ms vs {debian:.1} ms; {:.1}x less); with lz4 {lz4:.1} ms ({:.1}%)",
        100.0 * terra / debian,
        debian / terra,
        100.0 * lz4 / debian
    );
    println!(
        "- tiny-initramfs costs {tiny:.1} ms (no labels, no overlay, no timeline): Terra is {:.2}x it",
        terra / tiny
    );
    println!(
        "- The kernel alone, loading the modules (module floor), costs {modules:.1} ms: {:.1}% of initramfs-tools'. A tenth of initramfs-tools' ({:.1} ms) leaves {:.1} ms for everything else",
        100.0 * modules / debian,
        debian / 10.0,
        debian / 10.0 - modules
    );
    println!(
        "- Terra's work beyond the kernel's module loading: {:.1} ms (unpacking, finding, mounting, switching root, exec); with lz4 {:.1} ms",
        terra - modules,
        lz4 - modules
    );
    println!(
        "- Over the module floor (the figure Terra answers for): Terra {:.1} ms, initramfs-tools {:.1} ms: {:.1}% of it",
        terra - modules,
        debian - modules,
        100.0 * (terra - modules) / (debian - modules)
    );
    println!(
        "- With the module signatures cut off (an experiment: the kernel taints itself, Secure Boot lockdown refuses them): {unsigned:.1} ms, {:.1}% of initramfs-tools'; checking the signatures costs {:.1} ms\n",
        100.0 * unsigned / debian,
        terra - unsigned
    );
    Ok(())
}

/// mkinitrd (vm and server module sets) against mkinitramfs and mktirfs, for the same kernel.
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
            "mktirfs (tiny-initramfs, virtio)",
            mktirfs(kver, &dir.join("tiny.img")),
            dir.join("tiny.img"),
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
            disk::run(&mut cmd).with_context(|| format!("building with {name}"))?;
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
