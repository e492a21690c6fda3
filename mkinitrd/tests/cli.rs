//! The `mkinitrd` binary end to end: contents, round trips through `cpio`,
//! reproducibility, atomic replacement and error messages.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fake_init, fake_modules, mkinitrd, run, sha256};
use mkinitrd::archive::read_newc;
use mkinitrd::list;

/// mkinitrd on the given modules directory and init, without the default
/// module set (so only the modules `args` ask for), then `args`.
fn mkinitrd_from(modules: &Path, init: &Path, args: &[&str]) -> Command {
    let mut c = mkinitrd();
    c.args(["--module-set", "none", "--modules-dir"])
        .arg(modules)
        .arg("--init")
        .arg(init)
        .args(args);
    c
}

/// Runs a mkinitrd that must fail; returns its stderr.
fn fails(cmd: &mut Command) -> String {
    let (ok, _, err) = run(cmd);
    assert!(!ok, "{cmd:?} should have failed");
    err
}

/// Builds from the made-up modules; returns the output path.
fn build(dir: &Path, out: &str, extra: &[&str]) -> std::path::PathBuf {
    let modules = fake_modules(dir);
    let init = fake_init(dir);
    let out = dir.join(out);
    let (ok, _, err) = run(
        mkinitrd_from(&modules, &init, &["-k", "9.9.9-test", "-m", "blk"])
            .arg("-o")
            .arg(&out)
            .args(extra),
    );
    assert!(ok, "mkinitrd failed: {err}");
    out
}

#[test]
fn contents_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(
        dir.path(),
        "x.img",
        &["--shell", "--module-options", "blk debug=1  level=2"],
    );
    let listing = list::read(&fs::read(&out).unwrap()).unwrap();
    let get = |name: &str| {
        listing
            .members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(get("init").mode, 0o100755);
    assert_eq!(get("init").data, b"#!/bin/sh\necho not the real init\n");
    assert_eq!(
        (get("dev/console").mode, get("dev/console").rdev),
        (0o020600, (5, 1))
    );
    assert_eq!(
        (get("dev/null").mode, get("dev/null").rdev),
        (0o020666, (1, 3))
    );
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "newroot",
        "etc/terra",
        "bin",
    ] {
        assert_eq!(get(d).mode & 0o170000, 0o040000, "{d} is a directory");
    }
    // Modules decompressed, at their host path without the suffix, in load order.
    assert_eq!(
        get("lib/modules/9.9.9-test/kernel/lib/ring.ko").data,
        b"\x7fELF ring module"
    );
    assert_eq!(
        get("lib/modules/9.9.9-test/kernel/lib/helper.ko").data,
        b"\x7fELF helper module"
    );
    let order = String::from_utf8(get("etc/terra/modules").data.clone()).unwrap();
    let lines: Vec<&str> = order.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "/lib/modules/9.9.9-test/kernel/lib/helper.ko",
            "/lib/modules/9.9.9-test/kernel/lib/ring.ko",
            "/lib/modules/9.9.9-test/kernel/drivers/blk.ko debug=1  level=2",
        ]
    );
    let why = String::from_utf8(get("etc/terra/modules.why").data.clone()).unwrap();
    assert!(why.contains("ring: needed by blk (requested)"), "{why}");
    assert!(why.contains("helper: soft dependency of blk"), "{why}");
    // The shell.
    assert_eq!(get("bin/busybox").data, fs::read("/bin/busybox").unwrap());
    assert_eq!(get("bin/sh").data, b"busybox");
    assert_eq!(get("bin/sh").mode, 0o120777);
    // Sorted, parents first, all owned by root with mtime 0.
    let names: Vec<&str> = listing.members.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(listing
        .members
        .iter()
        .all(|m| m.uid == 0 && m.gid == 0 && m.mtime == 0));
}

