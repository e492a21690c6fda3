//! A registry that trickles (issue 16, item 5): a tiny HTTP server on
//! 127.0.0.1 in the test serves an OCI layout and sends one layer a few
//! bytes at a time. The install must end within the documented timeout
//! (`--stall-timeout`, `--timeout`), name the registry and the blob, record
//! nothing, and release the partition lock.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Made, Tar};

/// How the server sends the slow blob: `bytes` every `every`.
#[derive(Clone, Copy)]
struct Trickle {
    bytes: usize,
    every: Duration,
}

/// Serves `layout` on 127.0.0.1 (repository `os`), sending blob `slow` as
/// `trickle` says and everything else at once. Each answer closes its
/// connection, so no keep-alive logic is needed.
fn serve(layout: &Path, made: &Made, slow: &str, trickle: Trickle) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (dir, manifest, slow) = (
        layout.to_path_buf(),
        made.manifest_digest.clone(),
        slow.to_string(),
    );
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (dir, manifest, slow) = (dir.clone(), manifest.clone(), slow.clone());
            thread::spawn(move || answer(conn, &dir, &manifest, &slow, trickle));
        }
    });
    addr
}

fn answer(mut conn: TcpStream, dir: &Path, manifest: &str, slow: &str, t: Trickle) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The rest of the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split(' ').nth(1).unwrap_or("").to_string();
    let blob = |d: &str| -> PathBuf {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let (file, ctype, digest) = if let Some(r) = path.strip_prefix("/v2/os/manifests/") {
        let d = if r.starts_with("sha256:") {
            r
        } else {
            manifest
        };
        (
            blob(d),
            "application/vnd.oci.image.manifest.v1+json",
            d.to_string(),
        )
    } else if let Some(d) = path.strip_prefix("/v2/os/blobs/") {
        (blob(d), "application/octet-stream", d.to_string())
    } else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let Ok(body) = std::fs::read(&file) else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nDocker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    if digest != slow {
        let _ = conn.write_all(&body);
        return;
    }
    for chunk in body.chunks(t.bytes) {
        if conn.write_all(chunk).and_then(|_| conn.flush()).is_err() {
            return; // terra gave up
        }
        thread::sleep(t.every);
    }
}

/// An image whose one layer is 512 KiB that do not compress.
fn image(tmp: &Path) -> (Layout, Made) {
    let mut layout = Layout::create(&tmp.join("img")).unwrap();
    let mut x: u32 = 0x51ab_1e55;
    let noise: Vec<u8> = (0..512 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut t = Tar::new();
    t.dir("etc", 0o755)
        .file("etc/hostname", b"slow\n", 0o644)
        .file("noise", &noise, 0o644);
    let made = add_intact(&mut layout, "v1", &[Layer::gzip(t.finish())]);
    (layout, made)
}

#[test]
fn a_trickling_registry_ends_the_install_within_the_stall_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, made) = image(tmp.path());
    let layer = made.layer_digests[0].clone();
    let addr = serve(
        &layout.dir,
        &made,
        &layer,
        Trickle {
            bytes: 1,
            every: Duration::from_millis(500),
        },
    );
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let reference = format!("{addr}/os:v1");
    let started = Instant::now();
    let install = Command::new(terra_bin())
        .args(["--root", r, "install", &reference, "--stall-timeout", "3"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // gc waits for the lock, says so, and runs once the install gave up.
    thread::sleep(Duration::from_millis(1000));
    let gc = ok(&["--root", r, "gc"]);
    assert!(gc.contains("waiting for another terra command"), "{gc}");
    // ... and says which.
    assert!(
        gc.contains(&format!("(pid {}: ", install.id())) && gc.contains(&reference),
        "{gc}"
    );
    let out = install.wait_with_output().unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    assert!(
        err.contains(&format!("registry {addr}: blob {layer}: stalled")),
        "{err}"
    );
    assert!(err.contains("--stall-timeout"), "{err}");
    // The progress said it was stalled before giving up.
    assert!(
        err.contains("warn:") && err.matches("stalled").count() >= 2,
        "{err}"
    );
    assert!(meta(&root).versions.is_empty());
}

#[test]
fn a_slow_registry_ends_the_install_at_the_overall_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, made) = image(tmp.path());
    let layer = made.layer_digests[0].clone();
    // 20 KiB/s: never stalled, but the layer would take half a minute.
    let addr = serve(
        &layout.dir,
        &made,
        &layer,
        Trickle {
            bytes: 2048,
            every: Duration::from_millis(100),
        },
    );
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let reference = format!("{addr}/os:v1");
    let started = Instant::now();
    let err = fails(&[
        "--root",
        r,
        "install",
        &reference,
        "--stall-timeout",
        "2",
        "--timeout",
        "4",
    ]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}: {err}");
    assert!(err.contains(&format!("registry {addr}")), "{err}");
    assert!(err.contains("--timeout"), "{err}");
    assert!(meta(&root).versions.is_empty());
    // The same registry at full speed installs: the limits do not get in
    // the way of a working transfer.
    let addr = serve(
        &layout.dir,
        &made,
        "none",
        Trickle {
            bytes: 1,
            every: Duration::ZERO,
        },
    );
    ok(&[
        "--root",
        r,
        "install",
        &format!("{addr}/os:v1"),
        "--stall-timeout",
        "2",
    ]);
    assert!(meta(&root).versions.contains_key("v1"));
}
