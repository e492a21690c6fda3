//! `terra-qemu`: boot a kernel + initramfs + disks headless under QEMU, print
//! the serial console, and exit with the guest's result: 0 on a clean power
//! off, 1 on a kernel panic, 3 if QEMU failed, 124 on timeout, 2 when
//! terra-qemu itself failed (bad arguments, a file it could not read).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use terra_qemu::{floor, Firmware, Kernel, Vm, VmConfig};

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
    /// Boot the first disk through the firmware and its boot loader (no
    /// -kernel; --initrd and --append are the boot loader's business).
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "floor", "append"])]
    disk_boot: bool,
    /// UEFI firmware (OVMF, Debian's ovmf package) instead of SeaBIOS.
    #[arg(long)]
    uefi: bool,
    /// With --disk-boot: once GRUB's menu is up, edit the default entry as a
    /// person would (`e`, end of the `linux` line, type the words, Ctrl-X)
    /// to add these words to its kernel command line for this boot.
    #[arg(long, value_name = "WORDS", requires = "disk_boot")]
    grub_append: Option<String>,
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
    let kernel = match (args.kernel, args.disk_boot) {
        (_, true) => None,
        (Some(k), false) => Some(k),
        (None, false) => Some(Kernel::cloud()?.image),
    };
    let scratch = tempfile::Builder::new().prefix("terra-qemu-").tempdir()?;
    let initrd = if args.floor {
        let path = scratch.path().join("floor.cpio");
        std::fs::write(&path, floor::floor_initramfs()?)?;
        Some(path)
    } else {
        args.initrd
    };
    let base = match kernel {
        Some(k) => VmConfig::new(k),
        None => VmConfig::disk_boot(),
    };
    let firmware = if args.uefi {
        Firmware::Ovmf
    } else {
        Firmware::SeaBios
    };
    let mut config = base
        .firmware(firmware)
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
    if let Some(words) = &args.grub_append {
        edit_grub_entry(&mut vm, words, Duration::from_secs(args.timeout))?;
    }
    let timeout = Duration::from_secs(args.timeout).saturating_sub(vm.elapsed());
    let outcome = vm.wait(timeout)?;
    eprintln!("terra-qemu: {outcome:?} after {:.1?}", vm.elapsed());
    Ok(outcome.exit_code() as u8)
}

/// GRUB's help line once the menu is drawn and reads keys.
const MENU_UP: &str = "Press enter to boot the selected OS";

/// Types into GRUB's entry editor: `e` opens the highlighted entry with the
/// cursor on its first line (GRUB 2.06 shows `setparams 'TITLE'` there,
/// then the empty rest of the `menuentry … {` line, then Terra's `linux`
/// line), Ctrl-N twice, Ctrl-E to the end of the line,
/// the words, Ctrl-X boots the edited entry.
fn edit_grub_entry(vm: &mut Vm, words: &str, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while !vm.console.lines().iter().any(|l| l.contains(MENU_UP)) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "GRUB's menu did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // One key at a time, as a person types: GRUB reads the serial port
    // while it redraws the editor, and the UART's 16-byte FIFO drops what
    // arrives faster than that.
    type_keys(vm, "e")?;
    std::thread::sleep(Duration::from_secs(1));
    // Ctrl-N, not the Down arrow: a lone ESC read before its `[B` leaves
    // the editor and drops the edits.
    vm.send("\x0e\x0e")?;
    std::thread::sleep(Duration::from_millis(300));
    type_keys(vm, &format!("\x05 {words}"))?;
    std::thread::sleep(Duration::from_millis(300));
    vm.send("\x18")?;
    eprintln!("terra-qemu: typed in GRUB's editor: {words}");
    Ok(())
}

fn type_keys(vm: &mut Vm, keys: &str) -> Result<()> {
    for c in keys.chars() {
        vm.send(&c.to_string())?;
        std::thread::sleep(Duration::from_millis(40));
    }
    Ok(())
}
