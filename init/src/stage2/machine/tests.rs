use super::*;
use crate::env::Paths;
use crate::kernel::fake::Fake;
use std::time::Instant;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3cRIuq5RixcFdgbtqC6dmUKAbh8BbG6LrHsXoKrbv me@host";

fn paths(dir: &Path) -> Paths {
    Paths {
        root: dir.join("root"),
        proc: dir.join("proc"),
        partition: dir.join("part"),
        ..Paths::default()
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["root/etc", "proc/sys/net/ipv4", "part/config"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    dir
}

#[test]
fn a_good_file_is_used_and_kept_as_the_last_good_one() {
    let dir = setup();
    let part = dir.path().join("part/config");
    let good = r#"{"hostname": "node-1"}"#;
    std::fs::write(part.join("machine.json"), good).unwrap();
    let k = Fake::default();
    let env = Env::new(paths(dir.path()), &k, Instant::now());
    assert_eq!(load(&env).hostname.unwrap().as_str(), "node-1");
    assert_eq!(
        std::fs::read_to_string(part.join("machine.last-good.json")).unwrap(),
        good
    );
    // Then the file goes bad: the last good one is used.
    std::fs::write(part.join("machine.json"), "{\"hostname\": \"node 2\"}").unwrap();
    assert_eq!(load(&env).hostname.unwrap().as_str(), "node-1");
    assert_eq!(
        std::fs::read_to_string(part.join("machine.last-good.json")).unwrap(),
        good
    );
}

#[test]
fn applies_hostname_sysctls_dns_and_keys() {
    let dir = setup();
    let k = Fake::default();
    let env = Env::new(paths(dir.path()), &k, Instant::now());
    let c = MachineConfig::parse(&format!(
        r#"{{"hostname": "node-1", "dns": ["10.0.2.3"], "ssh_authorized_keys": ["{KEY}"],
            "sysctl": {{"net.ipv4.ip_forward": "1"}}}}"#
    ))
    .unwrap();
    apply(&env, &c);
    assert_eq!(k.calls(), ["hostname node-1"]);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(read("proc/sys/net/ipv4/ip_forward"), "1");
    assert!(read("root/etc/resolv.conf").contains("nameserver 10.0.2.3\n"));
    assert_eq!(read("root/root/.ssh/authorized_keys"), format!("{KEY}\n"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("root/root/.ssh/authorized_keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn dhcp_by_default_static_when_configured() {
    let dir = setup();
    let k = Fake::default();
    let env = Env::new(paths(dir.path()), &k, Instant::now());
    let specs = services(&env, &MachineConfig::default_config());
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["network", "sshd", "nocloud", "timesync"]);
    assert_eq!(specs[2].argv[1..], ["nocloud"]);
    // Time sync after the network, with no readiness to hold the gate.
    assert_eq!(specs[3].argv[1..], ["timesync"]);
    assert_eq!(specs[3].after, ["network"]);
    assert_eq!(specs[3].ready, None);
    let net = &specs[0];
    assert_eq!(net.argv.len(), 2, "{:?}", net.argv);
    assert_eq!(net.env["TERRA_DHCP"], "1");
    assert_eq!(net.env["TERRA_KEEP_HOSTNAME"], "0");
    assert_eq!(net.ready, Some(Ready::File(NETWORK_READY.into())));
    assert!(
        net.after.is_empty(),
        "the network must not wait for containerd"
    );
    assert_eq!(
        specs[1].argv[2],
        dir.path().join("part/config/ssh").display().to_string()
    );

    let c = MachineConfig::parse(
        r#"{"dhcp": false, "dns": ["1.1.1.1"], "services": {"sshd": false},
            "interfaces": {"eth0": {"address": "10.0.2.50/24", "gateway": "10.0.2.2"},
                           "eth1": {"address": "192.168.1.2/24"}}}"#,
    )
    .unwrap();
    let specs = services(&env, &c);
    assert_eq!(specs.len(), 3, "sshd is off");
    assert_eq!(specs[1].name, "nocloud");
    assert_eq!(
        specs[1].argv[1..],
        ["nocloud"],
        "no hostname in this config"
    );
    assert_eq!(
        specs[0].argv[2..],
        ["eth0=10.0.2.50/24,10.0.2.2", "eth1=192.168.1.2/24"]
    );
    assert_eq!(specs[0].env["TERRA_DHCP"], "0");
    assert_eq!(specs[0].env["TERRA_KEEP_DNS"], "1");
    assert_eq!(specs[2].argv[1..], ["timesync"]);

    let c = MachineConfig::parse(r#"{"ntp": ["10.0.2.2:4123", "pool.ntp.org"]}"#).unwrap();
    let specs = services(&env, &c);
    let timesync = specs.iter().find(|s| s.name == "timesync").unwrap();
    assert_eq!(
        timesync.argv[1..],
        [
            "timesync",
            "--server",
            "10.0.2.2:4123",
            "--server",
            "pool.ntp.org"
        ]
    );
}

#[test]
fn no_service_without_its_script() {
    let dir = setup();
    let k = Fake::failing(&[
        "usr/lib/terra/network",
        "usr/lib/terra/sshd",
        "usr/bin/terra",
    ]);
    let env = Env::new(paths(dir.path()), &k, Instant::now());
    assert!(services(&env, &MachineConfig::default_config()).is_empty());
}
