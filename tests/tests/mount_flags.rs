//! Root tier (issue 16, item 6): what `nosuid,nodev` on the partition does
//! to the mounts stage 1 builds from it, with real mounts on the host's
//! kernel, as a user would meet it. The partition is mounted as stage 1
//! mounts it (`nosuid,nodev`), an overlay is made from its directories as
//! the version's root, and `vlc/` is bound and remounted as stage 1 does
//! for `/var/lib/containerd`. A setuid-root copy of `id`, run as nobody,
//! and a null device, opened by root, then show: on the partition neither
//! works; in the overlay root and in vlc both do. (`boot_exposure.rs`
//! checks stage 1's own mounts in QEMU.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?}: {st}");
}

fn mount(args: &[&str], source: &Path, target: &Path) {
    run(Command::new("mount").args(args).arg(source).arg(target));
}

/// Unmounts on drop, last mounted first.
struct Mounts(Vec<std::path::PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

/// `id` copied to `dir`, setuid root, and a null device beside it.
fn plant(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let id = dir.join("id");
    fs::copy("/usr/bin/id", &id).unwrap();
    fs::set_permissions(&id, fs::Permissions::from_mode(0o4755)).unwrap();
    run(Command::new("mknod")
        .arg(dir.join("null"))
        .args(["c", "1", "3"]));
    fs::set_permissions(dir.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
}

/// Whether `dir/id`, run as nobody, runs with euid 0.
fn suid_works(dir: &Path) -> bool {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(dir.join("id"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).contains("euid=0")
}

/// Whether root can open `dir/null`.
fn dev_works(dir: &Path) -> bool {
    match fs::File::open(dir.join("null")) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => false,
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

#[test]
fn setuid_and_devices_work_in_the_root_and_vlc_not_on_the_partition() {
    let tmp = tempfile::tempdir().unwrap();
    // nobody must reach the files: the temp dir is 0700.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let img = tmp.path().join("part.img");
    fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "terra"])
        .arg(&img));
    let (p, root, vlc) = (
        tmp.path().join("partition"),
        tmp.path().join("newroot"),
        tmp.path().join("containerd"),
    );
    for d in [&p, &root, &vlc] {
        fs::create_dir(d).unwrap();
    }
    let mut mounts = Mounts(Vec::new());
    // Stage 1's partition mount.
    mount(&["-t", "ext4", "-o", "loop,nosuid,nodev"], &img, &p);
    mounts.0.push(p.clone());
    plant(&p.join("lower"));
    plant(&p.join("vlc"));
    fs::create_dir_all(p.join("upper")).unwrap();
    fs::create_dir_all(p.join("work")).unwrap();
    // The version's root.
    let opts = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        p.display()
    );
    mount(&["-t", "overlay", "-o", &opts], Path::new("overlay"), &root);
    mounts.0.push(root.clone());
    // /var/lib/containerd: bound, then remounted without the flags.
    mount(&["--bind"], &p.join("vlc"), &vlc);
    mounts.0.push(vlc.clone());
    mount(&["-o", "remount,bind"], &p.join("vlc"), &vlc);

    assert!(!suid_works(&p.join("lower")), "setuid on the partition");
    assert!(!dev_works(&p.join("lower")), "a device on the partition");
    assert!(suid_works(&root), "setuid in the overlay root");
    assert!(dev_works(&root), "a device in the overlay root");
    assert!(suid_works(&vlc), "setuid in /var/lib/containerd");
    assert!(dev_works(&vlc), "a device in /var/lib/containerd");
}
