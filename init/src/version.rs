//! Step 6: mount the partition, choose the version, mount its overlay root,
//! then `/var/lib/containerd`, the `odisk` mounts and `/tmp`.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use terra_layout::odisk::{self, MountEntry};
use terra_layout::record::{Handoff, VersionRecord};
use terra_layout::{BootParams, Metadata, Partition};

use crate::env::Env;
use crate::error::BootError;
use crate::find::Found;
use crate::kernel::{parse_options, Mount};

/// overlayfs takes its options in one page.
const MAX_OPTIONS: usize = 4095;

/// The version that is now mounted at the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    pub name: String,
    /// `requested`, `default`, `newest`, `fallback` or `last resort`.
    pub reason: &'static str,
    /// What the console adds: tries left, versions skipped and why.
    pub detail: Option<String>,
    /// The versions passed over, each with its reason (for the timeline).
    pub skipped: Vec<String>,
    /// A try was spent on this boot: stage 2's gate decides its fate.
    pub on_trial: bool,
    pub handoff: Handoff,
}

impl Booted {
    /// The console line: which version boots and why.
    pub fn line(&self) -> String {
        match &self.detail {
            Some(d) => format!("booting version {} ({}: {d})", self.name, self.reason),
            None => format!("booting version {} ({})", self.name, self.reason),
        }
    }
}

/// Why one version could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(transparent)]
    Path(#[from] terra_layout::partition::EscapingPath),
    #[error("its layer {} is missing", .0.display())]
    MissingLower(PathBuf),
    #[error("path {} contains ':' or ',' which overlayfs options cannot carry", .0.display())]
    BadChar(PathBuf),
    #[error("overlay options are {0} bytes, over the kernel's limit of {MAX_OPTIONS}")]
    TooLong(usize),
    #[error("{line}: {source}")]
    Syscall {
        line: String,
        #[source]
        source: std::io::Error,
    },
}

/// Mounts the partition and the chosen version at the new root.
pub fn mount(env: &Env, params: &BootParams, found: &Found) -> Result<Booted, BootError> {
    let part = mount_partition(env, found)?;
    let meta = Metadata::load(&part.metadata()).map_err(|source| BootError::Metadata {
        path: part.metadata(),
        source,
    })?;
    if meta.versions.is_empty() {
        return Err(BootError::NoVersions {
            path: part.metadata(),
        });
    }
    let booted = counting::mount_root(
        env,
        &part,
        &meta,
        params.version.as_deref(),
        params.init.is_some(),
    )?;
    bind_containerd(env, &part)?;
    apply_odisk(env, &part);
    mount_tmp(env)?;
    Ok(booted)
}

fn mount_partition(env: &Env, found: &Found) -> Result<Partition, BootError> {
    let target = &env.paths.partition;
    // nosuid,nodev: the partition holds every version's layers, with their
    // setuid binaries and device nodes; reachable at its documented path,
    // they must not work. The overlay root is its own mount (flags of its
    // own) and the vlc bind is remounted without them (bind_containerd).
    let m = Mount::new(&found.node.display().to_string(), target, "ext4")
        .flags(MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
    let err = |source| BootError::MountPartition {
        device: found.node.display().to_string(),
        target: target.clone(),
        source,
    };
    // A retry after a fatal error finds the previous attempt's mount.
    if env.kernel.is_mountpoint(target) {
        let _ = env.kernel.umount_detach(target);
    }
    env.mkdir(target, 0o755).map_err(err)?;
    env.mount(&m).map_err(err)?;
    Ok(Partition::new(target))
}

/// The overlay options of a version. Pure.
pub fn overlay_options(part: &Partition, rec: &VersionRecord) -> Result<String, VersionError> {
    let mut lowers = Vec::new();
    for l in &rec.lowers {
        lowers.push(checked(part.resolve(l)?)?);
    }
    let upper = checked(part.resolve(&rec.upper)?)?;
    let work = checked(part.resolve(&rec.work)?)?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper,
        work
    );
    if opts.len() > MAX_OPTIONS {
        return Err(VersionError::TooLong(opts.len()));
    }
    Ok(opts)
}

fn checked(p: PathBuf) -> Result<String, VersionError> {
    let s = p.display().to_string();
    if s.contains([':', ',']) {
        return Err(VersionError::BadChar(p));
    }
    Ok(s)
}

