//! What to boot and how: [`VmConfig`] and the QEMU command line it makes.

use std::path::{Path, PathBuf};

use crate::firmware::{self, Firmware};
use crate::machine::Machine;
use crate::media::{self, Medium};

/// The QEMU binary; `TERRA_QEMU` overrides it.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("TERRA_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The kernel QEMU loads itself (`-kernel`); `None` boots the first
    /// disk through the firmware and its boot loader, and then `initrd`
    /// and `append` are the boot loader's business (refused here).
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// Raw disk images, attached as virtio disks in order (`/dev/vda`, `/dev/vdb`, …).
    pub disks: Vec<PathBuf>,
    /// Appended to the base command line (`console=ttyS0 panic=-1`).
    pub append: String,
    pub memory_mb: u32,
    /// `-icount shift=0`: the guest clock counts instructions, so guest
    /// times repeat whatever the host load (used for benchmarks).
    pub icount: bool,
    /// A QMP socket (for hot-adding disks), created in this directory.
    pub qmp_dir: Option<PathBuf>,
    /// Print console lines to stdout as they arrive.
    pub echo: bool,
    /// QEMU's machine type.
    pub machine: Machine,
    /// More QEMU arguments, added last: other disk interfaces (NVMe, USB),
    /// NICs (the Terra kernel's driver tests).
    pub extra_args: Vec<String>,
    /// A virtio NIC on QEMU's user network with these extra `-netdev user`
    /// options (`hostfwd=tcp:127.0.0.1:PORT-:22,hostname=NAME`); `None`: no NIC.
    pub user_net: Option<String>,
    /// SeaBIOS (the default) or OVMF (UEFI).
    pub firmware: Firmware,
    /// Install media (a CD, a USB stick), booted before the disks.
    pub media: Vec<Medium>,
}

/// PCIe root ports kept free for hot-added disks on q35 (a device cannot be
/// hot-plugged into the root complex itself).
pub(crate) const HOTPLUG_PORTS: usize = 2;

