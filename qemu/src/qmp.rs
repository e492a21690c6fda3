//! A minimal QMP client (QEMU's JSON monitor on a unix socket): enough to
//! hot-add a disk. One JSON object per line each way; asynchronous events
//! may arrive between a command and its answer and are skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (QEMU creates the socket shortly after it starts, so this
    /// retries until `timeout`), reads the greeting and enters command mode.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e)
                        .with_context(|| format!("connecting to QMP {}", socket.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut qmp = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    /// Runs one command; returns its `return` value or its error as an error.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({"execute": command, "arguments": arguments});
        writeln!(self.writer, "{msg}")?;
        loop {
            let answer = self.read()?;
            if let Some(ret) = answer.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = answer.get("error") {
                bail!("QMP {command} failed: {err}");
            }
            // An event ({"event": ...}): not our answer.
        }
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP socket closed");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
    }
}
