//! The original Terra's services on Terra's kernel and OS image
//! (docs/services.md), in one boot that checks them in turn (the image's
//! hook, scenario `services`, prints `TERRA-HOOK ...` markers):
//!
//! - a container with CNI networking gets an address on the bridge and
//!   fetches a page from an HTTP server on the host's loopback; the CRI
//!   plugin is loaded;
//! - WireGuard: wg0 comes up with a key and a peer;
//! - CRIU: a running container is checkpointed and restored, and the
//!   restored process goes on counting where it stopped;
//! - from the host, the forwarded :9100 shows node metrics and Terra's boot
//!   timeline with the booted version's name and manifest digest.
//!
//! The guest's eth0 gets a static address from the hook (test only: the
//! image has no network set-up of its own yet).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use terra_qemu::Vm;
use terra_tests::boot::{lines_with, tail, Scenario};
use terra_tests::install_support::{image_digest, meta};
use terra_tests::services::{free_port, get, installed_disk, HostServer};
use terra_tests::{kernel, osimage};

/// From QEMU's start to the hook's metrics step: about a minute under TCG
/// on an idle machine; the rest is room for a loaded one.
const BOOT: Duration = Duration::from_secs(300);
const HOOK: &str = "terra: hook: TERRA-HOOK ";

fn marker<'a>(console: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{HOOK}{name}=");
    console.iter().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[test]
fn cni_wireguard_criu_and_metrics_in_one_boot() -> Result<()> {
    let s = Scenario::new()?;
    let k = kernel::kernel()?;
    let image = osimage::os_image()?;
    let reference = format!("oci:{}:latest", image.oci.display());
    let disk = s.path("disk.img");
    let tree = installed_disk(s.dir.path(), &disk, &[(&reference, "v1")], "v1")?;
    let digest = image_digest(&meta(&tree), "v1").to_string();
    let (initrd, _) = kernel::initramfs(s.tools, k, s.dir.path())?;
    let server = HostServer::start()?;
    let exporter = free_port()?;
    let append = format!("osimage.hook=services osimage.http={}", server.port);
    let cfg = s
        .vm_on(&k.image, &initrd, &[&disk], &append)
        .memory_mb(1024)
        .user_net(&format!("hostfwd=tcp:127.0.0.1:{exporter}-:9100"));
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for(&format!("{HOOK}metrics-ready"), BOOT)?;

    // The host reads :9100 until the version is marked good (the health
    // gate's grace is 2 s; terra metrics writes every 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let m = get(exporter, "/metrics").context("reading the guest's :9100 from the host")?;
        if m.lines()
            .any(|l| l == r#"terra_boot_state{state="good"} 1"#)
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    server.done();
    vm.wait_for("terra: powering off", Duration::from_secs(120))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    let c = vm.console.lines();
    let t = tail(&c);
    for l in lines_with(&c, "terra: ")
        .iter()
        .filter(|l| l.contains(" is ready: "))
    {
        eprintln!("{l}");
    }

    assert_eq!(marker(&c, "network"), Some("up"), "{t}");
    assert!(
        lines_with(&c, &format!("{HOOK}import-ok")).len() == 1,
        "{t}"
    );
    // CNI: an address on the bridge, a page from the host's loopback.
    assert_eq!(marker(&c, "cni-exit"), Some("0"), "{t}");
    let addr = marker(&c, "cni-addr").unwrap_or("");
    assert!(
        addr.starts_with("10.88."),
        "no bridge address: {addr:?}\n{t}"
    );
    assert_eq!(marker(&c, "cni-bridge"), Some("10.88.0.1/16"), "{t}");
    let page = format!("TERRA-PAGE-{}", server.token);
    assert_eq!(marker(&c, "cni-page"), Some(page.as_str()), "{t}");
    // The CRI plugin loaded, and found its network config.
    assert_eq!(marker(&c, "cri"), Some("ok"), "{t}");
    assert!(
        !c.iter().any(|l| l.contains("no network config found")),
        "containerd found no CNI config:\n{t}"
    );
    // WireGuard.
    for m in [
        "wg-link=ok",
        "wg-key=ok",
        "wg-peer=ok",
        "wg-port=51820",
        "wg-up=yes",
    ] {
        assert!(
            c.iter().any(|l| l == &format!("{HOOK}{m}")),
            "{m} missing:\n{t}"
        );
    }
    // CRIU: the restored process goes on from where it was (at least 30;
    // started afresh it would count from 1) and keeps counting.
    assert_eq!(marker(&c, "criu-checkpoint"), Some("ok"), "{t}");
    assert_eq!(marker(&c, "criu-restore"), Some("ok"), "{t}");
    let after = marker(&c, "criu-after").context(format!("no criu-after:\n{t}"))?;
    let (first, second) = after.split_once(' ').context("criu-after format")?;
    let (first, second): (u64, u64) = (first.parse()?, second.parse()?);
    assert!(
        first >= 30 && second > first,
        "counting did not go on: {after}\n{t}"
    );
    // The node exporter, ready on its port, with Terra's own metrics.
    assert!(
        c.iter()
            .any(|l| l.starts_with("terra: node-exporter is ready: tcp 127.0.0.1:9100 answers")),
        "{t}"
    );
    let has = |want: &str| metrics.lines().any(|l| l.starts_with(want));
    for want in [
        "node_boot_time_seconds ",
        "node_memory_MemTotal_bytes ",
        r#"terra_boot_step_seconds{step="find"} "#,
        r#"terra_boot_step_start_seconds{step="mount"} "#,
        r#"terra_service_ready_seconds{service="containerd"} "#,
        r#"terra_service_start_to_ready_seconds{service="node-exporter"} "#,
        r#"terra_boot_state{state="good"} 1"#,
        "terra_boot_fallback 0",
    ] {
        assert!(has(want), "{want} is not in the metrics:\n{metrics}");
    }
    // The exporter sorts the labels by name.
    let info = format!(
        r#"terra_version_info{{digest="{digest}",reference="{reference}",version="v1"}} 1"#
    );
    assert!(
        metrics.lines().any(|l| l == info),
        "{info} is not in the metrics:\n{metrics}"
    );
    // Services start with no signal blocked, so each stops on SIGTERM.
    assert_eq!(marker(&c, "blocked-hook"), Some("0000000000000000"), "{t}");
    assert_eq!(
        marker(&c, "blocked-metrics"),
        Some("0000000000000000"),
        "{t}"
    );
    assert!(
        !c.iter().any(|l| l.contains("did not exit in")),
        "a service needed SIGKILL at shutdown:\n{t}"
    );
    osimage::fsck_clean(&disk)?;
    Ok(())
}
