//! The image builder on the build machine (buildah, docs/services.md):
//!
//! - buildah builds a small image from a Dockerfile whose base comes from a
//!   registry on the host's loopback, and pushes it there; `terra unpack`
//!   reads it back;
//! - `FROM terraos`: a Dockerfile on Terra's OS image that sets the
//!   hostname `testing`, built with buildah, installed beside the version it
//!   was built from with `terra install`, booted (Terra's kernel, QEMU): the
//!   machine's hostname is `testing`, and the new version shares every base
//!   layer (same diff_ids, hence the same snapshots) with the original;
//!   `terra list` counts them as shared.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::buildah::{diff_ids, Buildah};
use terra_tests::install_support::{meta, ok};
use terra_tests::registry::Registry;
use terra_tests::services::installed_disk;
use terra_tests::{kernel, osimage};

const BOOT: Duration = Duration::from_secs(240);

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[test]
fn buildah_builds_a_dockerfile_on_a_registry_base_and_pushes_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let image = osimage::os_image()?;
    let reg = Registry::start()?;
    // The base: the tiny busybox image, pushed to the registry.
    let hello = image.oci.with_file_name("hello.tar");
    let base = format!("{}/terra/hello:latest", reg.addr);
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}:latest", hello.display()))
        .arg(format!("docker://{base}"))
        .output()?;
    ensure!(out.status.success(), "skopeo copy: {out:?}");

    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx)?;
    write(
        &ctx.join("Dockerfile"),
        &format!("FROM {base}\nRUN echo built by buildah > /built\n"),
    )?;
    let b = Buildah::new(&dir.path().join("store"))?;
    b.build(&ctx, "localhost/terra-built:1")?;
    let pushed = format!("{}/terra/built:1", reg.addr);
    b.push("localhost/terra-built:1", &format!("docker://{pushed}"))?;

    // Read back from the registry by Terra's own client.
    let unpacked = dir.path().join("unpacked");
    let addr = reg.addr.as_str();
    let u = unpacked.display().to_string();
    ok(&[
        "unpack",
        &pushed,
        &u,
        "--plain-http",
        "--insecure-registry",
        addr,
    ]);
    let built = std::fs::read_to_string(unpacked.join("built"))?;
    assert_eq!(built, "built by buildah\n");
    assert!(
        unpacked.join("bin/busybox").is_file(),
        "the base layer is missing"
    );
    Ok(())
}

#[test]
fn from_terraos_sets_the_hostname_and_shares_every_base_layer() -> Result<()> {
    let s = Scenario::new()?;
    let image = osimage::os_image()?;
    let reg = Registry::start()?;
    let base = reg.push(&image.oci, "latest", "terra/os")?;

    // The Dockerfile of docs/services.md.
    let ctx = s.path("ctx");
    std::fs::create_dir(&ctx)?;
    write(
        &ctx.join("Dockerfile"),
        &format!("FROM {base}\nCOPY hostname /etc/hostname\n"),
    )?;
    write(&ctx.join("hostname"), "testing\n")?;
    let b = Buildah::new(&s.path("store"))?;
    b.build(&ctx, "localhost/terraos-testing:1")?;
    let custom = s.path("custom");
    b.push(
        "localhost/terraos-testing:1",
        &format!("oci:{}:testing", custom.display()),
    )?;

    // Every base layer is there by diff_id (buildah re-compresses them, so
    // their blob digests may differ), with one layer on top.
    let original = diff_ids(&image.oci, "latest")?;
    let built = diff_ids(&custom, "testing")?;
    assert_eq!(built.len(), original.len() + 1, "{built:?}");
    assert_eq!(&built[..original.len()], &original[..]);

    let disk = s.path("disk.img");
    let tree = installed_disk(
        s.dir.path(),
        &disk,
        &[
            (&format!("oci:{}:latest", image.oci.display()), "v1"),
            (&format!("oci:{}:testing", custom.display()), "testing"),
        ],
        "testing",
    )?;
    // The same snapshots: testing's lowers are v1's plus its own.
    let m = meta(&tree);
    let (v1, testing) = (&m.versions["v1"], &m.versions["testing"]);
    assert_eq!(testing.lowers.len(), v1.lowers.len() + 1);
    assert!(v1.lowers.iter().all(|l| testing.lowers.contains(l)));
    let root = tree.display().to_string();
    let list: serde_json::Value = serde_json::from_str(&ok(&["--root", &root, "list", "--json"]))?;
    let row = list["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "testing")
        .context("testing is not listed")?;
    assert_eq!(row["shared_layers"], original.len(), "{list:#}");

    // Booted: the machine is `testing`.
    let k = kernel::kernel()?;
    let (initrd, _) = kernel::initramfs(s.tools, k, s.dir.path())?;
    let cfg = s
        .vm_on(&k.image, &initrd, &[&disk], "osimage.hook=hostname")
        .memory_mb(1024);
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: hook: TERRA-HOOK poweroff", BOOT)?;
    vm.expect_poweroff(Duration::from_secs(60))?;
    let c = vm.console.lines();
    let t = tail(&c);
    assert!(
        c.iter().any(|l| l.contains("booting version testing")),
        "{t}"
    );
    assert!(c.iter().any(|l| l == "terra: hostname testing"), "{t}");
    assert!(
        c.iter()
            .any(|l| l == "terra: hook: TERRA-HOOK hostname=testing"),
        "{t}"
    );
    osimage::fsck_clean(&disk)?;
    Ok(())
}