#[test]
fn cpio_reads_what_we_write() {
    let Some(cpio) = common::tool("cpio") else {
        return;
    };
    let Some(zstd) = common::tool("zstd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = build(dir.path(), "plain.img", &["--compress", "none"]);
    let packed = build(dir.path(), "packed.img", &[]);
    let ours: Vec<String> = read_newc(&fs::read(&plain).unwrap())
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();

    let listed = Command::new(&cpio)
        .arg("-t")
        .stdin(fs::File::open(&plain).unwrap())
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs, ours);

    // zstd -dc | cpio -t gives the same list: our zstd frame is standard.
    let unz = Command::new(&zstd)
        .args(["-dc"])
        .arg(&packed)
        .output()
        .unwrap();
    assert!(unz.status.success());
    assert_eq!(
        unz.stdout,
        fs::read(&plain).unwrap(),
        "compressed and plain builds hold the same archive"
    );

    // Extracted by cpio, files have our contents and modes.
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let st = Command::new(&cpio)
        .args(["-idm", "--no-absolute-filenames", "--quiet"])
        .current_dir(&root)
        .stdin(fs::File::open(&plain).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read(root.join("lib/modules/9.9.9-test/kernel/lib/ring.ko")).unwrap(),
        b"\x7fELF ring module"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(root.join("init"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
}

#[test]
fn same_inputs_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(dir.path(), "a.img", &["--shell"]);
    let b = build(dir.path(), "b.img", &["--shell"]);
    assert_eq!(sha256(&a), sha256(&b));
    for how in ["gzip", "none"] {
        let a = build(dir.path(), "a2.img", &["--compress", how]);
        let b = build(dir.path(), "b2.img", &["--compress", how]);
        assert_eq!(sha256(&a), sha256(&b), "{how}");
    }
    // SOURCE_DATE_EPOCH sets every mtime, and is honoured reproducibly.
    let with_epoch = |name: &str| {
        let modules = fake_modules(dir.path());
        let init = fake_init(dir.path());
        let out = dir.path().join(name);
        let args = ["-k", "9.9.9-test", "-m", "blk", "--compress", "none"];
        let (ok, _, err) = run(mkinitrd_from(&modules, &init, &args)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("-o")
            .arg(&out));
        assert!(ok, "{err}");
        out
    };
    let (c, d) = (with_epoch("c.img"), with_epoch("d.img"));
    assert_eq!(sha256(&c), sha256(&d));
    let members = read_newc(&fs::read(&c).unwrap()).unwrap();
    assert!(members.iter().all(|m| m.mtime == 1_700_000_000));
}

#[test]
fn real_kernel_images_are_reproducible() {
    let Some((kver, _)) = common::cloud_kernel() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let init = fake_init(dir.path());
    let mut shas = Vec::new();
    for name in ["one.img", "two.img"] {
        let out = dir.path().join(name);
        let (ok, _, err) = run(mkinitrd()
            .args(["-k", &kver])
            .arg("--init")
            .arg(&init)
            .arg("-o")
            .arg(&out));
        assert!(ok, "{err}");
        shas.push(sha256(&out));
    }
    assert_eq!(shas[0], shas[1]);
}

#[test]
fn a_failed_build_keeps_the_previous_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), "keep.img", &[]);
    let before = sha256(&out);
    let entries = || {
        let mut v: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let listing_before = entries();

    // A build error (unknown module): the output is not touched.
    let err = fails(
        mkinitrd_from(
            &dir.path().join("modules/9.9.9-test"),
            &dir.path().join("init"),
            &["-k", "9.9.9-test", "-m", "no_such_module"],
        )
        .arg("-o")
        .arg(&out),
    );
    assert!(err.contains("unknown module \"no_such_module\""), "{err}");
    assert_eq!(sha256(&out), before);
    assert_eq!(entries(), listing_before, "no temporary file left behind");

    // A write error (the target is a non-empty directory, so the final
    // rename fails): the directory survives and the temp file is removed.
    let blocker = dir.path().join("blocker");
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("keep"), b"x").unwrap();
    let err = fails(
        mkinitrd()
            .args(["-k", "9.9.9-test", "--module-set", "none"])
            .arg("--init")
            .arg(dir.path().join("init"))
            .arg("-o")
            .arg(&blocker),
    );
    assert!(err.contains("writing"), "{err}");
    assert_eq!(fs::read(blocker.join("keep")).unwrap(), b"x");
    let mut expected = listing_before.clone();
    expected.push("blocker".into());
    expected.sort();
    assert_eq!(entries(), expected, "no temporary file left behind");

    // And a successful rebuild replaces the image in one step.
    let rebuilt = build(dir.path(), "keep.img", &["--compress", "none"]);
    assert_ne!(sha256(&rebuilt), before);
}

