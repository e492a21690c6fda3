//! `terra install` from a real registry: Debian's `docker-registry` on
//! 127.0.0.1, images pushed with skopeo (OCI and Docker schema 2, an index,
//! a zstd layer), incremental installs that fetch only new layers.

use std::fs;
use std::process::Command;

use terra_tests::install_support::*;
use terra_tests::ocilayout::{Layer, Layout, Tar};
use terra_tests::registry::Registry;

fn fetch_lines(out: &str) -> usize {
    out.lines()
        .filter(|l| l.contains(": fetch ") || l.starts_with("terra: fetch "))
        .count()
}

#[test]
fn installs_from_a_registry_and_v2_fetches_only_its_new_layer() {
    let reg = Registry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    let v1 = add_v1(&mut layout);
    let mut t = Tar::new();
    t.dir("etc", 0o755).file("etc/hostname", b"v2\n", 0o644);
    let v2 = add_v2(&mut layout, Layer::zstd(t.finish()));
    let r1 = reg.push(&layout.dir, "v1", "terra/os").unwrap();
    let r2 = reg.push(&layout.dir, "v2", "terra/os").unwrap();

    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    let out = ok(&["--root", r, "install", &r1]);
    assert_eq!(fetch_lines(&out), 3, "{out}");
    let out = ok(&["--root", r, "install", &r2]);
    assert_eq!(fetch_lines(&out), 1, "only the new layer is fetched: {out}");
    assert!(out.contains("1 new of 3 layers"), "{out}");
    let m = meta(&root);
    assert_eq!(image_digest(&m, "v1"), v1.manifest_digest);
    assert_eq!(image_digest(&m, "v2"), v2.manifest_digest);
    assert_eq!(m.versions["v1"].image.as_ref().unwrap().reference, r1);
    assert_eq!(top_layer_text(&root, &m, "v2", "etc/hostname"), "v2\n");
    // By digest, under another name: nothing new to fetch.
    let pinned = format!("{}/terra/os@{}", reg.addr, v1.manifest_digest);
    let out = ok(&["--root", r, "install", &pinned, "--name", "pinned"]);
    assert_eq!(fetch_lines(&out), 0, "{out}");
    assert_eq!(
        meta(&root).versions["pinned"].lowers,
        m.versions["v1"].lowers
    );
}

#[test]
fn docker_schema2_manifests_and_manifest_lists_install() {
    let reg = Registry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_intact(&mut layout, "v1", &[base_layer(), top_layer("docker")]);
    let (amd, arm) = add_two_platform_index(&mut layout);
    // skopeo converts to Docker schema 2 on the way.
    let dest = format!("{}/terra/docker:v1", reg.addr);
    let st = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
        ])
        .arg(layout.reference("v1"))
        .arg(format!("docker://{dest}"))
        .status()
        .unwrap();
    assert!(st.success());
    let multi = reg.push(&layout.dir, "multi", "terra/multi").unwrap();

    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();
    ok(&["--root", r, "install", &dest]);
    let m = meta(&root);
    let manifest = fs::read_to_string(blob_path(&root, image_digest(&m, "v1"))).unwrap();
    assert!(
        manifest.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{manifest}"
    );
    assert_eq!(top_layer_text(&root, &m, "v1", "etc/hostname"), "docker\n");

    ok(&["--root", r, "install", &multi]);
    ok(&install_args(
        r,
        &multi,
        &["--platform", "linux/arm64", "--name", "arm"],
    ));
    assert_platforms_picked(&meta(&root), &amd, &arm);
}

#[test]
fn an_unknown_repository_or_tag_is_a_clear_error() {
    let reg = Registry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().to_str().unwrap();
    let err = fails(&[
        "--root",
        r,
        "install",
        &format!("{}/nope/nope:v1", reg.addr),
    ]);
    assert!(err.contains("HTTP 404") && err.contains("nope"), "{err}");
    assert!(!tmp.path().join("ov/metadata.db").exists());
}

#[test]
fn token_auth_with_docker_config_credentials() {
    use terra_tests::registry::TokenFront;
    let reg = Registry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::create(&tmp.path().join("img")).unwrap();
    add_intact(&mut layout, "v1", &[base_layer(), top_layer("auth")]);
    reg.push(&layout.dir, "v1", "terra/os").unwrap();
    let front = TokenFront::start(&reg).unwrap();
    let reference = format!("{}/terra/os:v1", front.addr);
    let root = empty_partition(tmp.path());
    let r = root.to_str().unwrap();

    // Without credentials: the token server refuses, clearly.
    let cfg = tmp.path().join("docker");
    fs::create_dir(&cfg).unwrap();
    let run = |args: &[&str]| {
        Command::new(terra_bin())
            .args(args)
            .env("DOCKER_CONFIG", &cfg)
            .output()
            .unwrap()
    };
    let out = run(&["--root", r, "install", &reference]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refused access"),
        "{err}"
    );

    // With `auths` in config.json (as `docker login` writes it): installs.
    let auth = base64_of(&format!("{}:{}", TokenFront::USER, TokenFront::PASSWORD));
    fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, front.addr),
    )
    .unwrap();
    let out = run(&["--root", r, "install", &reference]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(front.issued.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let m = meta(&root);
    assert_eq!(top_layer_text(&root, &m, "v1", "etc/hostname"), "auth\n");
}

fn base64_of(s: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut out = out;
    out.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
}
