//! Boot helpers shared by the `tests/boot*.rs` scenarios: a scratch
//! directory with the tools, the standard disk, the initramfs, and a VM
//! configuration with Terra's usual command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Result};
use tempfile::TempDir;
use terra_qemu::{Vm, VmConfig};

use crate::disk::{self, FS_MIB};
use crate::initramfs::{self, Flavor};
use crate::partition;
use crate::probe::Report;
use crate::tools::{tools, Tools};

/// How long one boot may take, from QEMU's start to the probe's report
/// (about 10 s on an idle machine under TCG; the rest is room for load).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// One test's scratch space.
pub struct Scenario {
    pub tools: &'static Tools,
    pub dir: TempDir,
}

impl Scenario {
    /// Finds the tools (a clear error if one is missing) and makes a scratch dir.
    pub fn new() -> Result<Self> {
        Ok(Self {
            tools: tools()?,
            dir: tempfile::Builder::new().prefix("terra-boot-").tempdir()?,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The standard partition (versions v1 and v2) as a plain ext4 disk labelled `label`.
    pub fn standard_disk(&self, name: &str, label: &str) -> Result<PathBuf> {
        let tree = self.standard_tree()?;
        let image = self.path(name);
        disk::ext4_image(&tree, label, &image, FS_MIB)?;
        Ok(image)
    }

    /// The standard partition as the second partition of a GPT disk.
    pub fn partitioned_disk(&self, name: &str) -> Result<PathBuf> {
        let tree = self.standard_tree()?;
        let image = self.path(name);
        disk::partitioned_image(&tree, "terra", &image)?;
        Ok(image)
    }

    /// A disk with no filesystem at all.
    pub fn blank_disk(&self, name: &str) -> Result<PathBuf> {
        let image = self.path(name);
        disk::blank_image(&image, 16)?;
        Ok(image)
    }

    /// The standard partition tree (made once per scenario).
    pub fn standard_tree(&self) -> Result<PathBuf> {
        let root = self.path("tree");
        if root.join("ov/metadata.db").is_file() {
            return Ok(root);
        }
        partition::standard(&root, &self.tools.busybox)
    }

    pub fn initramfs(&self, flavor: Flavor) -> Result<PathBuf> {
        initramfs::build(self.tools, self.dir.path(), flavor)
    }

    /// A VM booting Debian's cloud kernel with `initrd` and `disks`.
    pub fn vm(&self, initrd: &Path, disks: &[&Path], append: &str) -> VmConfig {
        self.vm_on(&self.tools.kernel.image, initrd, disks, append)
    }

    /// A VM booting `kernel` with `initrd` and `disks`; the console is echoed
    /// to the test's output when `TERRA_TEST_ECHO=1`.
    pub fn vm_on(&self, kernel: &Path, initrd: &Path, disks: &[&Path], append: &str) -> VmConfig {
        let mut cfg = VmConfig::new(kernel)
            .initrd(initrd)
            .append(append)
            .echo(echo_requested());
        for d in disks {
            cfg = cfg.disk(*d);
        }
        cfg
    }
}

/// Whether the test's output should echo the VM's console (`TERRA_TEST_ECHO=1`).
pub fn echo_requested() -> bool {
    std::env::var_os("TERRA_TEST_ECHO").is_some_and(|v| v == "1")
}

/// Checks what every default boot of the standard disk shows, whatever the
/// kernel: the partition found on /dev/vda, v1 booted as the default, the
/// handoff to the probe as PID 1 with v1's hostname, an overlay root, and
/// /var/lib/containerd mounted from the disk.
pub fn check_default_boot(r: &Report, console: &[String]) -> Result<()> {
    let t = tail(console);
    for (line, missing) in [
        (
            "terra: found partition terra on /dev/vda",
            "no 'found partition' line",
        ),
        ("terra: booting version v1 (default)", "v1 is the default"),
        ("terra: handoff: exec /sbin/init", "no handoff line"),
    ] {
        ensure!(!lines_with(console, line).is_empty(), "{missing}:\n{t}");
    }
    ensure!(r.get("pid")? == "1", "the probe must be PID 1: {r:#?}");
    ensure!(r.get("hostname")? == partition::hostname_of("v1"), "{r:#?}");
    let root = r.mount_at("/")?;
    ensure!(root.fstype == "overlay", "root is {root:?}");
    let vlc = r.mount_at("/var/lib/containerd")?;
    ensure!(
        vlc.fstype == "ext4" && vlc.source == "/dev/vda",
        "vlc mount {vlc:?}"
    );
    Ok(())
}

/// Boots, reads the probe's report, and waits for the clean power-off.
pub fn boot_probe(cfg: &VmConfig) -> Result<(Report, Vec<String>)> {
    let mut vm = Vm::start(cfg)?;
    let report = Report::read(&mut vm, BOOT_TIMEOUT)?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    Ok((report, vm.console.lines()))
}

/// The console lines that start with `prefix`.
pub fn lines_with<'a>(console: &'a [String], prefix: &str) -> Vec<&'a str> {
    console
        .iter()
        .filter(|l| l.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

/// The last lines of a console, for assertion messages.
pub fn tail(console: &[String]) -> String {
    terra_qemu::console::tail(console, 60)
}

/// Waits for the `terra: FATAL:` block, then for the console to stay quiet
/// for a second (the block is printed at once), and returns the block: the
/// FATAL line and every line after it.
pub fn fatal_block(vm: &mut Vm, timeout: Duration) -> Result<String> {
    vm.wait_for("terra: FATAL:", timeout)?;
    // More of the block may have arrived by now: start at the FATAL line
    // itself (the one before the cursor).
    let start = vm.console.cursor().saturating_sub(1);
    let mut seen = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = vm.console.lines().len();
        if now == seen {
            break;
        }
        seen = now;
    }
    Ok(vm.console.lines()[start..].join("\n"))
}
