//! The fatal path: one clear block, then the documented fallback. Never
//! returns, never exits (PID 1 exiting panics the kernel).
//!
//! Before switch root: the rescue shell if the initramfs has `/bin/sh`
//! (booting is retried when it exits), else wait and retry the whole boot
//! every few seconds, so a late disk still boots. After switch root there
//! is no initramfs to go back to: the new root's `/bin/sh` if it has one,
//! else wait (reaping orphans) forever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::env::Env;
use crate::error::{chain, BootError};
use crate::rescue;

/// Set once the new root is `/`.
pub static SWITCHED: AtomicBool = AtomicBool::new(false);

const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Logs the block for `err`, takes the fallback, retries; never returns.
pub fn fatal(env: &Env, mut err: BootError) -> ! {
    loop {
        crate::logger::flush_pending();
        let switched = SWITCHED.load(Ordering::SeqCst);
        let shell = rescue::available(&env.paths.shell);
        let next = match (switched, shell) {
            (false, true) => format!(
                "starting the rescue shell {}; booting is retried when it exits",
                env.paths.shell.display()
            ),
            (false, false) => format!(
                "retrying every {} s (add a shell with mkinitrd --shell to look around)",
                RETRY_EVERY.as_secs()
            ),
            (true, true) => format!("starting the new root's {}", env.paths.shell.display()),
            (true, false) => "no shell in the new root; waiting".to_string(),
        };
        for line in block(&err, &next) {
            log::error!("{line}");
        }
        if switched {
            loop {
                if rescue::available(&env.paths.shell) {
                    rescue::run(env.kernel, &env.paths.shell, &env.paths.dev.join("console"));
                }
                rescue::sleep_reaping(env.kernel, RETRY_EVERY);
            }
        }
        if shell {
            rescue::run(env.kernel, &env.paths.shell, &env.paths.dev.join("console"));
        } else {
            rescue::sleep_reaping(env.kernel, RETRY_EVERY);
        }
        log::info!("retrying the boot");
        undo_mounts(env);
        err = match crate::boot(env) {
            Ok(never) => match never {},
            Err(e) => e,
        };
    }
}

/// The lines of the fatal block. Pure.
pub fn block(err: &BootError, next: &str) -> Vec<String> {
    let causes = chain(err);
    let mut causes = causes.into_iter();
    let first = causes.next().unwrap_or_default();
    let mut lines = vec![format!("FATAL: {first}")];
    for c in causes {
        lines.push(format!("  because: {c}"));
    }
    for f in err.found() {
        lines.push(format!("  found: {f}"));
    }
    lines.push(format!("  what to do: {}", err.hint()));
    lines.push(format!("  now: {next}"));
    lines
}

/// A retry starts clean: the previous attempt's new root and partition go.
fn undo_mounts(env: &Env) {
    for m in [&env.paths.newroot, &env.paths.partition] {
        if env.kernel.is_mountpoint(m) {
            let _ = env.kernel.umount_detach(m);
        }
    }
    env.plan.borrow_mut().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_says_what_was_looked_for_found_and_to_do() {
        let err = BootError::NotFound {
            label: "terra".into(),
            device: None,
            waited: Duration::from_secs(30),
            seen: vec!["/dev/vda (1.0 GiB): no ext4 filesystem".into()],
        };
        let b = block(&err, "retrying every 5 s");
        assert_eq!(
            b[0],
            "FATAL: no partition labelled \"terra\" appeared within 30 s"
        );
        assert_eq!(b[1], "  found: /dev/vda (1.0 GiB): no ext4 filesystem");
        assert!(b[2].starts_with("  what to do: attach the disk"));
        assert_eq!(b[3], "  now: retrying every 5 s");

        let err = BootError::Handoff {
            path: "/sbin/init".into(),
            source: std::io::Error::from_raw_os_error(2),
        };
        let b = block(&err, "x");
        assert_eq!(b[0], "FATAL: cannot exec the handoff /sbin/init");
        assert!(
            b[1].starts_with("  because: No such file or directory"),
            "{b:?}"
        );
    }
}
