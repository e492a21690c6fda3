//! A host you can reach (issue 14), in QEMU with Terra's real OS image, on
//! both kernels (Debian's cloud kernel, `virtio_net` a module in the
//! initramfs, and the Terra kernel, everything built in), on QEMU's user network (DHCP and DNS inside QEMU,
//! ssh forwarded from the host's loopback).
//!
//! One disk, three boots, each checking several things:
//! 1. DHCP: the lease's address, name server and host name; ssh with the
//!    configured key runs `ctr version`; a password login is refused; in
//!    the guest, `terra install` of v2 from a registry on the host
//!    (10.0.2.2), `terra default v2`, `terra reboot`.
//! 2. v2 boots; a bad config on the partition: the last good one is used
//!    and the log says why; the ssh host key is the same.
//! 3. A static address, name server and host name from the config.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use terra_qemu::Vm;
use terra_tests::boot::{tail, Scenario};
use terra_tests::disk;
use terra_tests::initramfs::Flavor;
use terra_tests::osimage;
use terra_tests::registry::Registry;

const BOOT: Duration = Duration::from_secs(240);

/// The client side: a key pair and a known_hosts file.
struct Client {
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Client {
    fn new(dir: &Path) -> Result<Self> {
        let key = dir.join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "terra-test", "-f"])
            .arg(&key)
            .output()
            .context("running ssh-keygen (install openssh-client: scripts/setup)")?;
        anyhow::ensure!(out.status.success(), "ssh-keygen: {out:?}");
        Ok(Self {
            key,
            known_hosts: dir.join("known_hosts"),
        })
    }

    fn public_key(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.key.with_extension("pub"))?
            .trim()
            .to_string())
    }

    /// `ssh … root@127.0.0.1 COMMAND` with `extra` options.
    fn ssh(&self, port: u16, extra: &[&str], command: &str) -> Output {
        self.ssh_for(60, port, extra, command)
    }

    /// The same, given `limit` seconds: timeout(1), so that a session that
    /// never ends fails the test instead of hanging it.
    fn ssh_for(&self, limit: u32, port: u16, extra: &[&str], command: &str) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args([&limit.to_string(), "ssh", "-p", &port.to_string(), "-i"])
            .arg(&self.key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(extra)
            .args(["root@127.0.0.1", command]);
        cmd.output().unwrap_or_else(|e| panic!("running ssh: {e}"))
    }

    /// Runs COMMAND over ssh, retrying until sshd answers.
    fn run(&self, port: u16, command: &str, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            let out = self.ssh(port, &[], command);
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if start.elapsed() > timeout {
                bail!(
                    "ssh {command:?} failed for {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A free TCP port on the host's loopback for QEMU's forward.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Replaces `/config/machine.json` on the disk image with `text`, unchecked
/// (so a bad file can be put there), with debugfs.
fn put_config(image: &Path, dir: &Path, text: &str) -> Result<()> {
    let local = dir.join("machine.json");
    std::fs::write(&local, text)?;
    let _ = Command::new("debugfs")
        .args(["-w", "-R", "rm /config/machine.json"])
        .arg(image)
        .output()?;
    disk::run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-R")
            .arg(format!("write {} /config/machine.json", local.display()))
            .arg(image),
    )
}

/// Which kernel a test boots.
#[derive(Clone, Copy)]
enum On {
    /// Debian's cloud kernel with mkinitrd's `vm` module set (virtio_net included).
    Cloud,
    /// The Terra kernel: no modules.
    Terra,
}

/// A VM of `disks` on the kernel `on`, with its initramfs.
fn vm_on(s: &Scenario, on: On, disks: &[&Path], append: &str) -> Result<terra_qemu::VmConfig> {
    Ok(match on {
        On::Cloud => s.vm(&s.initramfs(Flavor::Vm)?, disks, append),
        On::Terra => {
            let k = terra_tests::kernel::kernel()?;
            let (initrd, _) = terra_tests::kernel::initramfs(s.tools, k, s.dir.path())?;
            s.vm_on(&k.image, &initrd, disks, append)
        }
    })
}

fn boot(s: &Scenario, on: On, disk: &Path, append: &str, net: &str) -> Result<Vm> {
    let cfg = vm_on(s, on, &[disk], &format!("osimage.hook=stay {append}"))?
        .memory_mb(1024)
        .user_net(net);
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for("terra: handoff: supervise", BOOT)?;
    Ok(vm)
}

fn poweroff(vm: &mut Vm, c: &Client, port: u16) -> Result<()> {
    // The connection may drop as the machine goes down: only the
    // power-off itself is checked.
    let _ = c.ssh(port, &[], "terra poweroff");
    vm.wait_for("terra: powering off", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))
}

fn has(console: &[String], needle: &str) -> bool {
    console.iter().any(|l| l.contains(needle))
}

#[test]
fn dhcp_ssh_last_good_config_and_static_addresses() -> Result<()> {
    dhcp_ssh_last_good_config_and_static_addresses_on(On::Cloud)
}

#[test]
fn dhcp_ssh_last_good_config_and_static_addresses_on_the_terra_kernel() -> Result<()> {
    dhcp_ssh_last_good_config_and_static_addresses_on(On::Terra)
}

fn dhcp_ssh_last_good_config_and_static_addresses_on(on: On) -> Result<()> {
    let s = Scenario::new()?;
    let c = Client::new(s.dir.path())?;
    let key = c.public_key()?;
    let image = osimage::os_image()?;
    let tree = osimage::partition_tree(&s.path("tree"), image, &["v1"])?;
    std::fs::create_dir_all(tree.join("config"))?;
    // v2, the same image, waits in a registry on the host's loopback.
    let registry = Registry::start()?;
    registry.push(&image.oci, "latest", "terra")?;
    let remote = registry.addr.replace("127.0.0.1", "10.0.2.2");
    // No hostname: the lease's is used.
    let dhcp_config = format!("{{\n  \"ssh_authorized_keys\": [\"{key}\"]\n}}\n");
    std::fs::write(tree.join("config/machine.json"), &dhcp_config)?;
    let disk = s.path("disk.img");
    disk::ext4_image(&tree, "terra", &disk, osimage::DISK_MIB)?;

    // 1. DHCP and ssh.
    let port = free_port()?;
    let net = format!("hostfwd=tcp:127.0.0.1:{port}-:22,hostname=lease-host");
    let mut vm = boot(&s, on, &disk, "", &net)?;
    vm.wait_for("terra: network: eth0: bound 10.0.2.15/24", BOOT)?;
    let ctr = c.run(port, "ctr version", BOOT)?;
    let console = vm.console.lines();
    assert!(
        ctr.contains("Server:") && ctr.contains("Revision:"),
        "ctr version over ssh:\n{ctr}\n{}",
        tail(&console)
    );
    let facts = c.run(
        port,
        "hostname; cat /etc/resolv.conf; ip -4 addr show eth0; ip -4 route",
        BOOT,
    )?;
    assert!(facts.starts_with("lease-host\n"), "{facts}");
    assert!(facts.contains("nameserver 10.0.2.3"), "{facts}");
    assert!(facts.contains("inet 10.0.2.15/24"), "{facts}");
    assert!(facts.contains("default via 10.0.2.2 dev eth0"), "{facts}");
    // No password login, for anyone: the server offers only keys.
    let pw = c.ssh(
        port,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        "true",
    );
    let err = String::from_utf8_lossy(&pw.stderr);
    assert!(!pw.status.success(), "a password login was let in");
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    let host_key = std::fs::read_to_string(&c.known_hosts)?;
    assert!(host_key.contains("ssh-ed25519"), "{host_key}");
    // Updating from the host itself.
    let install = c.ssh_for(
        600,
        port,
        &[],
        &format!(
            "terra install --insecure-registry {remote} {remote}/terra:latest --name v2 && terra default v2 && terra list"
        ),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(
        install.status.success(),
        "terra install in the guest:\n{said}"
    );
    let _ = c.ssh(port, &[], "terra reboot");
    vm.wait_for("terra: rebooting", Duration::from_secs(60))?;
    vm.expect_poweroff(Duration::from_secs(30))?;
    let console = vm.console.lines();
    assert!(
        has(&console, "terra: sshd: made the ed25519 host key"),
        "{}",
        tail(&console)
    );

    // 2. v2 is the default now. A bad config: the last good one (the keys
    // above) is used; the host key is the same (known_hosts is strict from
    // now on).
    put_config(&disk, s.dir.path(), "{\n  \"hostname\": \"bad name\"\n}\n")?;
    let mut vm = boot(&s, on, &disk, "", &net)?;
    let booted = c.run(port, "cat /run/terra/boot.json", BOOT)?;
    assert!(booted.contains("\"v2\""), "{booted}");
    let console = vm.console.lines();
    assert!(
        has(&console, "terra: booting version v2 (default"),
        "{}",
        tail(&console)
    );
    // A lease renewal (udhcpc renews on SIGUSR1) keeps the address and route.
    c.run(port, "kill -USR1 $(pidof udhcpc)", BOOT)?;
    vm.wait_for("terra: network: eth0: renew 10.0.2.15/24", BOOT)?;
    let route = c.run(port, "ip -4 addr show eth0; ip -4 route", BOOT)?;
    assert!(route.contains("inet 10.0.2.15/24"), "{route}");
    assert!(route.contains("default via 10.0.2.2 dev eth0"), "{route}");
    let strict = c.ssh(port, &["-o", "StrictHostKeyChecking=yes"], "true");
    assert!(strict.status.success(), "host key changed: {strict:?}");
    assert_eq!(std::fs::read_to_string(&c.known_hosts)?, host_key);
    poweroff(&mut vm, &c, port)?;
    let console = vm.console.lines();
    assert!(
        has(
            &console,
            "terra: machine config: config/machine.json: line 2, column 24: expected a host name"
        ) && has(
            &console,
            "using the last good one (config/machine.last-good.json)"
        ),
        "{}",
        tail(&console)
    );
    assert!(
        !has(&console, "made the ed25519 host key"),
        "{}",
        tail(&console)
    );

    // 3. A static address, name server and host name.
    let static_config = format!(
        "{{\"hostname\": \"static-host\", \"dns\": [\"10.0.2.3\"],\n \
         \"interfaces\": {{\"eth0\": {{\"address\": \"10.0.2.50/24\", \"gateway\": \"10.0.2.2\"}}}},\n \
         \"ssh_authorized_keys\": [\"{key}\"]}}\n"
    );
    put_config(&disk, s.dir.path(), &static_config)?;
    let port = free_port()?;
    let net = format!("hostfwd=tcp:127.0.0.1:{port}-10.0.2.50:22,hostname=lease-host");
    let mut vm = boot(&s, on, &disk, "", &net)?;
    vm.wait_for("terra: network: eth0: static address 10.0.2.50/24", BOOT)?;
    let facts = c.run(
        port,
        "hostname; cat /etc/resolv.conf; ip -4 addr show eth0; pidof udhcpc || echo no-dhcp",
        BOOT,
    )?;
    assert!(facts.starts_with("static-host\n"), "{facts}");
    assert!(facts.contains("nameserver 10.0.2.3"), "{facts}");
    assert!(facts.contains("inet 10.0.2.50/24"), "{facts}");
    assert!(!facts.contains("10.0.2.15"), "{facts}");
    assert!(facts.contains("no-dhcp"), "{facts}");
    poweroff(&mut vm, &c, port)?;
    osimage::fsck_clean(&disk)?;
    Ok(())
}

/// The same way in on the Terra kernel (virtio_net built in, no modules):
/// DHCP gives the address and the name server, ssh runs `ctr version`.
#[test]
fn terra_kernel_dhcp_and_ssh() -> Result<()> {
    let s = Scenario::new()?;
    let k = terra_tests::kernel::kernel()?;
    let (initrd, _) = terra_tests::kernel::initramfs(s.tools, k, s.dir.path())?;
    let c = Client::new(s.dir.path())?;
    let key = c.public_key()?;
    let tree = osimage::partition_tree(&s.path("tree"), osimage::os_image()?, &["v1"])?;
    std::fs::create_dir_all(tree.join("config"))?;
    std::fs::write(
        tree.join("config/machine.json"),
        format!("{{\"ssh_authorized_keys\": [\"{key}\"]}}\n"),
    )?;
    let disk = s.path("disk.img");
    disk::ext4_image(&tree, "terra", &disk, osimage::DISK_MIB)?;
    let port = free_port()?;
    let cfg = s
        .vm_on(&k.image, &initrd, &[&disk], "osimage.hook=stay")
        .memory_mb(1024)
        .user_net(&format!("hostfwd=tcp:127.0.0.1:{port}-:22"));
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for(&format!("Linux version {} ", k.version), BOOT)?;
    vm.wait_for("terra: network: eth0: bound 10.0.2.15/24", BOOT)?;
    let out = c.run(port, "ctr version; cat /etc/resolv.conf", BOOT)?;
    assert!(out.contains("Server:"), "{out}");
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    poweroff(&mut vm, &c, port)?;
    Ok(())
}

/// A cloud-init NoCloud seed on a second disk sets the host name (over the
/// lease's) and the ssh key; the machine config has neither. On the cloud
/// kernel a FAT seed (`cloud-localds -f vfat`), on the Terra kernel an ISO
/// 9660 one (`cloud-localds`' default: Joliet and Rock Ridge names).
#[test]
fn a_nocloud_seed_sets_the_hostname_and_the_key() -> Result<()> {
    a_nocloud_seed_sets_the_hostname_and_the_key_on(On::Cloud, Seed::Fat)
}

#[test]
fn a_nocloud_iso_seed_sets_the_hostname_and_the_key_on_the_terra_kernel() -> Result<()> {
    a_nocloud_seed_sets_the_hostname_and_the_key_on(On::Terra, Seed::Iso)
}

/// The filesystem of a NoCloud seed.
enum Seed {
    Fat,
    Iso,
}

fn a_nocloud_seed_sets_the_hostname_and_the_key_on(on: On, kind: Seed) -> Result<()> {
    let s = Scenario::new()?;
    let c = Client::new(s.dir.path())?;
    let key = c.public_key()?;
    let tree = osimage::partition_tree(&s.path("tree"), osimage::os_image()?, &["v1"])?;
    let disk = s.path("disk.img");
    disk::ext4_image(&tree, "terra", &disk, osimage::DISK_MIB)?;
    let seed = s.path("seed.img");
    let meta = s.path("meta-data");
    std::fs::write(
        &meta,
        "instance-id: terra-test\nlocal-hostname: seed-host\n",
    )?;
    let user = s.path("user-data");
    std::fs::write(
        &user,
        format!("#cloud-config\nssh_authorized_keys:\n  - {key}\n"),
    )?;
    match kind {
        Seed::Fat => {
            std::fs::File::create(&seed)?.set_len(2 << 20)?;
            disk::run(Command::new("mkfs.vfat").args(["-n", "cidata"]).arg(&seed))?;
            disk::run(
                Command::new("mcopy")
                    .arg("-i")
                    .arg(&seed)
                    .arg(&meta)
                    .arg(&user)
                    .arg("::"),
            )?;
        }
        // The command line cloud-localds runs, in xorriso's genisoimage mode.
        Seed::Iso => disk::run(
            Command::new("xorriso")
                .args(["-as", "genisoimage", "-quiet", "-volid", "cidata"])
                .args(["-joliet", "-rock", "-output"])
                .arg(&seed)
                .arg(&user)
                .arg(&meta),
        )?,
    }
    let port = free_port()?;
    let cfg = vm_on(&s, on, &[&disk, &seed], "osimage.hook=stay")?
        .memory_mb(1024)
        .user_net(&format!(
            "hostfwd=tcp:127.0.0.1:{port}-:22,hostname=lease-host"
        ));
    let mut vm = Vm::start(&cfg)?;
    vm.wait_for(
        "terra: nocloud: NoCloud seed on /dev/vdb: hostname seed-host, 1 ssh key(s)",
        BOOT,
    )?;
    // (The lease may come before or after the seed is read: ssh waits for both.)
    let out = c.run(port, "hostname; ctr version", BOOT)?;
    assert!(out.starts_with("seed-host\n"), "{out}");
    assert!(out.contains("Server:"), "{out}");
    poweroff(&mut vm, &c, port)?;
    Ok(())
}
