use super::*;

fn list(comments: &[&str], modules: &[(&str, &str)]) -> ModuleList {
    let mut l = ModuleList::new();
    for c in comments {
        l.comment(c).unwrap();
    }
    for (path, params) in modules {
        l.push(path, params).unwrap();
    }
    l
}

#[test]
fn renders_comments_then_one_module_a_line() {
    let l = list(
        &["Kernel modules for 6.1, in load order.", ""],
        &[
            ("/lib/modules/6.1/a.ko", ""),
            ("/lib/modules/6.1/b.ko", "x=1  y=2"),
        ],
    );
    assert_eq!(
        l.render(),
        "# Kernel modules for 6.1, in load order.\n#\n/lib/modules/6.1/a.ko\n/lib/modules/6.1/b.ko x=1  y=2\n"
    );
    assert_eq!(l.render(), l.to_string());
    assert_eq!(ModuleList::new().render(), "");
}

#[test]
fn what_is_written_is_read_back_unchanged() {
    let table = [
        list(&[], &[]),
        list(&["only a comment"], &[]),
        list(&[], &[("/m/a.ko", "")]),
        list(
            &["  indented", "", "trailing   ", "# a hash"],
            &[
                ("/m/a.ko", ""),
                ("/m/b.ko", "  max_loop=8 max_part=2 "),
                ("/m/c.ko", "s=\"a b\"\tt=1"),
                ("/m/#d.ko", "#not-a-comment"),
            ],
        ),
    ];
    for l in table {
        let text = l.render();
        assert_eq!(ModuleList::parse(&text), l, "{text:?}");
        assert_eq!(ModuleList::parse(&text).render(), text);
    }
}

#[test]
fn parses_paths_params_and_comments() {
    let text = "# load order\n\n/lib/modules/6.1/virtio.ko\n  /lib/modules/6.1/loop.ko max_loop=8 max_part=2 \n#x\n\r\n/m/t.ko\ta=1\r\n";
    let l = ModuleList::parse(text);
    let got: Vec<(&str, &str, &str)> = l
        .modules()
        .iter()
        .map(|m| (m.path.as_str(), m.params.as_str(), m.name()))
        .collect();
    assert_eq!(
        got,
        [
            ("/lib/modules/6.1/virtio.ko", "", "virtio"),
            ("/lib/modules/6.1/loop.ko", "max_loop=8 max_part=2", "loop"),
            ("/m/t.ko", "a=1", "t"),
        ]
    );
    assert_eq!(l.comments(), ["load order", "x"]);
}

#[test]
fn nothing_but_blanks_and_comments_is_no_modules() {
    for text in ["", "\n\n", "   \n\t\n", "# only\n#\n"] {
        assert!(ModuleList::parse(text).modules().is_empty(), "{text:?}");
    }
}

#[test]
fn refuses_what_the_format_cannot_carry() {
    let table = [
        ("m/a.ko", "", ModuleListError::RelativePath("m/a.ko".into())),
        ("", "", ModuleListError::RelativePath(String::new())),
        (
            "/m/a b.ko",
            "",
            ModuleListError::Whitespace("/m/a b.ko".into()),
        ),
        (
            "/m/a\tb.ko",
            "",
            ModuleListError::Whitespace("/m/a\tb.ko".into()),
        ),
        (
            "/m/a.ko",
            "x=1\n/m/evil.ko",
            ModuleListError::LineBreak {
                what: "module parameters",
                text: "x=1\n/m/evil.ko".into(),
            },
        ),
        (
            "/m/a.ko",
            "x=1\ry=2",
            ModuleListError::LineBreak {
                what: "module parameters",
                text: "x=1\ry=2".into(),
            },
        ),
    ];
    for (path, params, want) in table {
        let mut l = ModuleList::new();
        assert_eq!(l.push(path, params), Err(want), "{path:?} {params:?}");
        assert!(l.modules().is_empty(), "{path:?}: nothing added");
    }
    let mut l = ModuleList::new();
    let err = l.comment("two\nlines").unwrap_err();
    assert!(err.to_string().contains("line break"), "{err}");
    assert!(l.comments().is_empty());
}

#[test]
fn module_names_drop_the_directory_and_the_suffix() {
    for (path, name) in [
        (
            "/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko",
            "virtio_blk",
        ),
        ("/m/loop.ko", "loop"),
        ("/m/odd", "odd"),
        ("/", ""),
    ] {
        let m = Module {
            path: path.into(),
            params: String::new(),
        };
        assert_eq!(m.name(), name, "{path}");
    }
}

#[test]
fn skeleton_holds_what_stage_1_relies_on() {
    let dirs: Vec<&str> = SKELETON
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .map(|n| n.path)
        .collect();
    let modules_dir = MODULES_FILE.rsplit_once('/').map(|(d, _)| d);
    let why_dir = MODULES_WHY_FILE.rsplit_once('/').map(|(d, _)| d);
    for want in [
        Some(NEWROOT),
        modules_dir,
        why_dir,
        Some("/proc"),
        Some("/sys"),
    ] {
        let want = want.unwrap();
        assert!(dirs.contains(&want), "{want} is not in the skeleton");
    }
    let console = SKELETON.iter().find(|n| n.path == "/dev/console").unwrap();
    assert_eq!(console.kind, NodeKind::CharDev { major: 5, minor: 1 });
    assert_eq!(
        SKELETON.iter().find(|n| n.path == "/tmp").unwrap().mode,
        0o1777
    );
}

#[test]
fn skeleton_paths_are_absolute_unique_and_under_listed_directories() {
    for (i, n) in SKELETON.iter().enumerate() {
        assert!(
            n.path.starts_with('/') && !n.path.ends_with('/'),
            "{}",
            n.path
        );
        assert!(
            !n.path.split('/').any(|c| c == "." || c == ".."),
            "{}",
            n.path
        );
        assert!(
            SKELETON[..i].iter().all(|o| o.path != n.path),
            "{} is listed twice",
            n.path
        );
        assert_eq!(n.mode & !0o7777, 0, "{}: permission bits only", n.path);
    }
    // A device node's directory is listed too, with its own mode.
    for n in SKELETON.iter().filter(|n| n.kind != NodeKind::Dir) {
        let (dir, _) = n.path.rsplit_once('/').unwrap();
        assert!(
            SKELETON
                .iter()
                .any(|d| d.path == dir && d.kind == NodeKind::Dir),
            "{}: its directory {dir} is not in the skeleton",
            n.path
        );
    }
}
