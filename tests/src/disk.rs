//! Disk images for the boot tests, made without mounting anything:
//! `mkfs.ext4 -d` copies a directory tree (device nodes and xattrs
//! included, so overlay whiteouts survive) into a new filesystem.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

const MIB: u64 = 1024 * 1024;

/// Size of the terra filesystems the tests make.
pub const FS_MIB: u64 = 64;

/// `mkfs.ext4 -L LABEL -d TREE IMAGE SIZE` on a fresh sparse file.
pub fn ext4_image(tree: &Path, label: &str, image: &Path, size_mib: u64) -> Result<()> {
    sparse_file(image, size_mib * MIB)?;
    mkfs(tree, label, image, 0, size_mib)
}

/// A disk with a GPT and two partitions: the first an ext4 filesystem
/// labelled `other`, the second `label` filled from `tree` (so stage 1 must
/// look at partitions, not just whole disks, and not stop at the first one).
pub fn partitioned_image(tree: &Path, label: &str, image: &Path) -> Result<()> {
    let (p1_start, p1_mib) = (1, 8);
    let p2_start = p1_start + p1_mib;
    let total = p2_start + FS_MIB + 1;
    sparse_file(image, total * MIB)?;
    let script = format!(
        "label: gpt\nstart={}MiB, size={}MiB, type=linux, name=other\nstart={}MiB, size={}MiB, type=linux, name=terra\n",
        p1_start, p1_mib, p2_start, FS_MIB
    );
    run_with_stdin(Command::new("sfdisk").arg("--quiet").arg(image), &script)
        .context("partitioning with sfdisk (fdisk package: scripts/setup)")?;
    let empty = tempfile::tempdir()?;
    mkfs(empty.path(), "other", image, p1_start * MIB, p1_mib)?;
    mkfs(tree, label, image, p2_start * MIB, FS_MIB)
}

/// A disk with nothing on it (zeros): no filesystem, no label.
pub fn blank_image(image: &Path, size_mib: u64) -> Result<()> {
    sparse_file(image, size_mib * MIB)
}

fn sparse_file(path: &Path, size: u64) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))
}

fn mkfs(tree: &Path, label: &str, image: &Path, offset: u64, size_mib: u64) -> Result<()> {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-L", label, "-d"]).arg(tree);
    if offset > 0 {
        cmd.arg("-E").arg(format!("offset={offset}"));
    }
    cmd.arg(image).arg(format!("{size_mib}M"));
    run(&mut cmd).context("mkfs.ext4 (e2fsprogs: scripts/setup)")
}

/// Runs `debugfs -R REQUEST IMAGE` (read-only) and returns its output.
pub fn debugfs(image: &Path, request: &str) -> Result<String> {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .context("running debugfs")?;
    if !out.status.success() {
        bail!(
            "debugfs -R {request:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The label of the filesystem at byte `offset` of `image`, as `blkid -p`
/// reads it there: how the tests check that a partition landed where the
/// partition table says.
pub fn label_at(image: &Path, offset: u64) -> Result<String> {
    let out = Command::new("blkid")
        .args([
            "-p",
            "-O",
            &offset.to_string(),
            "-s",
            "LABEL",
            "-o",
            "value",
        ])
        .arg(image)
        .output()
        .context("running blkid (util-linux)")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `cmd`; a failure carries its output.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` with `input` on its standard input.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<()> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{fake_chain_id, standard, BASE_LAYER, WHITEOUT_LAYER};

    /// mkfs.ext4 -d must carry the overlay whiteouts into the image: a 0/0
    /// character device and the trusted.overlay.opaque xattr.
    #[test]
    fn mkfs_copies_whiteouts_and_opaque_xattrs() {
        let dir = tempfile::tempdir().unwrap();
        let tree = standard(&dir.path().join("p"), Path::new("/bin/busybox")).unwrap();
        let image = dir.path().join("terra.img");
        ext4_image(&tree, "terra", &image, FS_MIB).unwrap();
        let layer = format!("/ov/snapshots/sha256-{}", fake_chain_id(WHITEOUT_LAYER));
        let stat = debugfs(&image, &format!("stat {layer}/etc/whiteme")).unwrap();
        assert!(stat.contains("Type: character special"), "{stat}");
        assert!(stat.contains("Device major/minor number: 00:00"), "{stat}");
        let xattrs = debugfs(&image, &format!("ea_list {layer}/opt/opaque")).unwrap();
        assert!(
            xattrs.contains("trusted.overlay.opaque") && xattrs.contains("\"y\""),
            "{xattrs}"
        );
        let base = format!("/ov/snapshots/sha256-{}", fake_chain_id(BASE_LAYER));
        let init = debugfs(&image, &format!("cat {base}/sbin/init")).unwrap();
        assert!(init.contains("TERRA-PROBE-BEGIN"));
        let label = Command::new("e2label").arg(&image).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "terra");
    }

    #[test]
    fn partitioned_disk_has_terra_second() {
        let dir = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        partitioned_image(tree.path(), "terra", &image).unwrap();
        let dump = Command::new("sfdisk")
            .arg("--dump")
            .arg(&image)
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        let parts: Vec<&str> = dump.lines().filter(|l| l.contains("start=")).collect();
        assert_eq!(parts.len(), 2, "{dump}");
        // The second partition's filesystem, at 9 MiB.
        assert_eq!(label_at(&image, 9 * MIB).unwrap(), "terra");
    }
}
