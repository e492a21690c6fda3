//! Support for the services tests (tests/tests/services.rs): a tiny HTTP
//! server on the host's loopback (the guest reaches it as 10.0.2.2), a GET
//! for the guest's forwarded ports, and a disk with the OS image installed
//! by `terra install` (so its records carry the image's manifest digest).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::install_support::ok;
use crate::osimage::DISK_MIB;

/// Answers `GET /page` with `TERRA-PAGE-<token>`, and `GET /done` with 404
/// until [`HostServer::done`], then 200: the guest waits on it for the
/// host's checks. Listens on 127.0.0.1 only.
pub struct HostServer {
    pub port: u16,
    pub token: String,
    done: Arc<AtomicBool>,
}

impl HostServer {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the test server")?;
        let port = listener.local_addr()?.port();
        let token = format!("{}-{port}", std::process::id());
        let done = Arc::new(AtomicBool::new(false));
        let (page, flag) = (format!("TERRA-PAGE-{token}\n"), done.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &page, flag.load(Ordering::SeqCst));
            }
        });
        Ok(Self { port, token, done })
    }

    /// From now on `/done` answers 200.
    pub fn done(&self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

fn answer(mut s: TcpStream, page: &str, done: bool) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf)?;
    let request = String::from_utf8_lossy(&buf[..n]);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/page" => ("200 OK", page),
        "/done" if done => ("200 OK", "done\n"),
        _ => ("404 Not Found", "not found\n"),
    };
    write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A free port on 127.0.0.1 for a QEMU host forward (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` on 127.0.0.1:port; the body of a 200 answer.
pub fn get(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP answer from 127.0.0.1:{port}{path}: {text:?}");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "127.0.0.1:{port}{path} answered {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}

/// A disk image at `image` whose partition has the OCI references in
/// `installs` (`(reference, name)`) installed in order with `terra
/// install`, and `default` made the default with `terra default` (pending
/// until its health gate passes). Returns the partition tree it was made
/// from (for `terra --root TREE list`).
pub fn installed_disk(
    dir: &Path,
    image: &Path,
    installs: &[(&str, &str)],
    default: &str,
) -> Result<PathBuf> {
    let tree = dir.join("installed-tree");
    std::fs::create_dir_all(&tree)?;
    let root = tree.display().to_string();
    for (reference, name) in installs {
        ok(&["--root", &root, "install", reference, "--name", name]);
    }
    ok(&["--root", &root, "default", default]);
    crate::disk::ext4_image(&tree, "terra", image, DISK_MIB)?;
    Ok(tree)
}
