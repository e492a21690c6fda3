//! The temporary mount points of `--device` (`$TMPDIR/terra-mnt-<pid>-*`),
//! and the ones a killed terra left behind: its mount (and the loop device
//! under an image file, which goes with the unmount) stay until someone
//! unmounts them, so the next run does. The mount points are read from
//! `/proc/self/mountinfo` by field position: only the fifth field is
//! needed, and terra's own names carry no characters mountinfo escapes.

use std::path::{Path, PathBuf};

const PREFIX: &str = "terra-mnt-";

/// The prefix of this process's mount point: the PID tells a later run
/// whether its owner is still alive.
pub fn prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// Unmounts and removes every `terra-mnt-<pid>-*` mount point under the
/// temp dir whose terra process is gone. Failures are logged: they must
/// not stop the command at hand.
pub fn clean_stale() {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for dir in stale(&text, &std::env::temp_dir(), alive) {
        log::info!(
            "unmounting {}, left by a terra that was killed",
            dir.display()
        );
        let flags = rustix::mount::UnmountFlags::empty();
        if let Err(e) = rustix::mount::unmount(&dir, flags) {
            log::warn!("unmounting {}: {e}; detaching it lazily", dir.display());
            if let Err(e) = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH) {
                log::warn!("detaching {}: {e}", dir.display());
                continue;
            }
        }
        if let Err(e) = std::fs::remove_dir(&dir) {
            log::warn!("removing {}: {e}", dir.display());
        }
    }
}

/// Whether a terra with this PID still runs.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("terra"))
}

/// The mount points in `mountinfo` (`/proc/self/mountinfo`) that are
/// `tmp/terra-mnt-<pid>-*` with `alive(pid)` false, each once, deepest
/// last mounted first.
fn stale(mountinfo: &str, tmp: &Path, alive: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines().rev() {
        // Field 5 is the mount point (no spaces in ours, so no \040).
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        let point = Path::new(point);
        if point.parent() != Some(tmp) {
            continue;
        }
        let Some(name) = point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) && !out.iter().any(|p| p == point) {
            out.push(point.to_path_buf());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mounts_of_dead_terra_processes_only() {
        let info = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
90 22 7:3 / /tmp/terra-mnt-4242-abc rw - ext4 /dev/loop3 rw
91 22 7:4 / /tmp/terra-mnt-77-def rw - ext4 /dev/loop4 rw
92 22 7:5 / /tmp/terra-mnt-xyz rw - ext4 /dev/loop5 rw
93 22 7:6 / /tmp/other/terra-mnt-5-a rw - ext4 /dev/loop6 rw
94 22 7:3 / /tmp/terra-mnt-4242-abc rw - ext4 /dev/loop3 rw
";
        let dead = stale(info, Path::new("/tmp"), |pid| pid == 77);
        assert_eq!(dead, [PathBuf::from("/tmp/terra-mnt-4242-abc")]);
    }
}
