//! A recording [`Kernel`] for unit tests: every call becomes a shell-like
//! line in [`Fake::calls`]; calls whose line contains one of
//! [`Fake::fail_on`]'s strings fail with EINVAL.
//!
//! For stage 2 it also plays the processes and the clock: `spawn` hands out
//! pids from 100 up, a signal sent to a process ends it (unless it is
//! [`Fake::stubborn`] and the signal is SIGTERM), the ended ones come out of
//! `reap`; `wait_signals` plays [`Fake::ticks`] in order, moving the clock
//! as it goes, and `sleep` moves the clock: back-off is tested in no time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    Exit, Kernel, Mount, Node, Pid, PowerAction, Reaped, Received, Removed, Signal, Spawn, Spawned,
    Target,
};

/// What happens after some time for [`Kernel::wait_signals`].
#[derive(Debug, Clone)]
pub struct Tick {
    /// From the previous tick (time spent sleeping in between counts too).
    pub after: Duration,
    /// Processes that end then (each also sends SIGCHLD).
    pub exits: Vec<(Pid, Exit)>,
    /// Signals that arrive then.
    pub signals: Vec<Signal>,
}

impl Tick {
    pub fn signal(after: Duration, sig: Signal) -> Self {
        Self {
            after,
            exits: Vec::new(),
            signals: vec![sig],
        }
    }
    pub fn exit(after: Duration, pid: Pid, exit: Exit) -> Self {
        Self {
            after,
            exits: vec![(pid, exit)],
            signals: Vec::new(),
        }
    }
}

/// The processes the fake plays.
#[derive(Debug, Default)]
struct Procs {
    next: i32,
    alive: Vec<Pid>,
    ended: VecDeque<(Pid, Exit)>,
}

impl Procs {
    fn end(&mut self, pid: Pid, exit: Exit) {
        if let Some(i) = self.alive.iter().position(|p| *p == pid) {
            self.alive.remove(i);
            self.ended.push_back((pid, exit));
        }
    }
}

pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

#[derive(Debug)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
    pub fail_on: Vec<String>,
    pub pid: u32,
    /// `st_dev` by path; anything else is on device 1.
    pub devices: HashMap<PathBuf, u64>,
    /// statfs magic by path; anything else is ramfs.
    pub magic: HashMap<PathBuf, u64>,
    /// The sockets that accept connections.
    pub listening: HashSet<PathBuf>,
    /// The TCP addresses that accept connections.
    pub listening_tcp: HashSet<std::net::SocketAddr>,
    /// Processes that ignore SIGTERM.
    pub stubborn: HashSet<Pid>,
    pub ticks: Mutex<VecDeque<Tick>>,
    procs: Mutex<Procs>,
    /// The fake clock starts here and moves by `elapsed`.
    pub epoch: Instant,
    elapsed: Mutex<Duration>,
    /// What [`Kernel::kernel_log`] returns.
    pub kmsg: String,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            fail_on: Vec::new(),
            pid: 1,
            devices: HashMap::new(),
            magic: HashMap::new(),
            listening: HashSet::new(),
            listening_tcp: HashSet::new(),
            stubborn: HashSet::new(),
            ticks: Mutex::new(VecDeque::new()),
            procs: Mutex::new(Procs {
                next: 100,
                ..Procs::default()
            }),
            epoch: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
            kmsg: String::new(),
        }
    }
}

