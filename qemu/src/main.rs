//! `terra-qemu`: boot a kernel + initramfs + disks headless under QEMU, print
//! the serial console, and exit with the guest's result: 0 on a clean power
//! off, 1 on a kernel panic, 3 if QEMU failed, 124 on timeout, 2 when
//! terra-qemu itself failed (bad arguments, a file it could not read).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use terra_qemu::{floor, Kernel, Vm, VmConfig};

/// Boots headless under QEMU (TCG) with the console on stdout.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Kernel image [default: the newest /boot/vmlinuz-*-cloud-amd64].
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initramfs image.
    #[arg(long, conflicts_with = "floor")]
    initrd: Option<PathBuf>,
    /// Boot the floor initramfs (prints the uptime, powers off) instead.
    #[arg(long)]
    floor: bool,
    /// Raw disk image, attached as a virtio disk (repeat: vda, vdb, …).
    #[arg(long = "disk", value_name = "IMAGE")]
    disks: Vec<PathBuf>,
    /// Raw disk image hot-added through QMP after --hot-add-after seconds.
    #[arg(long, value_name = "IMAGE")]
    hot_add: Option<PathBuf>,
    /// Seconds to wait before hot-adding --hot-add.
    #[arg(long, default_value_t = 3.0)]
    hot_add_after: f64,
    /// Words appended to the kernel command line.
    #[arg(long, default_value = "")]
    append: String,
    /// Seconds before the guest is killed (exit code 124).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Guest clock counts instructions (-icount shift=0): repeatable timings.
    #[arg(long)]
    icount: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// A virtio NIC on QEMU's user network, with extra `-netdev user`
    /// options if given (e.g. hostfwd=tcp:127.0.0.1:2222-:22).
    #[arg(long, value_name = "OPTIONS", num_args = 0..=1, default_missing_value = "")]
    user_net: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("terra-qemu: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<u8> {
    let kernel = match args.kernel {
        Some(k) => k,
        None => Kernel::cloud()?.image,
    };
    let scratch = tempfile::Builder::new().prefix("terra-qemu-").tempdir()?;
    let initrd = if args.floor {
        let path = scratch.path().join("floor.cpio");
        std::fs::write(&path, floor::floor_initramfs()?)?;
        Some(path)
    } else {
        args.initrd
    };
    let mut config = VmConfig::new(kernel)
        .append(&args.append)
        .icount(args.icount)
        .memory_mb(args.memory)
        .echo(true);
    if let Some(i) = initrd {
        config = config.initrd(i);
    }
    for d in args.disks {
        config = config.disk(d);
    }
    if args.hot_add.is_some() {
        config = config.qmp(scratch.path());
    }
    if let Some(options) = &args.user_net {
        config = config.user_net(options);
    }
    let mut vm = Vm::start(&config)?;
    if let Some(image) = &args.hot_add {
        std::thread::sleep(Duration::from_secs_f64(args.hot_add_after));
        vm.hot_add_disk(image)?;
        eprintln!("terra-qemu: hot-added {}", image.display());
    }
    let timeout = Duration::from_secs(args.timeout).saturating_sub(vm.elapsed());
    let outcome = vm.wait(timeout)?;
    eprintln!("terra-qemu: {outcome:?} after {:.1?}", vm.elapsed());
    Ok(outcome.exit_code() as u8)
}
