use super::*;

#[test]
fn defaults_when_nothing_is_said() {
    let p = BootParams::parse("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro console=ttyS0\n");
    assert_eq!(p, BootParams::default());
    assert_eq!(p.label, "terra");
    assert_eq!(p.timeout, Duration::from_secs(30));
}

#[test]
fn reads_every_key() {
    let p = BootParams::parse(
        "console=ttyS0 terra.version=v5 terra.label=TERRA2 terra.device=/dev/vdb1 \
         terra.timeout=2.5 terra.init=/bin/sh terra.debug terra.shell quiet",
    );
    assert_eq!(p.version.as_deref(), Some("v5"));
    assert_eq!(p.label, "TERRA2");
    assert_eq!(p.device.as_deref(), Some("/dev/vdb1"));
    assert_eq!(p.timeout, Duration::from_millis(2500));
    assert_eq!(p.init.as_deref(), Some("/bin/sh"));
    assert!(p.debug && p.shell && p.quiet);
    assert!(p.problems.is_empty() && p.unknown.is_empty());
}

#[test]
fn last_one_wins_and_quotes_are_removed() {
    let p = BootParams::parse(r#"terra.version=a terra.version="b c""#);
    assert_eq!(p.version.as_deref(), Some("b c"));
}

#[test]
fn arguments_after_double_dash_are_not_ours() {
    let p = BootParams::parse("terra.debug -- terra.version=x");
    assert!(p.debug);
    assert_eq!(p.version, None);
}

#[test]
fn garbage_is_reported_not_fatal() {
    let table = [
        ("terra.timeout=soon", "expected seconds"),
        ("terra.timeout=-1", "expected seconds"),
        ("terra.timeout=NaN", "expected seconds"),
        ("terra.init=bin/sh", "absolute path"),
        ("terra.version=", "empty"),
        ("terra.label=", "empty"),
        ("terra.version", "unexpected form"),
        ("terra.debug=maybe", "unexpected form"),
    ];
    for (line, want) in table {
        let p = BootParams::parse(line);
        assert!(
            p.problems.iter().any(|m| m.contains(want)),
            "{line}: {:?} should mention {want:?}",
            p.problems
        );
        assert_eq!(p.timeout, DEFAULT_TIMEOUT, "{line}");
        assert_eq!(p.label, "terra", "{line}");
    }
}

#[test]
fn unknown_terra_keys_are_collected() {
    let p = BootParams::parse("terra.frobnicate=1 terra.x foo=bar");
    assert_eq!(p.unknown, ["terra.frobnicate", "terra.x"]);
}

#[test]
fn what_is_rendered_is_parsed_back() {
    let all = BootParams {
        version: Some("v5".into()),
        label: "TERRA2".into(),
        device: Some("/dev/vdb1".into()),
        timeout: Duration::from_millis(2500),
        init: Some("/bin/sh".into()),
        debug: true,
        shell: true,
        quiet: true,
        ..BootParams::default()
    };
    let table = [
        (BootParams::default(), ""),
        (
            BootParams {
                version: Some("v1".into()),
                ..BootParams::default()
            },
            "terra.version=v1",
        ),
        (
            BootParams {
                label: "my disk".into(),
                timeout: Duration::ZERO,
                ..BootParams::default()
            },
            "terra.label=\"my disk\" terra.timeout=0",
        ),
        (
            all,
            "terra.version=v5 terra.label=TERRA2 terra.device=/dev/vdb1 \
             terra.timeout=2.5 terra.init=/bin/sh terra.debug terra.shell quiet",
        ),
    ];
    for (p, want) in table {
        let text = p.render().unwrap();
        assert_eq!(text, want);
        assert_eq!(BootParams::parse(&text), p, "{text}");
        // Among the boot loader's own words, too.
        let line = format!("BOOT_IMAGE=/vmlinuz {text} console=ttyS0,115200");
        assert_eq!(BootParams::parse(&line), p, "{line}");
    }
}

#[test]
fn refuses_to_render_what_would_not_parse_back() {
    let with = |f: fn(&mut BootParams)| {
        let mut p = BootParams::default();
        f(&mut p);
        p.render().unwrap_err()
    };
    let table = [
        (
            with(|p| p.version = Some(String::new())),
            RenderError::Empty { key: keys::VERSION },
        ),
        (
            with(|p| p.label = String::new()),
            RenderError::Empty { key: keys::LABEL },
        ),
        (
            with(|p| p.device = Some("a\"b".into())),
            RenderError::Unquotable {
                key: keys::DEVICE,
                value: "a\"b".into(),
            },
        ),
        (
            with(|p| p.version = Some("a\nterra.debug".into())),
            RenderError::Unquotable {
                key: keys::VERSION,
                value: "a\nterra.debug".into(),
            },
        ),
        (
            with(|p| p.init = Some("bin/sh".into())),
            RenderError::RelativePath {
                key: keys::INIT,
                value: "bin/sh".into(),
            },
        ),
        (
            with(|p| p.timeout = Duration::from_secs(86_401)),
            RenderError::Timeout {
                key: keys::TIMEOUT,
                timeout: Duration::from_secs(86_401),
            },
        ),
    ];
    for (got, want) in table {
        assert_eq!(got, want);
    }
}

#[test]
fn survives_arbitrary_bytes() {
    for s in [
        "",
        "   ",
        "\"",
        "=",
        "==",
        "terra.=",
        "\u{0}\u{7f}\u{fffd}",
        "\"terra.debug\"",
    ] {
        let _ = BootParams::parse(s);
    }
    let p = BootParams::parse("a=\"unterminated terra.debug");
    assert!(!p.debug, "inside an open quote");
}
