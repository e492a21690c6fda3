//! A recording [`Kernel`] for unit tests: every call becomes a shell-like
//! line in [`Fake::calls`]; calls whose line contains one of
//! [`Fake::fail_on`]'s strings fail with EINVAL.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Kernel, Mount, Node, Removed};

pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

#[derive(Debug)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
    pub fail_on: Vec<String>,
    pub pid: u32,
    /// `st_dev` by path; anything else is on device 1.
    pub devices: HashMap<PathBuf, u64>,
    /// statfs magic by path; anything else is ramfs.
    pub magic: HashMap<PathBuf, u64>,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            fail_on: Vec::new(),
            pid: 1,
            devices: HashMap::new(),
            magic: HashMap::new(),
        }
    }
}

impl Fake {
    pub fn failing(on: &[&str]) -> Self {
        Self {
            fail_on: on.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, line: String) -> io::Result<()> {
        let fail = self.fail_on.iter().any(|f| line.contains(f.as_str()));
        if let Ok(mut c) = self.calls.lock() {
            c.push(line);
        }
        if fail {
            Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
        } else {
            Ok(())
        }
    }
}

impl Kernel for Fake {
    fn mount(&self, m: &Mount) -> io::Result<()> {
        self.record(m.to_shell())
    }
    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        self.record(format!("umount -l {}", target.display()))
    }
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(format!("mkdir -p -m {mode:o} {}", path.display()))
    }
    fn mknod(&self, path: &Path, kind: Node, major: u64, minor: u64, mode: u32) -> io::Result<()> {
        let k = if kind == Node::Block { "b" } else { "c" };
        self.record(format!(
            "mknod -m {mode:o} {} {k} {major} {minor}",
            path.display()
        ))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(format!("ln -s {} {}", target.display(), link.display()))
    }
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.record(format!("mount --move {} {}", from.display(), to.display()))
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(format!("chroot {}", path.display()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(format!("cd {}", path.display()))
    }
    fn exec(&self, path: &str, args: &[String]) -> io::Error {
        match self.record(format!("exec {path} {}", args.join(" "))) {
            Err(e) => e,
            Ok(()) => io::Error::other("fake exec returns"),
        }
    }
    fn finit_module(&self, path: &Path, params: &str) -> io::Result<()> {
        self.record(
            format!("insmod {} {params}", path.display())
                .trim_end()
                .to_string(),
        )
    }
    fn pid(&self) -> u32 {
        self.pid
    }
    fn device_of(&self, path: &Path) -> io::Result<u64> {
        Ok(self.devices.get(path).copied().unwrap_or(1))
    }
    fn fs_magic(&self, path: &Path) -> io::Result<u64> {
        Ok(self.magic.get(path).copied().unwrap_or(RAMFS_MAGIC))
    }
    fn remove_tree(&self, root: &Path, dev: u64) -> io::Result<Removed> {
        self.record(format!(
            "rm -rf --one-file-system {} (dev {dev})",
            root.display()
        ))?;
        Ok(Removed::default())
    }
}
