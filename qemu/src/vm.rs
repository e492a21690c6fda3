//! One headless QEMU guest: direct kernel boot (or a disk boot through the
//! firmware and the disk's boot loader), virtio disks, the serial console on
//! a pipe, a QMP socket, and always a timeout. What to boot: [`VmConfig`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::HOTPLUG_PORTS;
pub use crate::config::{qemu_binary, VmConfig};
use crate::console::{tail, Console};
use crate::firmware::{self, Firmware};
pub use crate::machine::Machine;
use crate::media::Medium;
pub use crate::outcome::Outcome;
use crate::qmp::Qmp;

/// A running guest. Dropping it kills QEMU.
pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    pub console: Console,
    qmp_socket: Option<PathBuf>,
    started: Instant,
    hot_added: usize,
    machine: Machine,
    /// OVMF's private variables, removed with the VM.
    _firmware_dir: Option<tempfile::TempDir>,
}

impl Vm {
    /// Starts QEMU.
    pub fn start(config: &VmConfig) -> Result<Self> {
        let qemu = qemu_binary();
        if config.kernel.is_none() && (config.initrd.is_some() || !config.append.is_empty()) {
            bail!(
                "a disk boot takes its initrd and command line from the boot loader, not from QEMU"
            );
        }
        for (what, path) in [
            ("kernel", config.kernel.as_ref()),
            ("initrd", config.initrd.as_ref()),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    bail!("{what} {} does not exist", p.display());
                }
            }
        }
        for disk in config
            .disks
            .iter()
            .chain(config.media.iter().map(Medium::path))
        {
            if !disk.is_file() {
                bail!("disk image {} does not exist", disk.display());
            }
        }
        let firmware_dir = match config.firmware {
            Firmware::Ovmf => Some(tempfile::Builder::new().prefix("terra-ovmf-").tempdir()?),
            Firmware::SeaBios => None,
        };
        let args = match &firmware_dir {
            Some(dir) => config.args_with_vars(&firmware::private_vars(dir.path())?),
            None => config.args(),
        };
        let mut child = Command::new(&qemu)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install qemu-system-x86: scripts/setup)",
                    qemu.display()
                )
            })?;
        let stdout = child.stdout.take().context("QEMU's stdout")?;
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            console: Console::capture(stdout, config.echo),
            qmp_socket: config.qmp_socket(),
            started: Instant::now(),
            hot_added: 0,
            machine: config.machine,
            _firmware_dir: firmware_dir,
        })
    }

    /// Waits for the next console line starting with `prefix`.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        self.console.wait_for(prefix, timeout)
    }

    /// Types `text` on the serial console (the guest's stdin).
    pub fn send(&mut self, text: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("the console input is closed")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Hot-adds a raw image as a new virtio disk through QMP.
    pub fn hot_add_disk(&mut self, image: &Path) -> Result<()> {
        let sock = self
            .qmp_socket
            .clone()
            .context("this VM was started without a QMP socket")?;
        let mut qmp = Qmp::connect(&sock, Duration::from_secs(10))?;
        let id = format!("hot{}", self.hot_added);
        self.hot_added += 1;
        qmp.execute(
            "blockdev-add",
            serde_json::json!({
                "driver": "raw",
                "node-name": id,
                "file": {"driver": "file", "filename": image.display().to_string()},
            }),
        )?;
        let mut device =
            serde_json::json!({"driver": "virtio-blk-pci", "drive": id, "id": format!("{id}-dev")});
        if self.machine == Machine::Q35 {
            anyhow::ensure!(
                self.hot_added <= HOTPLUG_PORTS,
                "only {HOTPLUG_PORTS} disks can be hot-added on q35"
            );
            device["bus"] = format!("hotplug{}", self.hot_added - 1).into();
        }
        qmp.execute("device_add", device)?;
        Ok(())
    }

    /// Waits for QEMU to exit by itself until `timeout` (from now); kills it
    /// at the deadline. Says how the guest ended.
    pub fn wait(&mut self, timeout: Duration) -> Result<Outcome> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let Some(status) = status else {
            self.kill();
            return Ok(Outcome::TimedOut);
        };
        // QEMU exited: its stdout is closed, let the reader take the last lines.
        self.console.wait_closed(Duration::from_secs(5));
        if self
            .console
            .lines()
            .iter()
            .any(|l| l.contains("Kernel panic"))
        {
            Ok(Outcome::Panicked)
        } else if status.success() {
            Ok(Outcome::PoweredOff)
        } else {
            Ok(Outcome::QemuFailed(status))
        }
    }

    /// Waits for a clean power-off; an error (with the console's end) otherwise.
    pub fn expect_poweroff(&mut self, timeout: Duration) -> Result<()> {
        match self.wait(timeout)? {
            Outcome::PoweredOff => Ok(()),
            other => bail!(
                "guest did not power off cleanly: {other:?}; the console ends:\n{}",
                tail(&self.console.lines(), 80)
            ),
        }
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Kills QEMU (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_boot_refuses_kernel_arguments() {
        let err = Vm::start(&VmConfig::disk_boot().append("quiet"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("boot loader"), "{err}");
    }
}
