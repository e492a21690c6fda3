//! What every step is given: the paths it works on and the kernel it calls.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::kernel::{Kernel, Mount};

/// Every place terra-init touches (stage 1, then stage 2 in the new root),
/// so tests can point them at a temp dir.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub run: PathBuf,
    pub cmdline: PathBuf,
    pub class_block: PathBuf,
    pub printk: PathBuf,
    pub printk_devkmsg: PathBuf,
    /// The module load order written by mkinitrd.
    pub modules: PathBuf,
    /// `/run/terra`: the timeline and the mount plan go here.
    pub run_terra: PathBuf,
    /// Where the partition is mounted (and stays).
    pub partition: PathBuf,
    pub newroot: PathBuf,
    /// The rescue shell.
    pub shell: PathBuf,
    /// Stage 2: what is mounted (read before mounting and at shutdown).
    pub mountinfo: PathBuf,
    /// Stage 2: the image's host name.
    pub hostname: PathBuf,
    /// Stage 2: where the OS image declares its extra services.
    pub services: PathBuf,
    /// Stage 2: containerd's config, passed with `--config` when it exists.
    pub containerd_config: PathBuf,
    /// Stage 2: the health gate's settings (optional).
    pub health: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            root: "/".into(),
            proc: "/proc".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
            run: "/run".into(),
            cmdline: "/proc/cmdline".into(),
            class_block: "/sys/class/block".into(),
            printk: "/proc/sys/kernel/printk".into(),
            printk_devkmsg: "/proc/sys/kernel/printk_devkmsg".into(),
            modules: terra_layout::initramfs::MODULES_FILE.into(),
            run_terra: "/run/terra".into(),
            partition: terra_layout::partition::RUNTIME_MOUNT.into(),
            newroot: terra_layout::initramfs::NEWROOT.into(),
            shell: "/bin/sh".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            hostname: "/etc/hostname".into(),
            services: "/etc/terra/services".into(),
            containerd_config: "/etc/containerd/config.toml".into(),
            health: "/etc/terra/health.json".into(),
        }
    }
}

/// The environment of one boot attempt, and of stage 2 after it.
pub struct Env<'k> {
    pub paths: Paths,
    pub kernel: &'k dyn Kernel,
    /// When init started (the timeline counts from here).
    pub started: Instant,
    /// The kernel's uptime when init started.
    pub uptime_at_start: Duration,
    /// Every mount made, as shell lines: written to `/run/terra/mounts`.
    pub plan: RefCell<Vec<String>>,
}

impl<'k> Env<'k> {
    pub fn new(paths: Paths, kernel: &'k dyn Kernel, started: Instant) -> Self {
        Self {
            paths,
            kernel,
            started,
            uptime_at_start: Duration::ZERO,
            plan: RefCell::new(Vec::new()),
        }
    }

    /// Mounts, logging the shell equivalent (with `terra.debug`, and how
    /// long the kernel took) and adding it to the plan.
    pub fn mount(&self, m: &Mount) -> io::Result<()> {
        let line = m.to_shell();
        let start = Instant::now();
        let result = self.kernel.mount(m);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        match &result {
            Ok(()) => log::debug!("{line} ({ms:.1} ms)"),
            Err(e) => log::debug!("{line} (failed after {ms:.1} ms: {e})"),
        }
        result?;
        self.plan.borrow_mut().push(line);
        Ok(())
    }

    /// `mkdir -p`, logged.
    pub fn mkdir(&self, path: &std::path::Path, mode: u32) -> io::Result<()> {
        if !path.is_dir() {
            log::debug!("mkdir -p -m {mode:o} {}", path.display());
        }
        self.kernel.mkdir_all(path, mode)
    }
}
