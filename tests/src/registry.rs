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
