//! `terra config check | set | show` (issue 14): bad machine configs are
//! refused with the line and what was expected, a good one lands on the
//! partition as `config/machine.json`. Runs as root (an installed partition).

use std::fs;

use terra_tests::install_support::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3cRIuq5RixcFdgbtqC6dmUKAbh8BbG6LrHsXoKrbv me@host";

#[test]
fn config_check_names_the_line_and_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\n  \"hostname\": \"node-1\",\n  \"dchp\": true\n}\n",
            "line 3, column 8: unknown field `dchp`, expected one of `hostname`, `interfaces`, `dhcp`",
        ),
        (
            "{\n  \"interfaces\": {\n    \"eth0\": {\"address\": \"10.0.2.50\"}\n  }\n}\n",
            "line 3, column 35: expected an IPv4 address with a prefix length like 10.0.2.50/24, found \"10.0.2.50\"",
        ),
        (
            "{\n  \"ssh_authorized_keys\": [\n    \"ssh-ed25519 AAAA\"\n  ]\n}\n",
            "line 3, column 22: expected a base64 key blob that names the key's type, found \"ssh-ed25519 AAAA\"",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("bad{i}.json"));
        fs::write(&file, text).unwrap();
        let err = fails(&["config", "check", file.to_str().unwrap()]);
        assert!(
            err.contains(&format!("is not a valid machine config: {expected}")),
            "{text}\n{err}"
        );
    }
    let good = tmp.path().join("good.json");
    fs::write(
        &good,
        format!("{{\"hostname\": \"node-1\", \"ssh_authorized_keys\": [\"{KEY}\"]}}\n"),
    )
    .unwrap();
    let out = ok(&["config", "check", good.to_str().unwrap()]);
    assert!(out.contains("good.json: ok"), "{out}");
}

#[test]
fn config_set_puts_a_checked_file_on_the_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = v1_and_empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&install_args(r, &layout.reference("v1"), &[]));
    let out = ok(&["--root", r, "config", "show"]);
    assert!(out.contains("# no config/machine.json"), "{out}");

    let bad = tmp.path().join("bad.json");
    fs::write(&bad, "{\"hostname\": \"a b\"}").unwrap();
    let err = fails(&["--root", r, "config", "set", bad.to_str().unwrap()]);
    assert!(
        err.contains("line 1, column 18: expected a host name"),
        "{err}"
    );
    assert!(!root.join("config/machine.json").exists());

    let good = tmp.path().join("good.json");
    let text = "{\"hostname\": \"node-1\", \"dns\": [\"10.0.2.3\"]}\n";
    fs::write(&good, text).unwrap();
    ok(&["--root", r, "config", "set", good.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(root.join("config/machine.json")).unwrap(),
        text
    );
    assert_eq!(
        ok(&["--root", r, "config", "show"]).trim_end(),
        text.trim_end()
    );
}

#[test]
fn install_config_is_checked_first_and_written_with_the_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, root) = v1_and_empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let reference = layout.reference("v1");

    let bad = tmp.path().join("bad.json");
    fs::write(&bad, "{\"dns\": [\"10.0.2.3/24\"]}").unwrap();
    let err = fails(&install_args(
        r,
        &reference,
        &["--config", bad.to_str().unwrap()],
    ));
    assert!(
        err.contains("bad.json is not a valid machine config: line 1, column"),
        "{err}"
    );
    assert!(
        !root.join("ov/metadata.db").exists(),
        "installed despite a bad config"
    );

    let good = tmp.path().join("good.json");
    fs::write(&good, "{\"hostname\": \"node-1\"}\n").unwrap();
    ok(&install_args(
        r,
        &reference,
        &["--config", good.to_str().unwrap()],
    ));
    assert!(meta(&root).versions.contains_key("v1"));
    assert_eq!(
        fs::read_to_string(root.join("config/machine.json")).unwrap(),
        "{\"hostname\": \"node-1\"}\n"
    );
}
