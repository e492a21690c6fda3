//! Time sync (issue 14: "TLS needs the clock"), in QEMU with Debian's cloud
//! kernel and Terra's real OS image on QEMU's user network: a tiny SNTP
//! server on the host's loopback (10.0.2.2 from the guest) says it is
//! 2030-01-01T00:00:00Z; the machine config names it; `terra timesync`
//! steps the guest's clock to 2030 and logs it, and the hook (scenario
//! `timesync`) prints the guest's date once the sync is recorded.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::disk;
use terra_tests::initramfs::Flavor;
use terra_tests::osimage;

const BOOT: Duration = Duration::from_secs(240);
const HOOK: &str = "terra: hook: TERRA-HOOK ";
/// 2030-01-01T00:00:00Z in NTP seconds (since 1900).
const Y2030_NTP: u32 = (1_893_456_000u64 + 2_208_988_800) as u32;

/// An SNTP server on 127.0.0.1 (a free port) that answers every request
/// with the same time, 2030-01-01T00:00:00Z, written independently of
/// `terra::timesync` so the client is checked against the RFC, not itself.
struct Server {
    port: u16,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Result<Self> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let port = sock.local_addr()?.port();
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (answered.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // A client request: 48 bytes or more, mode 3.
                if n < 48 || buf[0] & 7 != 3 {
                    continue;
                }
                let mut reply = [0u8; 48];
                reply[0] = (4 << 3) | 4; // LI 0, version 4, mode 4 (server)
                reply[1] = 1; // stratum 1
                reply[12..16].copy_from_slice(b"TEST");
                // Originate = the client's transmit timestamp.
                reply[24..32].copy_from_slice(&buf[40..48]);
                // Receive and transmit: 2030-01-01T00:00:00Z exactly.
                reply[32..36].copy_from_slice(&Y2030_NTP.to_be_bytes());
                reply[40..44].copy_from_slice(&Y2030_NTP.to_be_bytes());
                if sock.send_to(&reply, from).is_ok() {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            port,
            answered,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_clock_is_stepped_to_the_configured_servers_time() -> Result<()> {
    let server = Server::start()?;
    let s = Scenario::new()?;
    let image = osimage::os_image()?;
    let tree = osimage::partition_tree(&s.path("tree"), image, &["v1"])?;
    std::fs::create_dir_all(tree.join("config"))?;
    let ntp = format!("10.0.2.2:{}", server.port);
    std::fs::write(
        tree.join("config/machine.json"),
        format!("{{\n  \"ntp\": [\"{ntp}\"]\n}}\n"),
    )?;
    let disk = s.path("disk.img");
    disk::ext4_image(&tree, "terra", &disk, osimage::DISK_MIB)?;

    let initrd = s.initramfs(Flavor::Vm)?;
    let cfg = s
        .vm(&initrd, &[&disk], "osimage.hook=timesync")
        .memory_mb(1024)
        .user_net("");
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for(&format!("{HOOK}poweroff"), BOOT)?;
    vm.expect_poweroff(Duration::from_secs(60))?;
    let console = vm.console.lines();
    let line = |needle: &str| console.iter().find(|l| l.contains(needle)).cloned();

    // The service's log line: stepped forward by years, to 2030, from our server.
    let stepped = line("terra: timesync: stepped the clock by +").unwrap_or_else(|| {
        panic!("no step in the log:\n{}", tail(&console));
    });
    assert!(
        stepped.contains(" to 2030-01-01T00:00:0") && stepped.contains(&format!("server {ntp}")),
        "{stepped}"
    );
    // The guest's own clock, read after the sync: 2030 (within the minute
    // the boot may take after the step).
    let synced = line(&format!("{HOOK}timesync-synced 2030-01-01T00:0"));
    assert!(
        synced.is_some_and(|l| l.ends_with(&ntp)),
        "{}",
        tail(&console)
    );
    let date = line(&format!("{HOOK}date 2030-01-01T00:0"));
    assert!(
        date.is_some(),
        "the guest's date is not 2030:\n{}",
        tail(&console)
    );
    assert!(server.answered.load(Ordering::Relaxed) >= 1);
    // No readiness to wait for: the health gate passed as usual.
    assert!(
        !console.iter().any(|l| l.contains("timesync-not-synced")),
        "{}",
        tail(&console)
    );
    Ok(())
}
