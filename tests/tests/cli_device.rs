//! `terra --device` as an adversary would use it (issue 16): a partition
//! that runs out of space, a whole disk given for its partition, and the
//! mounts a killed terra leaves. Runs as root (loop mounts).

use std::fs;
use std::path::Path;
use std::process::Command;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Tar};

fn mkfs(image: &Path, label: &str) {
    fs::File::create(image).unwrap().set_len(64 << 20).unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(image)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `debugfs -R "ls -p DIR"`: the names in DIR of the filesystem in `image`.
fn ls(image: &Path, dir: &str) -> Vec<String> {
    let out = terra_tests::disk::debugfs(image, &format!("ls -p {dir}")).unwrap();
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(String::from))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    v.sort();
    v
}

/// Free blocks of the filesystem in `image`.
fn free_blocks(image: &Path) -> u64 {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Free blocks:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

fn noise(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    v
}

#[test]
fn a_full_partition_gets_its_space_back_and_says_how() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_v1(&mut layout);
    let img = tmp.path().join("small.img");
    mkfs(&img, "terra");
    let dev = img.to_str().unwrap();
    ok(&["--device", dev, "install", &layout.reference("v1")]);
    let free = free_blocks(&img);
    // 80 MB that do not compress: more than the 64 MB filesystem holds.
    let mut t = Tar::new();
    t.file("big", &noise(80 << 20), 0o644);
    add_intact(&mut layout, "big", &[Layer::plain(t.finish())]);
    let err = fails(&["--device", dev, "install", &layout.reference("big")]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("the partition is full: removed this install's partial downloads"),
        "{err}"
    );
    assert!(err.contains("terra gc"), "{err}");
    // Nothing of the failed install is left taking space.
    assert!(ls(&img, "/content/ingest").is_empty());
    assert!(!ls(&img, "/tmp").iter().any(|n| n.starts_with("unpack-")));
    let after = free_blocks(&img);
    assert!(
        after + 64 >= free,
        "free blocks {free} before, {after} after the failed install"
    );
    let m = ok(&["--device", dev, "list", "--json"]);
    assert!(m.contains("\"v1\"") && !m.contains("\"big\""), "{m}");
}

#[test]
fn a_whole_disk_is_refused_with_the_partition_to_give() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_v1(&mut layout);
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let disk = tmp.path().join("disk.img");
    terra_tests::disk::partitioned_image(&tree, "terra", &disk).unwrap();
    let before = fs::read(&disk).unwrap();
    let d = disk.to_str().unwrap();
    let err = fails(&["--device", d, "install", &layout.reference("v1")]);
    assert!(
        err.contains("is a whole disk with a GPT partition table"),
        "{err}"
    );
    assert!(err.contains("give its Terra partition"), "{err}");
    assert!(!err.contains("mkfs"), "never advise mkfs on a disk: {err}");
    assert!(fs::read(&disk).unwrap() == before, "the disk was written");
}

/// The mount points under the temp dir of mounts whose loop device is
/// backed by `image`.
fn mounts_of(image: &Path) -> Vec<String> {
    let image = image.canonicalize().unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let source = l.split(" - ").nth(1)?.split(' ').nth(1)?;
            let loopdev = source.strip_prefix("/dev/")?;
            let backing =
                fs::read_to_string(format!("/sys/block/{loopdev}/loop/backing_file")).ok()?;
            (Path::new(backing.trim()) == image && point.contains("terra-mnt-"))
                .then(|| point.to_string())
        })
        .collect()
}

#[test]
fn the_next_run_unmounts_what_a_killed_run_left() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let mut t = Tar::new();
    t.file("noise", &noise(1 << 20), 0o644);
    add_intact(&mut layout, "v1", &[Layer::gzip(t.finish())]);
    let img = tmp.path().join("part.img");
    mkfs(&img, "terra");
    let dev = img.to_str().unwrap();
    let args = ["--device", dev, "install", &layout.reference("v1")];
    kill_at(&terra_crash_bin(), "download", &args);
    let left = mounts_of(&img);
    assert_eq!(left.len(), 1, "a killed run leaves its mount: {left:?}");
    let out = ok(&args);
    assert!(out.contains("left by a terra that was killed"), "{out}");
    assert_eq!(mounts_of(&img), Vec::<String>::new());
    for p in left {
        assert!(!Path::new(&p).exists(), "{p} is still there");
    }
    let m = ok(&["--device", dev, "list", "--json"]);
    assert!(m.contains("\"v1\""), "{m}");
}
