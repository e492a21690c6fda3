//! Starting a program through the kernel seam with its output forwarded
//! to the log: the services, and the health gate's command.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};

use crate::env::Env;
use crate::kernel::{Pid, Spawn};
use crate::stage2::services::ServiceError;

/// The PATH services start with (an image sets more through `env`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts a service (in its own process group, stdin from /dev/null, see
/// `Kernel::spawn`) and forwards its output lines to the log (console and
/// kmsg) from a thread of its own.
pub fn spawn(
    env: &Env,
    name: &str,
    argv: &[String],
    extra: &BTreeMap<String, String>,
) -> Result<Pid, ServiceError> {
    let mut vars = BTreeMap::from([
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), "/".to_string()),
    ]);
    vars.extend(extra.clone());
    let cmd = Spawn {
        argv: argv.to_vec(),
        env: vars,
        cwd: env.paths.root.clone(),
    };
    let spawned = env
        .kernel
        .spawn(&cmd)
        .map_err(|source| ServiceError::Spawn {
            program: argv.first().cloned().unwrap_or_default(),
            source,
        })?;
    if let Some(output) = spawned.output {
        let owned = name.to_string();
        let reader = std::thread::Builder::new()
            .name(format!("out-{name}"))
            .spawn(move || forward(&owned, output));
        if let Err(e) = reader {
            log::error!("{name}: no thread for its output ({e}); it goes nowhere");
        }
    }
    Ok(spawned.pid)
}

/// Logs each line a service writes, prefixed with its name.
fn forward(name: &str, output: File) {
    let reader = BufReader::new(output);
    for line in reader.split(b'\n') {
        match line {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                log::info!("{name}: {}", tidy(text.trim_end()));
            }
            Err(e) => {
                log::warn!("{name}: reading its output: {e}");
                return;
            }
        }
    }
}

/// Drops the `time="…" ` field that logrus (containerd, runc) puts first:
/// the log has its own timestamps.
pub fn tidy(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix("time=\"") {
        if let Some((_, after)) = rest.split_once("\" ") {
            return after;
        }
    }
    line
}