#[test]
fn errors_say_what_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let modules = fake_modules(dir.path());
    let init = fake_init(dir.path());
    // Each runs in `dir`, so that an image written by mistake would show
    // (checked at the end).
    let in_dir = |mut c: Command| {
        c.current_dir(dir.path());
        c
    };
    // Without modules to find, the modules directory is left to the default.
    let base = |args: &[&str]| {
        let mut c = mkinitrd();
        c.args(["--module-set", "none"]).args(args);
        in_dir(c)
    };

    // Missing kernel version: names the directory and what exists.
    let nope = modules.parent().unwrap().join("0.0.0-nope");
    let args = ["-k", "0.0.0-nope", "-m", "blk"];
    let err = fails(&mut in_dir(mkinitrd_from(&nope, &init, &args)));
    assert!(
        err.contains("no modules for kernel version \"0.0.0-nope\""),
        "{err}"
    );
    assert!(err.contains("has: 9.9.9-test"), "{err}");

    // Unknown module: what was looked for, and a close match.
    let args = ["-k", "9.9.9-test", "-m", "blq"];
    let err = fails(&mut in_dir(mkinitrd_from(&modules, &init, &args)));
    assert!(
        err.contains("looked for \"blq\" in modules.dep (3 modules)"),
        "{err}"
    );
    assert!(err.contains("did you mean blk?"), "{err}");

    // Missing --file source.
    let err = fails(
        base(&["-k", "9.9.9-test", "--file", "/no/such/file:/etc/x"])
            .arg("--init")
            .arg(&init),
    );
    assert!(err.contains("/no/such/file is missing"), "{err}");

    // Missing init.
    let err = fails(&mut base(&["-k", "9.9.9-test", "--init", "/no/such/init"]));
    assert!(err.contains("the init /no/such/init"), "{err}");

    // A dynamically linked init cannot run in the initramfs.
    let err = fails(&mut base(&["-k", "9.9.9-test", "--init", "/bin/ls"]));
    assert!(err.contains("dynamically linked"), "{err}");

    // Options for a module that is not in the image.
    let args = [
        "-k",
        "9.9.9-test",
        "-m",
        "blk",
        "--module-options",
        "helpr x=1",
    ];
    let err = fails(&mut in_dir(mkinitrd_from(&modules, &init, &args)));
    assert!(
        err.contains("--module-options for helpr, which is not in the initramfs"),
        "{err}"
    );

    // Nothing was written by any of these.
    assert!(!dir.path().join("initramfs-9.9.9-test.img").exists());
    assert!(!dir.path().join("initramfs-0.0.0-nope.img").exists());
}

#[test]
fn list_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), "l.img", &[]);
    let (ok, text, err) = run(mkinitrd().arg("--list").arg(&out));
    assert!(ok, "{err}");
    assert!(text.contains("compression: zstd"), "{text}");
    assert!(
        text.contains("crw-------   0/0         5,1 dev/console"),
        "{text}"
    );
    assert!(text.contains("-rwxr-xr-x   0/0          33 init"), "{text}");
    assert!(text.contains("# Why each module is here"), "{text}");
    assert!(text.contains("ring: needed by blk (requested)"), "{text}");

    let modules = fake_modules(dir.path());
    let args = [
        "-k",
        "9.9.9-test",
        "-m",
        "virtio:d00000002v00001AF4,ext4",
        "--explain",
    ];
    let (ok, text, err) = run(mkinitrd_from(&modules, &dir.path().join("init"), &args)
        .arg("-o")
        .arg(dir.path().join("e.img")));
    assert!(ok, "{err}");
    assert!(
        text.contains("blk: requested as virtio:d00000002v00001AF4"),
        "{text}"
    );
    assert!(
        text.contains("ext4: built into the kernel (requested)"),
        "{text}"
    );
    assert!(err.contains("3 modules"), "{err}");
}
