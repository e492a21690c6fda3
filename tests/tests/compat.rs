//! The layer compatibility suite: the same small tree written as a two-layer
//! image by every common tar writer reachable here (GNU tar, bsdtar,
//! Python's tarfile in ustar, GNU and pax formats, umoci, buildah), then
//! installed with `terra install` (the snapshots mounted as the overlay that
//! boots) and unpacked with `terra unpack`, each compared entry by entry
//! with `umoci raw unpack` of the same image.
//!
//! The tree has what real images have and writers disagree on: devices and
//! FIFOs (Python leaves their device fields blank), hard links, a long name,
//! a binary xattr and a file capability (both with newlines in the value),
//! setuid, owners. The second layer writes through symlinks of the first:
//! `lib/extra.so` over `lib -> usr/lib`, `a/share/doc/README` over
//! `a -> b -> /usr`, and replaces the directory `run/ctl` by a FIFO.
//!
//! Root tier: devices, capabilities and overlay mounts need root. A missing
//! writer fails the test (install it with scripts/setup).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout};
use terra_tests::treediff::{describe, diff};

/// A v2 file capability (cap_dac_override,cap_fowner,cap_net_raw+ep): its
/// first permitted byte is 0x0a, a newline.
const CAPABILITY: [u8; 20] = [
    1, 0, 0, 2, 0x0a, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
const BINARY_XATTR: &[u8] = b"\x00\n\xff\x80\n19 path=smuggled\n";
/// What the second layer holds, by name: written without their parents.
const UPPER: [&str; 3] = ["lib/extra.so", "a/share/doc/README", "run/ctl"];
const LONG_DIR: &str = "usr/share/a-directory-name-long-enough-that-the-path-needs-a-long-name";

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::piped()).output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (a missing writer: install it with scripts/setup)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sh(script: &str) -> Vec<u8> {
    run(Command::new("sh").args(["-euc", script]))
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// The source trees: `lower/` (all of layer 1) and `upper/` (the files of
/// layer 2, in real directories that the layer does not list).
fn make_trees(dir: &Path) -> (PathBuf, PathBuf) {
    let (lo, up) = (dir.join("lower"), dir.join("upper"));
    let long_file = format!("{LONG_DIR}/and-a-file-name-that-is-long-as-well.txt");
    sh(&format!(
        "cd {lo}/.. && mkdir -p lower && cd lower
         mkdir -p etc usr/bin usr/lib usr/share dev run/ctl data {LONG_DIR}
         printf 'hello\\n' > etc/hello
         printf secret > etc/owned && chown 1000:1000 etc/owned && chmod 0640 etc/owned
         printf ping > usr/bin/ping && chmod 4755 usr/bin/ping
         ln usr/bin/ping usr/bin/ping2
         printf libc > usr/lib/libc.so
         printf long > {long_file}
         ln -s usr/lib lib && ln -s b a && ln -s /usr b
         mknod dev/null0 c 1 3 && mknod dev/loop0 b 7 0 && mkfifo run/initctl
         printf old > run/ctl/old && printf data > data/bin
         chmod 0750 usr/share
         mkdir -p {up}/lib {up}/a/share/doc {up}/run
         printf so > {up}/lib/extra.so && chmod 0755 {up}/lib/extra.so
         printf doc > {up}/a/share/doc/README && mkfifo {up}/run/ctl",
        lo = lo.display(),
        up = up.display(),
    ));
    setxattr(&lo.join("usr/bin/ping"), "security.capability", &CAPABILITY);
    setxattr(&lo.join("data/bin"), "user.bin", BINARY_XATTR);
    (lo, up)
}

#[derive(Debug, Clone, Copy)]
enum Writer {
    GnuPosix,
    GnuGnu,
    Bsdtar,
    Python(&'static str),
    Umoci,
    Buildah,
}

impl Writer {
    /// Whether the writer carries xattrs (ustar and GNU formats cannot).
    fn xattrs(self) -> bool {
        !matches!(self, Writer::GnuGnu | Writer::Python("ustar" | "gnu"))
    }

    /// A tar of `names` under `root` (`.`: the whole tree).
    fn tar(self, root: &Path, names: &[&str]) -> Vec<u8> {
        let whole = names == ["."];
        let mut cmd = match self {
            Writer::GnuPosix | Writer::GnuGnu => {
                let mut c = Command::new("tar");
                c.args(["--numeric-owner", "-C"]).arg(root);
                if let Writer::GnuPosix = self {
                    c.args(["--format=posix", "--xattrs", "--xattrs-include=*"]);
                } else {
                    c.arg("--format=gnu");
                }
                if !whole {
                    c.arg("--no-recursion");
                }
                c.args(["-cf", "-"]);
                c
            }
            Writer::Bsdtar => {
                let mut c = Command::new("bsdtar");
                c.args(["--numeric-owner", "--xattrs", "--format", "pax", "-C"])
                    .arg(root);
                if !whole {
                    c.arg("-n");
                }
                c.args(["-cf", "-"]);
                c
            }
            Writer::Python(format) => {
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/write_tar.py");
                let mut c = Command::new("python3");
                c.arg(script).arg(format).arg(root);
                c
            }
            Writer::Umoci | Writer::Buildah => unreachable!("these write whole images"),
        };
        run(cmd.args(names))
    }

    /// The image `img` in an OCI layout under `dir`; returns the layout.
    fn image(self, dir: &Path, lower: &Path, upper: &Path) -> PathBuf {
        let layout = dir.join("layout");
        match self {
            Writer::Umoci => umoci_image(dir, &layout, lower, upper),
            Writer::Buildah => buildah_image(dir, &layout, lower, upper),
            _ => {
                let mut l = Layout::create(&layout).unwrap();
                let layers = [
                    Layer::gzip(self.tar(lower, &["."])),
                    Layer::gzip(self.tar(upper, &UPPER)),
                ];
                add_intact(&mut l, "img", &layers);
            }
        }
        layout
    }
}

/// umoci's own layers: a repack of the lower tree, then one `umoci insert`
/// per upper file (insert writes the target without its parents).
fn umoci_image(dir: &Path, layout: &Path, lower: &Path, upper: &Path) {
    let (l, b) = (layout.display(), dir.join("bundle"));
    sh(&format!(
        "umoci init --layout {l} && umoci new --image {l}:img
         umoci unpack --image {l}:img {b}
         cp -a {lo}/. {b}/rootfs/ && umoci repack --image {l}:img {b}",
        b = b.display(),
        lo = lower.display()
    ));
    for name in UPPER {
        run(Command::new("umoci")
            .args(["insert", "--image", &format!("{l}:img")])
            .arg(upper.join(name))
            .arg(format!("/{name}")));
    }
}

/// buildah's layers (containers/storage diffs): the lower tree copied into
/// a scratch container and committed, then a container from it where the
/// upper files are added as a user would (`buildah copy` resolves the
/// symlinks inside the container) and committed to the layout.
fn buildah_image(dir: &Path, layout: &Path, lower: &Path, upper: &Path) {
    let bh = format!(
        "buildah --root {d}/storage --runroot {d}/run --storage-driver vfs",
        d = dir.display()
    );
    sh(&format!(
        "c=$({bh} from scratch) && m=$({bh} mount $c)
         cp -a {lo}/. $m/ && {bh} commit -q $c base
         c=$({bh} from base) && m=$({bh} mount $c)
         {bh} copy $c {up}/lib/extra.so /lib/extra.so
         {bh} copy $c {up}/a/share/doc/README /a/share/doc/README
         rm -rf $m/run/ctl && mkfifo $m/run/ctl
         {bh} commit -q --format oci $c oci:{l}:img
         {bh} rm -a >/dev/null && {bh} rmi -a -f >/dev/null",
        lo = lower.display(),
        up = upper.display(),
        l = layout.display(),
    ));
}

/// Unmounts when dropped, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn check(writer: Writer) {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper) = make_trees(tmp.path());
    let layout = writer.image(tmp.path(), &lower, &upper);
    let reference = format!("oci:{}:img", layout.display());

    let want = tmp.path().join("umoci-rootfs");
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&want));
    let want = describe(&want);

    let flat = tmp.path().join("flat");
    ok(&["unpack", &reference, flat.to_str().unwrap()]);
    let flat = describe(&flat);

    let part = empty_partition(tmp.path());
    ok(&install_args(part.to_str().unwrap(), &reference, &[]));
    let m = meta(&part);
    let (_, rec) = m.versions.iter().next().unwrap();
    let lowers: Vec<String> = rec
        .lowers
        .iter()
        .map(|l| part.join(l).display().to_string())
        .collect();
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", lowers.join(":")))
        .arg(&merged));
    let mounted = Mounted(merged.clone());
    let booted = describe(&merged);
    drop(mounted);

    // Not vacuous: the tree is there, through the symlinks, with its xattrs.
    let at = |p: &str| want.get(p).map(String::as_str).unwrap_or("(missing)");
    assert!(
        at("usr/lib/extra.so").starts_with("file"),
        "{}",
        at("usr/lib/extra.so")
    );
    assert!(at("usr/share/doc/README").starts_with("file"));
    assert!(at("lib").starts_with("symlink -> usr/lib"), "{}", at("lib"));
    assert!(at("run/ctl").starts_with("fifo"), "{}", at("run/ctl"));
    assert!(
        at("dev/loop0").starts_with("block 7,0"),
        "{}",
        at("dev/loop0")
    );
    assert!(at("usr/bin/ping2").contains("linked-with=usr/bin/ping"));
    if writer.xattrs() {
        assert!(at("usr/bin/ping").contains("xattr:security.capability=010000020a20"));
        assert!(at("data/bin").contains("xattr:user.bin=000aff800a"));
    }
    let mut problems = diff("umoci", &want, "terra unpack", &flat);
    problems.extend(diff("umoci", &want, "terra install (overlay)", &booted));
    assert!(
        problems.is_empty(),
        "{writer:?}: terra differs from umoci raw unpack:\n{}",
        problems.join("\n")
    );
}

#[test]
fn gnu_tar_posix() {
    check(Writer::GnuPosix);
}

#[test]
fn gnu_tar_gnu_format() {
    check(Writer::GnuGnu);
}

#[test]
fn bsdtar_pax() {
    check(Writer::Bsdtar);
}

#[test]
fn python_ustar() {
    check(Writer::Python("ustar"));
}

#[test]
fn python_gnu() {
    check(Writer::Python("gnu"));
}

#[test]
fn python_pax() {
    check(Writer::Python("pax"));
}

#[test]
fn umoci() {
    check(Writer::Umoci);
}

#[test]
fn buildah() {
    check(Writer::Buildah);
}
