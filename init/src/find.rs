//! Step 5: find the partition by its label.
//!
//! Scans `/sys/class/block` (whole disks and partitions), probes each device
//! once (again only if its size changes), and waits until `terra.timeout`
//! for the label to show up. The scan is cheap (a directory listing), so it
//! polls fast at first (10 ms) and backs off to 200 ms: a disk that appears
//! late is seen within a fraction of a second, with no fixed long sleeps.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use terra_layout::BootParams;

use crate::env::Env;
use crate::error::BootError;
use crate::kernel::Node;
use terra_layout::probe::{probe, Probe};

const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(200);

/// The partition, found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `vdb1`
    pub name: String,
    /// `/dev/vdb1`
    pub node: PathBuf,
    /// How many scans of /sys/class/block it took (1: it was there at once).
    pub scans: u32,
}

/// One block device and what its probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub node: PathBuf,
    pub bytes: u64,
    /// The probe, or why it could not run.
    pub probe: Result<Probe, String>,
}

impl Seen {
    fn label(&self) -> Option<&str> {
        match &self.probe {
            Ok(Probe::Ext4 { label }) => Some(label),
            _ => None,
        }
    }

    /// `/dev/vdb1 (64 MiB): ext4 label "data"`, for the not-found message.
    pub fn describe(&self) -> String {
        let what = match &self.probe {
            Ok(Probe::Ext4 { label }) if label.is_empty() => "ext4 without a label".to_string(),
            Ok(Probe::Ext4 { label }) => format!("ext4 label {label:?}"),
            Ok(Probe::Unknown) if self.bytes == 0 => "empty (no medium)".to_string(),
            Ok(Probe::Unknown) => "no ext4 filesystem".to_string(),
            Err(e) => format!("cannot read: {e}"),
        };
        format!("{} ({}): {what}", self.node.display(), human(self.bytes))
    }
}

fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// Waits for the partition labelled `params.label` (on `params.device` if given).
pub fn partition(env: &Env, params: &BootParams) -> Result<Found, BootError> {
    let start = Instant::now();
    let deadline = start + params.timeout;
    let mut cache: HashMap<String, (String, Seen)> = HashMap::new();
    let mut poll = FIRST_POLL;
    let mut said_waiting = false;
    let mut scans = 0;
    loop {
        let seen = scan(env, &mut cache);
        scans += 1;
        match pick(&seen, &params.label, params.device.as_deref()) {
            Pick::One(s) => {
                return Ok(Found {
                    name: s.name.clone(),
                    node: s.node.clone(),
                    scans,
                })
            }
            Pick::Many(all) => {
                return Err(BootError::Ambiguous {
                    label: params.label.clone(),
                    devices: all.iter().map(|s| s.node.display().to_string()).collect(),
                })
            }
            Pick::None => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(BootError::NotFound {
                label: params.label.clone(),
                device: params.device.clone(),
                waited: now - start,
                seen: seen.iter().map(Seen::describe).collect(),
            });
        }
        if !said_waiting && now - start >= Duration::from_millis(500) {
            said_waiting = true;
            log::info!(
                "waiting up to {} s for a partition labelled {:?} (seen so far: {})",
                params.timeout.as_secs_f32(),
                params.label,
                list_names(&seen)
            );
        }
        sleep(poll.min(deadline - now));
        poll = (poll * 3 / 2).min(MAX_POLL);
    }
}

