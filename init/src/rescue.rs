//! Step 8 and the fatal fallback: the rescue shell on the console.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use terra_layout::BootParams;

use crate::env::Env;
use crate::kernel::{Kernel, Reaped};

/// A shell can be run (`/bin/sh` exists: `mkinitrd --shell`, or the new root's).
pub fn available(shell: &Path) -> bool {
    shell.exists()
}

/// Runs the shell on the console and waits for it to exit.
pub fn run(k: &dyn Kernel, shell: &Path, console: &Path) {
    log::warn!("starting rescue shell {}", shell.display());
    let mut cmd = crate::sys::console_command(shell);
    cmd.arg0("sh").env("PS1", "(terra rescue) \\w # ");
    // The kernel gives PID 1 the console as fds 0-2 only if the initramfs has
    // /dev/console; open it from devtmpfs so the shell has a terminal anyway.
    let open = || OpenOptions::new().read(true).write(true).open(console);
    if let (Ok(i), Ok(o), Ok(e)) = (open(), open(), open()) {
        cmd.stdin(i).stdout(o).stderr(e);
    }
    let status = cmd.status();
    match status {
        Ok(s) => log::info!("rescue shell exited ({s})"),
        Err(e) => {
            log::error!("cannot start the rescue shell {}: {e}", shell.display());
            k.sleep(Duration::from_secs(5));
        }
    }
    reap(k);
}

/// `terra.shell`: a shell before switching root; booting goes on when it exits.
pub fn before_switch(env: &Env, params: &BootParams) {
    if !params.shell {
        return;
    }
    let shell = &env.paths.shell;
    if !available(shell) {
        log::warn!(
            "terra.shell: there is no {} in the initramfs (mkinitrd --shell adds one); booting on",
            shell.display()
        );
        return;
    }
    log::warn!(
        "terra.shell: the new root is mounted at {}; exit the shell to continue booting",
        env.paths.newroot.display()
    );
    run(env.kernel, shell, &env.paths.dev.join("console"));
}

/// PID 1 adopts orphans: collect the ones that have exited (through the
/// kernel seam's one reaper).
pub fn reap(k: &dyn Kernel) {
    while let Ok(Reaped::Child(..)) = k.reap() {}
}

/// Sleeps, reaping orphans meanwhile.
pub fn sleep_reaping(k: &dyn Kernel, total: Duration) {
    let step = Duration::from_millis(250);
    let mut slept = Duration::ZERO;
    while slept < total {
        k.sleep(step);
        slept += step;
        reap(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::Fake;
    use crate::kernel::{Pid, Signal, Target};

    #[test]
    fn sleeping_reaps_the_orphans_that_ended() {
        let k = Fake::default();
        k.adopt(Pid(40));
        k.adopt(Pid(41));
        k.kill(Target::Process(Pid(40)), Signal::SIGKILL).unwrap();
        sleep_reaping(&k, Duration::from_secs(1));
        assert_eq!(k.elapsed(), Duration::from_secs(1));
        assert_eq!(k.alive(), [Pid(41)]);
        assert_eq!(k.reap().unwrap(), Reaped::Running);
    }
}