impl VmConfig {
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            kernel: Some(kernel.into()),
            ..Self::disk_boot()
        }
    }

    /// Boots the first disk the way a machine does: the firmware (SeaBIOS)
    /// runs the disk's boot loader, which picks kernel and command line.
    pub fn disk_boot() -> Self {
        Self {
            kernel: None,
            initrd: None,
            disks: Vec::new(),
            append: String::new(),
            memory_mb: 512,
            icount: false,
            qmp_dir: None,
            echo: false,
            machine: Machine::default(),
            extra_args: Vec::new(),
            user_net: None,
            firmware: Firmware::default(),
            media: Vec::new(),
        }
    }

    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }

    pub fn disk(mut self, path: impl Into<PathBuf>) -> Self {
        self.disks.push(path.into());
        self
    }

    /// Adds kernel command-line words (space-separated).
    pub fn append(mut self, words: &str) -> Self {
        if !self.append.is_empty() && !words.is_empty() {
            self.append.push(' ');
        }
        self.append.push_str(words);
        self
    }

    pub fn icount(mut self, on: bool) -> Self {
        self.icount = on;
        self
    }

    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Opens a QMP monitor on a unix socket in `dir`.
    pub fn qmp(mut self, dir: impl Into<PathBuf>) -> Self {
        self.qmp_dir = Some(dir.into());
        self
    }

    /// Adds a virtio NIC on QEMU's user network (DHCP and DNS inside QEMU;
    /// the guest reaches the host's loopback as 10.0.2.2); `options` are
    /// extra `-netdev user` options, e.g. `hostfwd=tcp:127.0.0.1:2222-:22`.
    pub fn user_net(mut self, options: &str) -> Self {
        self.user_net = Some(options.to_string());
        self
    }

    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Adds QEMU arguments as they are (after all the others).
    pub fn extra_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Boots through this firmware.
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// Attaches install media; the first one boots first.
    pub fn medium(mut self, medium: Medium) -> Self {
        self.media.push(medium);
        self
    }

    /// The full kernel command line.
    pub fn cmdline(&self) -> String {
        // panic=-1: a kernel panic reboots at once, and -no-reboot turns that
        // into QEMU exiting, so a panic never hangs a test until its timeout.
        let base = "console=ttyS0 panic=-1";
        if self.append.is_empty() {
            base.to_string()
        } else {
            format!("{base} {}", self.append)
        }
    }

    pub(crate) fn qmp_socket(&self) -> Option<PathBuf> {
        self.qmp_dir.as_ref().map(|d| d.join("qmp.sock"))
    }

    /// QEMU's arguments (OVMF's variables, when it is the firmware, at
    /// `OVMF_VARS.fd` in the QMP dir or the working directory: [`Vm::start`]
    /// passes a private copy instead).
    pub fn args(&self) -> Vec<String> {
        let vars = self
            .qmp_dir
            .clone()
            .unwrap_or_default()
            .join("OVMF_VARS.fd");
        self.args_with_vars(&vars)
    }

    pub(crate) fn args_with_vars(&self, vars: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-machine",
            self.machine.name(),
            "-accel",
            "tcg",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]
        .map(str::to_string)
        .to_vec();
        args.extend(["-m".into(), self.memory_mb.to_string()]);
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        if self.firmware == Firmware::Ovmf {
            args.extend(firmware::ovmf_args(vars));
        }
        if let Some(kernel) = &self.kernel {
            args.extend(["-kernel".into(), kernel.display().to_string()]);
            if let Some(initrd) = &self.initrd {
                args.extend(["-initrd".into(), initrd.display().to_string()]);
            }
            args.extend(["-append".into(), self.cmdline()]);
        }
        for (i, disk) in self.disks.iter().enumerate() {
            args.extend([
                "-drive".into(),
                format!(
                    "file={},format={},if=none,id=disk{i}",
                    qemu_escape(&disk.display().to_string()),
                    disk_format(disk)
                ),
                "-device".into(),
                // With media, every boot device gets its place in the
                // firmware's boot order: the media first, then the disks.
                if self.media.is_empty() {
                    format!("virtio-blk-pci,drive=disk{i}")
                } else {
                    format!(
                        "virtio-blk-pci,drive=disk{i},bootindex={}",
                        self.media.len() + i
                    )
                },
            ]);
        }
        if let Some(options) = &self.user_net {
            let netdev = if options.is_empty() {
                "user,id=net0".to_string()
            } else {
                format!("user,id=net0,{options}")
            };
            args.extend([
                "-netdev".into(),
                netdev,
                "-device".into(),
                "virtio-net-pci,netdev=net0".into(),
            ]);
        }
        args.extend(media::args(&self.media));
        if let Some(sock) = self.qmp_socket() {
            if self.machine == Machine::Q35 {
                for port in 0..HOTPLUG_PORTS {
                    args.extend([
                        "-device".into(),
                        format!(
                            "pcie-root-port,id=hotplug{port},chassis={},slot={}",
                            port + 1,
                            port + 1
                        ),
                    ]);
                }
            }
            args.extend([
                "-qmp".into(),
                format!("unix:{},server=on,wait=off", sock.display()),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// `qcow2` for a `.qcow2` file, else `raw`.
fn disk_format(disk: &Path) -> &'static str {
    if disk.extension().is_some_and(|e| e == "qcow2") {
        "qcow2"
    } else {
        "raw"
    }
}

/// Commas in QEMU option values are doubled.
fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_for_a_two_disk_boot() {
        let cfg = VmConfig::new("/boot/vmlinuz")
            .initrd("/tmp/initrd")
            .disk("/tmp/a.img")
            .disk("/tmp/b,c.img")
            .append("terra.version=v2")
            .append("quiet")
            .icount(true)
            .qmp("/tmp/vm");
        let args = cfg.args().join(" ");
        assert!(args.starts_with("-machine q35 -accel tcg "), "{args}");
        assert!(args.contains("-no-reboot"));
        assert!(args.contains("-m 512"));
        assert!(args.contains("-icount shift=0"));
        assert!(args.contains(
            "-drive file=/tmp/a.img,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0"
        ));
        assert!(args.contains("file=/tmp/b,,c.img"));
        assert!(args.contains("-qmp unix:/tmp/vm/qmp.sock,server=on,wait=off"));
        assert_eq!(
            cfg.cmdline(),
            "console=ttyS0 panic=-1 terra.version=v2 quiet"
        );
    }

    #[test]
    fn a_disk_boot_has_no_kernel_arguments() {
        let args = VmConfig::disk_boot().disk("/tmp/a.img").args().join(" ");
        for absent in ["-kernel", "-initrd", "-append"] {
            assert!(!args.contains(absent), "{args}");
        }
        assert!(args.contains("-drive file=/tmp/a.img,format=raw,if=none,id=disk0"));
        assert!(!args.contains("pflash"), "SeaBIOS is the default: {args}");
        let uefi = VmConfig::disk_boot()
            .disk("/tmp/a.qcow2")
            .firmware(Firmware::Ovmf)
            .qmp("/tmp/vm")
            .args()
            .join(" ");
        assert!(
            uefi.contains("if=pflash,format=raw,unit=0,readonly=on,file="),
            "{uefi}"
        );
        assert!(
            uefi.contains("if=pflash,format=raw,unit=1,file=/tmp/vm/OVMF_VARS.fd"),
            "{uefi}"
        );
        assert!(uefi.contains("file=/tmp/a.qcow2,format=qcow2"), "{uefi}");
    }
}