fn list_names(seen: &[Seen]) -> String {
    if seen.is_empty() {
        return "no block devices".into();
    }
    seen.iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lists /sys/class/block and probes the devices not probed yet.
pub fn scan(env: &Env, cache: &mut HashMap<String, (String, Seen)>) -> Vec<Seen> {
    let Ok(dir) = std::fs::read_dir(&env.paths.class_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let sys = env.paths.class_block.join(&name);
        let read = |f: &str| std::fs::read_to_string(sys.join(f)).map(|s| s.trim().to_string());
        let devnum = read("dev").unwrap_or_default();
        // `size` is in 512-byte sectors whatever the device's block size.
        let bytes = read("size")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512;
        let key = format!("{devnum} {bytes}");
        if let Some((k, seen)) = cache.get(&name) {
            if *k == key {
                out.push(seen.clone());
                continue;
            }
        }
        let seen = probe_device(env, &name, &devnum, bytes);
        log::debug!("probe {}", seen.describe());
        if seen.probe.is_ok() {
            cache.insert(name, (key, seen.clone()));
        }
        out.push(seen);
    }
    out
}

fn probe_device(env: &Env, name: &str, devnum: &str, bytes: u64) -> Seen {
    // sysfs spells a `/` in a device name as `!` (cciss!c0d0).
    let node = env.paths.dev.join(name.replace('!', "/"));
    let mut seen = Seen {
        name: name.to_string(),
        node: node.clone(),
        bytes,
        probe: Ok(Probe::Unknown),
    };
    if bytes == 0 {
        return seen; // no medium, or an unused loop device: nothing to read
    }
    if let Err(e) = ensure_node(env, &node, devnum) {
        seen.probe = Err(format!("no device node: {e}"));
        return seen;
    }
    seen.probe = File::open(&node)
        .and_then(|mut f| probe(&mut f))
        .map_err(|e| e.to_string());
    seen
}

/// devtmpfs makes the nodes; without it (or if it lags), make ours.
fn ensure_node(env: &Env, node: &Path, devnum: &str) -> std::io::Result<()> {
    if node.exists() {
        return Ok(());
    }
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("dev {devnum:?}"));
    let (major, minor) = devnum.split_once(':').ok_or_else(bad)?;
    let major: u64 = major.parse().map_err(|_| bad())?;
    let minor: u64 = minor.parse().map_err(|_| bad())?;
    if let Some(parent) = node.parent() {
        env.kernel.mkdir_all(parent, 0o755)?;
    }
    log::debug!("mknod {} b {major} {minor}", node.display());
    env.kernel.mknod(node, Node::Block, major, minor, 0o600)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pick<'a> {
    One(&'a Seen),
    Many(Vec<&'a Seen>),
    None,
}

/// Chooses among the devices seen. Pure.
pub fn pick<'a>(seen: &'a [Seen], label: &str, device: Option<&str>) -> Pick<'a> {
    let mut with_label: Vec<&Seen> = seen.iter().filter(|s| s.label() == Some(label)).collect();
    if let Some(d) = device {
        let d = d.strip_prefix("/dev/").unwrap_or(d);
        with_label.retain(|s| s.name == d || s.name.replace('!', "/") == d);
    }
    match with_label.as_slice() {
        [] => Pick::None,
        [one] => Pick::One(one),
        _ => Pick::Many(with_label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Paths;
    use crate::kernel::fake::Fake;
    use std::fs;

    fn seen(name: &str, label: Option<&str>) -> Seen {
        Seen {
            name: name.into(),
            node: PathBuf::from("/dev").join(name),
            bytes: 64 << 20,
            probe: Ok(match label {
                Some(l) => Probe::Ext4 { label: l.into() },
                None => Probe::Unknown,
            }),
        }
    }

    #[test]
    fn picks_the_one_labelled_device() {
        let all = [
            seen("vda", None),
            seen("vda1", Some("data")),
            seen("vdb1", Some("terra")),
        ];
        assert_eq!(pick(&all, "terra", None), Pick::One(&all[2]));
        assert_eq!(pick(&all, "nope", None), Pick::None);
    }

    #[test]
    fn two_labelled_devices_need_terra_device() {
        let all = [seen("vda", Some("terra")), seen("vdb1", Some("terra"))];
        assert!(matches!(pick(&all, "terra", None), Pick::Many(v) if v.len() == 2));
        assert_eq!(pick(&all, "terra", Some("/dev/vdb1")), Pick::One(&all[1]));
        assert_eq!(pick(&all, "terra", Some("vda")), Pick::One(&all[0]));
        assert_eq!(pick(&all, "terra", Some("/dev/vdc")), Pick::None);
    }

    #[test]
    fn describes_what_was_seen() {
        assert_eq!(
            seen("vdb1", Some("data")).describe(),
            "/dev/vdb1 (64 MiB): ext4 label \"data\""
        );
        assert_eq!(
            seen("vda", None).describe(),
            "/dev/vda (64 MiB): no ext4 filesystem"
        );
    }

    /// A fake sysfs and /dev where device nodes are mkfs-made image files.
    fn fake_machine(dir: &Path, disks: &[(&str, Option<&str>)]) -> Paths {
        let class = dir.join("sys/class/block");
        let dev = dir.join("dev");
        fs::create_dir_all(&dev).unwrap();
        for (i, (name, label)) in disks.iter().enumerate() {
            let sys = class.join(name);
            fs::create_dir_all(&sys).unwrap();
            fs::write(sys.join("dev"), format!("254:{i}\n")).unwrap();
            fs::write(sys.join("size"), format!("{}\n", (8 << 20) / 512)).unwrap();
            let img = dev.join(name);
            fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
            if let Some(l) = label {
                let out = std::process::Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-L", l])
                    .arg(&img)
                    .output()
                    .expect("mkfs.ext4 (e2fsprogs) is needed");
                assert!(out.status.success());
            }
        }
        Paths {
            class_block: class,
            dev,
            ..Paths::default()
        }
    }

    fn params(label: &str, timeout_ms: u64) -> BootParams {
        BootParams {
            label: label.into(),
            timeout: Duration::from_millis(timeout_ms),
            ..BootParams::default()
        }
    }

    #[test]
    fn finds_the_partition_on_image_files() {
        let dir = tempfile::tempdir().unwrap();
        let paths = fake_machine(
            dir.path(),
            &[
                ("vda", None),
                ("vdb", Some("other")),
                ("vdc", Some("terra")),
            ],
        );
        let k = Fake::default();
        let env = Env::new(paths.clone(), &k, Instant::now());
        let found = partition(&env, &params("terra", 0)).unwrap();
        assert_eq!(
            found,
            Found {
                name: "vdc".into(),
                node: paths.dev.join("vdc"),
                scans: 1,
            }
        );
    }

    #[test]
    fn not_found_lists_devices_and_labels_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let paths = fake_machine(dir.path(), &[("vda", None), ("vdb", Some("other"))]);
        let k = Fake::default();
        let env = Env::new(paths, &k, Instant::now());
        let t = Instant::now();
        let err = partition(&env, &params("terra", 300)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        let found = err.found().join("\n");
        assert!(found.contains("vda (8 MiB): no ext4 filesystem"), "{found}");
        assert!(
            found.contains("vdb (8 MiB): ext4 label \"other\""),
            "{found}"
        );
    }

    #[test]
    fn a_late_disk_is_seen_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let paths = fake_machine(dir.path(), &[("vda", None)]);
        let late = tempfile::tempdir().unwrap();
        let later = fake_machine(late.path(), &[("vdb", Some("terra"))]);
        let k = Fake::default();
        let env = Env::new(paths.clone(), &k, Instant::now());
        let class = paths.class_block.clone();
        let dev = paths.dev.clone();
        let adder = std::thread::spawn(move || {
            sleep(Duration::from_millis(300));
            fs::rename(later.dev.join("vdb"), dev.join("vdb")).unwrap();
            fs::rename(later.class_block.join("vdb"), class.join("vdb")).unwrap();
            Instant::now()
        });
        let found = partition(&env, &params("terra", 5000)).unwrap();
        let reacted = adder.join().unwrap().elapsed();
        assert_eq!(found.name, "vdb");
        assert!(found.scans > 3, "{found:?}");
        assert!(found.scans > 3, "{found:?}");
        assert!(reacted < Duration::from_millis(250), "{reacted:?}");
    }

    #[test]
    fn makes_missing_device_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = fake_machine(dir.path(), &[("vda", None)]);
        fs::remove_file(paths.dev.join("vda")).unwrap();
        let k = Fake::default();
        let env = Env::new(paths.clone(), &k, Instant::now());
        let _ = scan(&env, &mut HashMap::new());
        let want = format!("mknod -m 600 {} b 254 0", paths.dev.join("vda").display());
        assert!(k.calls().contains(&want), "{:?}", k.calls());
    }
}