fn mount_overlay(env: &Env, part: &Partition, rec: &VersionRecord) -> Result<(), VersionError> {
    let opts = overlay_options(part, rec)?;
    // Say which layer is missing instead of overlayfs's bare ENOENT.
    for l in &rec.lowers {
        let p = part.resolve(l)?;
        if !p.is_dir() {
            return Err(VersionError::MissingLower(p));
        }
    }
    let sys = |line: String| move |source| VersionError::Syscall { line, source };
    for dir in [&rec.upper, &rec.work] {
        let p = part.resolve(dir)?;
        env.mkdir(&p, 0o755)
            .map_err(sys(format!("mkdir -p {}", p.display())))?;
    }
    let newroot = &env.paths.newroot;
    if env.kernel.is_mountpoint(newroot) {
        let _ = env.kernel.umount_detach(newroot);
    }
    env.mkdir(newroot, 0o755)
        .map_err(sys(format!("mkdir -p {}", newroot.display())))?;
    let m = Mount::new("overlay", newroot, "overlay").data(opts);
    env.mount(&m).map_err(sys(m.to_shell()))
}

/// `vlc/` of the partition onto /var/lib/containerd, shared by every version.
fn bind_containerd(env: &Env, part: &Partition) -> Result<(), BootError> {
    let target = under(&env.paths.newroot, "/var/lib/containerd");
    let m = Mount::bind(part.vlc_dir(), &target);
    let err = |source| BootError::NewRoot {
        line: m.to_shell(),
        source,
    };
    env.mkdir(&part.vlc_dir(), 0o711).map_err(err)?;
    env.mkdir(&target, 0o711).map_err(err)?;
    env.mount(&m).map_err(err)?;
    // A bind takes the partition's nosuid,nodev; containerd's snapshots
    // need both (setuid binaries and device nodes in containers), and a
    // bind changes its flags only on a remount.
    let re = Mount::bind(part.vlc_dir(), &target).flags(MsFlags::MS_REMOUNT);
    env.mount(&re).map_err(|source| BootError::NewRoot {
        line: re.to_shell(),
        source,
    })
}

/// The extra mounts of `odisk`. A bad file or entry is logged, not fatal.
fn apply_odisk(env: &Env, part: &Partition) {
    let text = match std::fs::read_to_string(part.odisk()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            log::warn!(
                "cannot read {}: {e}; no extra mounts",
                part.odisk().display()
            );
            return;
        }
    };
    let entries = match odisk::parse(&text) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("{}: {e}; no extra mounts", part.odisk().display());
            return;
        }
    };
    for e in entries {
        if let Err(err) = apply_entry(env, part, &e) {
            log::warn!("odisk: {}: {err}; skipped", e.to_shell());
        }
    }
}

fn apply_entry(env: &Env, part: &Partition, e: &MountEntry) -> std::io::Result<()> {
    let (flags, data) = parse_options(&e.options);
    let target = under(&env.paths.newroot, &e.target);
    env.mkdir(&target, 0o755)?;
    if e.is_bind() {
        // A relative source is on the partition; an absolute one in the new root.
        let source = if e.source.starts_with('/') {
            under(&env.paths.newroot, &e.source)
        } else {
            let s = part
                .resolve(&e.source)
                .map_err(|x| std::io::Error::new(std::io::ErrorKind::InvalidInput, x))?;
            env.mkdir(&s, 0o755)?;
            s
        };
        let bind = flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        env.mount(&Mount::bind(&source, &target).flags(bind))?;
        // A bind mount takes ro/nosuid/... only on a remount.
        let rest = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        if !rest.is_empty() {
            let re = Mount::bind(&source, &target).flags(MsFlags::MS_REMOUNT | rest);
            env.mount(&re)?;
        }
        Ok(())
    } else {
        env.mount(
            &Mount::new(&e.source, &target, &e.fstype)
                .flags(flags)
                .data(data),
        )
    }
}

fn mount_tmp(env: &Env) -> Result<(), BootError> {
    let target = under(&env.paths.newroot, "/tmp");
    let m = Mount::new("tmpfs", &target, "tmpfs")
        .flags(MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
        .data("mode=1777");
    let err = |source| BootError::NewRoot {
        line: m.to_shell(),
        source,
    };
    env.mkdir(&target, 0o1777).map_err(err)?;
    env.mount(&m).map_err(err)
}

/// `/newroot` + `/var/lib/x` = `/newroot/var/lib/x`.
fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

mod counting;

#[cfg(test)]
mod counting_tests;
#[cfg(test)]
mod tests;
