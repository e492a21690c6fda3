use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3cRIuq5RixcFdgbtqC6dmUKAbh8BbG6LrHsXoKrbv me@host";

#[test]
fn an_empty_config_means_dhcp_and_sshd() {
    let c = MachineConfig::parse("{}").unwrap();
    assert!(c.dhcp);
    assert!(c.services.sshd);
    assert_eq!(c.hostname, None);
    assert_eq!(c.resolv_conf(), None);
    assert!(c.ntp.is_empty());
}

#[test]
fn time_servers_are_names_or_addresses_with_an_optional_port() {
    let c = MachineConfig::parse(r#"{"ntp": ["pool.ntp.org", "10.0.2.2:4123", "ntp1"]}"#).unwrap();
    let with_port: Vec<String> = c.ntp.iter().map(NtpServer::with_port).collect();
    assert_eq!(with_port, ["pool.ntp.org:123", "10.0.2.2:4123", "ntp1:123"]);
    assert_eq!(MachineConfig::parse(&c.to_text()).unwrap(), c);
    for bad in [
        "",
        "10.0.2.300",
        "10.0.2.2:0",
        "10.0.2.2:70000",
        "10.0.2.2:",
        "ntp.example.net:port",
        "bad name",
        "-ntp",
        "a:1:2",
    ] {
        let text = format!(
            "{{\n\"ntp\": [\n  {}\n]}}",
            serde_json::to_string(bad).unwrap()
        );
        let e = MachineConfig::parse(&text).unwrap_err();
        assert_eq!(e.line, 3, "{bad:?}: {e}");
        assert!(
            e.message.contains(&format!(
                "expected a time server like pool.ntp.org or 10.0.2.2:123, found {bad:?}"
            )),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn every_field_is_read_and_written_back() {
    let text = format!(
        r#"{{"hostname": "node-1", "dhcp": false,
            "interfaces": {{"eth0": {{"address": "10.0.2.50/24", "gateway": "10.0.2.2"}}}},
            "dns": ["10.0.2.3", "1.1.1.1"], "ssh_authorized_keys": ["{KEY}"],
            "sysctl": {{"net.ipv4.ip_forward": "1"}}, "services": {{"sshd": false}}}}"#
    );
    let c = MachineConfig::parse(&text).unwrap();
    assert_eq!(c.hostname.as_ref().unwrap().as_str(), "node-1");
    assert!(!c.dhcp);
    assert!(!c.services.sshd);
    let eth0 = &c.interfaces[&IfName::try_from("eth0".to_string()).unwrap()];
    assert_eq!(eth0.address.as_str(), "10.0.2.50/24");
    assert_eq!(eth0.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(c.ssh_authorized_keys[0].as_str(), KEY);
    assert_eq!(
        c.resolv_conf().unwrap(),
        "# written by terra-init from config/machine.json\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
    );
    assert_eq!(MachineConfig::parse(&c.to_text()).unwrap(), c);
}

/// Each bad input is refused at its line with what was expected.
#[test]
fn bad_input_names_the_line_and_what_was_expected() {
    let cases = [
        (
            "{\n  \"hostname\": \"a\",\n  \"hostnme\": \"b\"\n}",
            3,
            "unknown field `hostnme`, expected one of",
        ),
        (
            "{\n  \"interfaces\": {\n    \"eth0\": {\"address\": \"10.0.2.300/24\"}\n  }\n}",
            3,
            "expected an IPv4 address with a prefix length like 10.0.2.50/24, found \"10.0.2.300/24\"",
        ),
        (
            "{\"dns\": [\n\"10.0.2\"]}",
            2,
            "invalid IPv4 address syntax",
        ),
        (
            "{\n\"ssh_authorized_keys\": [\n  \"ssh-ed25519 not-base64!\"\n]}",
            3,
            "expected a base64 key blob that names the key's type, found \"ssh-ed25519 not-base64!\"",
        ),
        (
            "{\"ssh_authorized_keys\": [\"AAAAC3NzaC1lZDI1NTE5\"]}",
            1,
            "expected a public key like",
        ),
        (
            "{\"hostname\": \"-bad\"}",
            1,
            "expected a host name",
        ),
        (
            "{\"sysctl\": {\"../../etc/x\": \"1\"}}",
            1,
            "expected a sysctl name like net.ipv4.ip_forward",
        ),
        ("{\n\"dhcp\": \"yes\"\n}", 2, "invalid type: string \"yes\", expected a boolean"),
        ("{\n\"dhcp\": true,\n", 3, "EOF while parsing"),
    ];
    for (text, line, expected) in cases {
        let e = MachineConfig::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.message.contains(expected), "{text}: {e}");
        assert!(!e.message.contains(" at line "), "{e}");
        assert!(
            e.to_string().starts_with(&format!("line {line}, column ")),
            "{e}"
        );
    }
}

#[test]
fn a_key_blob_of_another_type_is_refused() {
    // An ed25519 blob labelled ssh-rsa.
    let bad = KEY.replacen("ssh-ed25519", "ssh-rsa", 1);
    let e = MachineConfig::parse(&format!("{{\"ssh_authorized_keys\": [\"{bad}\"]}}")).unwrap_err();
    assert!(e.message.contains("names the key's type"), "{e}");
}

#[test]
fn at_boot_a_bad_file_falls_back_to_the_last_good_one() {
    let good = r#"{"hostname": "good"}"#;
    let c = choose(Ok(Some(good)), None);
    assert_eq!((c.origin, c.problem), (Origin::File, None));
    assert_eq!(c.config.hostname.unwrap().as_str(), "good");

    let c = choose(Ok(Some("{\n\"hostnme\": 1}")), Some(good));
    assert_eq!(c.origin, Origin::LastGood);
    assert_eq!(c.config.hostname.unwrap().as_str(), "good");
    let why = c.problem.unwrap();
    assert!(
        why.starts_with("config/machine.json: line 2, column 9: unknown field `hostnme`"),
        "{why}"
    );

    let c = choose(Err("permission denied".into()), None);
    assert_eq!(c.origin, Origin::Defaults);
    assert!(c.config.dhcp);
    assert_eq!(c.problem.unwrap(), "config/machine.json: permission denied");

    let c = choose(Ok(None), Some(good));
    assert_eq!((c.origin, c.problem), (Origin::Defaults, None));
    assert!(c.config.dhcp && c.config.services.sshd);
}
