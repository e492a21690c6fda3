//! A real registry for the install tests: Debian's `docker-registry`
//! (distribution) on 127.0.0.1:<free port> with a temporary storage dir and
//! no auth, stopped when dropped; images pushed to it with `skopeo`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

fn need(program: &str, package: &str) -> Result<()> {
    if crate::tools::which(Path::new(program)).is_none() {
        bail!("{program} not found: install it with scripts/setup (Debian package {package})");
    }
    Ok(())
}

impl Registry {
    pub fn start() -> Result<Self> {
        need("docker-registry", "docker-registry")?;
        need("skopeo", "skopeo")?;
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        let reg = Self {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reg
                .get("/v2/")
                .map(|s| s.starts_with("HTTP/1.1 200"))
                .unwrap_or(false)
            {
                return Ok(reg);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("docker-registry did not answer on {} within 20 s", reg.addr)
    }

    /// A raw GET, for readiness and for tests that look at answers.
    pub fn get(&self, path: &str) -> Result<String> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Pushes `oci:LAYOUT:TAG` to `REPO:TAG` here; returns the reference.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str) -> Result<String> {
        let dest = format!("{}/{repo}:{tag}", self.addr);
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--preserve-digests",
                "--all",
            ])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{dest}"))
            .output()
            .context("running skopeo")?;
        if !out.status.success() {
            bail!(
                "skopeo copy to {dest}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(dest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Bearer-token front for a [`Registry`], as Docker Hub does it: every
/// `/v2/` request without `Authorization: Bearer <token>` gets a 401 with a
/// `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge; the realm
/// hands out the token only for HTTP Basic `user:password`. Requests with the
/// token are passed to the registry.
pub struct TokenFront {
    pub addr: String,
    /// Tokens handed out (to check that auth happened).
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenFront {
    pub const USER: &'static str = "terra";
    pub const PASSWORD: &'static str = "s3cret";
    const TOKEN: &'static str = "token-for-terra";

    pub fn start(upstream: &Registry) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let upstream = upstream.addr.clone();
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (me, count) = (addr.clone(), issued.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, me, count) = (upstream.clone(), me.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &me, &count);
                });
            }
        });
        Ok(Self { addr, issued })
    }
}

fn serve(
    mut conn: TcpStream,
    upstream: &str,
    me: &str,
    issued: &std::sync::atomic::AtomicUsize,
) -> Result<()> {
    use base64_basic::encode;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The request head (GET only: no body).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let auth = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .map(|l| {
            l.split_once(':')
                .map(|x| x.1.trim().to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let reply = |conn: &mut TcpStream, status: &str, extra: &str, body: &str| -> Result<()> {
        write!(
            conn,
            "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        Ok(())
    };
    if path.starts_with("/token") {
        let want = format!(
            "Basic {}",
            encode(&format!("{}:{}", TokenFront::USER, TokenFront::PASSWORD))
        );
        if auth == want && path.contains("scope=repository") {
            issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return reply(
                &mut conn,
                "200 OK",
                "",
                &format!("{{\"token\":\"{}\"}}", TokenFront::TOKEN),
            );
        }
        return reply(
            &mut conn,
            "401 Unauthorized",
            "",
            "{\"details\":\"bad credentials\"}",
        );
    }
    if auth != format!("Bearer {}", TokenFront::TOKEN) {
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"terra-test\",scope=\"repository:terra/os:pull\"\r\n"
        );
        return reply(
            &mut conn,
            "401 Unauthorized",
            &challenge,
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
        );
    }
    // Pass it on, asking the registry to close after answering.
    let mut up = TcpStream::connect(upstream)?;
    let forwarded: String = text
        .lines()
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:")
                && !l.starts_with("host:")
                && !l.starts_with("authorization:")
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    write!(
        up,
        "{forwarded}Host: {upstream}\r\nConnection: close\r\n\r\n"
    )?;
    std::io::copy(&mut up, &mut conn)?;
    Ok(())
}

/// Just enough base64 for a Basic header.
mod base64_basic {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