impl Fake {
    pub fn failing(on: &[&str]) -> Self {
        Self {
            fail_on: on.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Plays these ticks, in order, from `wait_signals`.
    pub fn script(&self, ticks: impl IntoIterator<Item = Tick>) {
        self.ticks.lock().unwrap().extend(ticks);
    }

    /// A process that runs until signalled (not a child of `spawn`).
    pub fn adopt(&self, pid: Pid) {
        self.procs.lock().unwrap().alive.push(pid);
    }

    pub fn alive(&self) -> Vec<Pid> {
        self.procs.lock().unwrap().alive.clone()
    }

    /// How far the fake clock has moved.
    pub fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap()
    }

    fn advance(&self, d: Duration) {
        *self.elapsed.lock().unwrap() += d;
    }

    fn record(&self, line: String) -> io::Result<()> {
        let fail = self.fail_on.iter().any(|f| line.contains(f.as_str()));
        if let Ok(mut c) = self.calls.lock() {
            c.push(line);
        }
        if fail {
            Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
        } else {
            Ok(())
        }
    }
}

impl Kernel for Fake {
    fn mount(&self, m: &Mount) -> io::Result<()> {
        self.record(m.to_shell())
    }
    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        self.record(format!("umount -l {}", target.display()))
    }
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(format!("mkdir -p -m {mode:o} {}", path.display()))
    }
    fn mknod(&self, path: &Path, kind: Node, major: u64, minor: u64, mode: u32) -> io::Result<()> {
        let k = if kind == Node::Block { "b" } else { "c" };
        self.record(format!(
            "mknod -m {mode:o} {} {k} {major} {minor}",
            path.display()
        ))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(format!("ln -s {} {}", target.display(), link.display()))
    }
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.record(format!("mount --move {} {}", from.display(), to.display()))
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(format!("chroot {}", path.display()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(format!("cd {}", path.display()))
    }
    fn exec(&self, path: &str, args: &[String]) -> io::Error {
        match self.record(format!("exec {path} {}", args.join(" "))) {
            Err(e) => e,
            Ok(()) => io::Error::other("fake exec returns"),
        }
    }
    fn finit_module(&self, path: &Path, params: &str) -> io::Result<()> {
        self.record(
            format!("insmod {} {params}", path.display())
                .trim_end()
                .to_string(),
        )
    }
    fn pid(&self) -> u32 {
        self.pid
    }
    fn device_of(&self, path: &Path) -> io::Result<u64> {
        Ok(self.devices.get(path).copied().unwrap_or(1))
    }
    fn fs_magic(&self, path: &Path) -> io::Result<u64> {
        Ok(self.magic.get(path).copied().unwrap_or(RAMFS_MAGIC))
    }
    fn remove_tree(&self, root: &Path, dev: u64) -> io::Result<Removed> {
        self.record(format!(
            "rm -rf --one-file-system {} (dev {dev})",
            root.display()
        ))?;
        Ok(Removed::default())
    }

    fn umount(&self, target: &Path) -> io::Result<()> {
        self.record(format!("umount {}", target.display()))
    }
    fn remount_read_only(&self, target: &Path) -> io::Result<()> {
        self.record(format!("mount -o remount,ro {}", target.display()))
    }
    fn sync(&self) {
        let _ = self.record("sync".into());
    }
    fn reboot(&self, how: PowerAction) -> io::Error {
        let _ = self.record(format!("reboot {how:?}"));
        io::Error::other("fake reboot returns")
    }
    fn set_ctrl_alt_del(&self, reboots: bool) -> io::Result<()> {
        self.record(format!("ctrl-alt-del reboots={reboots}"))
    }
    fn kill(&self, to: Target, sig: Signal) -> io::Result<()> {
        let (line, whom) = match to {
            Target::Process(p) => (format!("kill -{sig} {p}"), Some(p)),
            Target::Group(p) => (format!("kill -{sig} -{p}"), Some(p)),
            Target::All => (format!("kill -{sig} -1"), None),
        };
        self.record(line)?;
        let mut procs = self.procs.lock().unwrap();
        let hit: Vec<Pid> = match whom {
            Some(p) => procs.alive.iter().copied().filter(|a| *a == p).collect(),
            None => procs.alive.clone(),
        };
        if hit.is_empty() {
            return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
        }
        for p in hit {
            if !(sig == Signal::SIGTERM && self.stubborn.contains(&p)) {
                procs.end(p, Exit::Signaled(sig));
            }
        }
        Ok(())
    }
    fn reap(&self) -> io::Result<Reaped> {
        let mut procs = self.procs.lock().unwrap();
        Ok(match procs.ended.pop_front() {
            Some((pid, exit)) => Reaped::Child(pid, exit),
            None if procs.alive.is_empty() => Reaped::NoChildren,
            None => Reaped::Running,
        })
    }
    fn spawn(&self, cmd: &Spawn) -> io::Result<Spawned> {
        self.record(format!("spawn {}", cmd.argv.join(" ")))?;
        let mut procs = self.procs.lock().unwrap();
        let pid = Pid(procs.next);
        procs.next += 1;
        procs.alive.push(pid);
        Ok(Spawned { pid, output: None })
    }
    fn connects(&self, socket: &Path) -> bool {
        self.listening.contains(socket)
    }
    fn connects_tcp(&self, addr: std::net::SocketAddr) -> bool {
        self.listening_tcp.contains(&addr)
    }
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.record(format!(
            "write {} {}",
            path.display(),
            String::from_utf8_lossy(data).trim_end()
        ))
    }
    /// Not recorded: the shutdown tests compare the calls that change things.
    fn kernel_log(&self, _kmsg: &Path) -> io::Result<String> {
        Ok(self.kmsg.clone())
    }
    /// Everything exists but what `fail_on` names.
    fn exists(&self, path: &Path) -> bool {
        self.record(format!("test -e {}", path.display())).is_ok()
    }
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.record(format!("hostname {name}"))
    }
    fn link_up(&self, name: &str) -> io::Result<()> {
        self.record(format!("ip link set {name} up"))
    }
    fn block_signals(&self, signals: &[Signal]) -> io::Result<()> {
        let names: Vec<String> = signals.iter().map(|s| s.to_string()).collect();
        self.record(format!("block {}", names.join(" ")))
    }
    /// Plays the next tick if it comes within `timeout`; else time passes.
    /// A test that runs out of ticks is a broken test: it panics.
    fn wait_signals(&self, timeout: Duration) -> io::Result<Vec<Received>> {
        let mut ticks = self.ticks.lock().unwrap();
        let Some(tick) = ticks.front_mut() else {
            panic!("fake: no tick left to play");
        };
        if tick.after > timeout {
            tick.after -= timeout;
            self.advance(timeout);
            return Ok(Vec::new());
        }
        self.advance(tick.after);
        let tick = ticks.pop_front().unwrap();
        let mut out = Vec::new();
        let mut procs = self.procs.lock().unwrap();
        for (pid, exit) in tick.exits {
            procs.end(pid, exit);
            out.push(Received {
                signal: Signal::SIGCHLD,
                from: pid.0,
            });
        }
        out.extend(
            tick.signals
                .into_iter()
                .map(|signal| Received { signal, from: 0 }),
        );
        Ok(out)
    }
    fn now(&self) -> Instant {
        self.epoch + self.elapsed()
    }
    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
    fn uptime(&self) -> Duration {
        Duration::from_secs(2) + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake's processes and clock behave as the supervisor's tests
    /// assume: signals end processes (SIGTERM not the stubborn ones), ended
    /// ones are reaped once, ticks play in order and move the clock.
    #[test]
    fn plays_processes_and_time() {
        let mut k = Fake::default();
        k.stubborn.insert(Pid(101));
        let cmd = Spawn {
            argv: vec!["/a".into()],
            env: Default::default(),
            cwd: "/".into(),
        };
        assert_eq!(k.spawn(&cmd).unwrap().pid, Pid(100));
        assert_eq!(k.spawn(&cmd).unwrap().pid, Pid(101));
        assert_eq!(k.reap().unwrap(), Reaped::Running);
        k.kill(Target::All, Signal::SIGTERM).unwrap();
        assert_eq!(
            k.reap().unwrap(),
            Reaped::Child(Pid(100), Exit::Signaled(Signal::SIGTERM))
        );
        assert_eq!(k.alive(), [Pid(101)]);
        k.kill(Target::Group(Pid(101)), Signal::SIGKILL).unwrap();
        assert!(k.kill(Target::All, Signal::SIGKILL).is_err());
        k.reap().unwrap();
        assert_eq!(k.reap().unwrap(), Reaped::NoChildren);

        k.adopt(Pid(7));
        k.script([
            Tick::exit(Duration::from_secs(3), Pid(7), Exit::Exited(0)),
            Tick::signal(Duration::from_secs(1), Signal::SIGTERM),
        ]);
        let t = Duration::from_secs(2);
        assert!(k.wait_signals(t).unwrap().is_empty());
        let chld = k.wait_signals(t).unwrap();
        assert_eq!(chld[0].signal, Signal::SIGCHLD);
        assert_eq!(k.elapsed(), Duration::from_secs(3));
        k.sleep(Duration::from_secs(5));
        assert_eq!(k.now(), k.epoch + Duration::from_secs(8));
        assert_eq!(k.wait_signals(t).unwrap()[0].signal, Signal::SIGTERM);
        assert_eq!(
            k.calls(),
            [
                "spawn /a",
                "spawn /a",
                "kill -SIGTERM -1",
                "kill -SIGKILL -101",
                "kill -SIGKILL -1"
            ]
        );
    }
}
