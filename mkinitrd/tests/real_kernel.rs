//! Module resolution against the real index files of the installed Debian
//! cloud kernel.

mod common;

use mkinitrd::kmod::parse::{
    parse_modules_alias, parse_modules_builtin, parse_modules_dep, parse_modules_softdep,
};
use mkinitrd::kmod::{resolve, Lookup, ModuleDb, ModuleSet, Request, Root};

fn requested(names: &[&str]) -> Vec<Request> {
    names
        .iter()
        .map(|n| Request {
            name: n.to_string(),
            root: Root::Requested,
        })
        .collect()
}

#[test]
fn parsers_read_every_real_line() {
    let Some((_, dir)) = common::cloud_kernel() else {
        return;
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let dep = parse_modules_dep(&read("modules.dep")).unwrap();
    assert_eq!(dep.len(), read("modules.dep").lines().count());
    let blk = dep.iter().find(|e| e.name() == "virtio_blk").unwrap();
    assert!(
        blk.path.ends_with("drivers/block/virtio_blk.ko"),
        "{}",
        blk.path
    );
    let soft = parse_modules_softdep(&read("modules.softdep")).unwrap();
    assert!(
        soft.iter()
            .any(|s| s.module == "xt_LOG" && s.pre == ["nf_log_syslog"]),
        "{soft:?}"
    );
    let alias = parse_modules_alias(&read("modules.alias")).unwrap();
    assert!(alias
        .iter()
        .any(|a| a.module == "overlay" && a.matches("fs-overlay")));
    assert!(alias
        .iter()
        .any(|a| a.module == "virtio_blk" && a.matches("virtio:d00000002v00001AF4")));
    let builtin = parse_modules_builtin(&read("modules.builtin"));
    assert!(
        builtin.iter().any(|b| b == "ext4"),
        "ext4 is built into Debian's cloud kernel"
    );
}

#[test]
fn virtio_blk_pulls_virtio_ring_and_virtio_first() {
    let Some((_, dir)) = common::cloud_kernel() else {
        return;
    };
    let db = ModuleDb::load(&dir).unwrap();
    let r = resolve(&db, &requested(&["virtio-blk"])).unwrap();
    let names: Vec<&str> = r.load.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["virtio_ring", "virtio", "virtio_blk"]);
    assert_eq!(r.load[0].why, "needed by virtio_blk (requested), virtio");
}

#[test]
fn vm_set_in_load_order() {
    let Some((_, dir)) = common::cloud_kernel() else {
        return;
    };
    let db = ModuleDb::load(&dir).unwrap();
    let set: Vec<Request> = ModuleSet::Vm
        .modules()
        .iter()
        .map(|n| Request {
            name: n.to_string(),
            root: Root::Set(ModuleSet::Vm),
        })
        .collect();
    let r = resolve(&db, &set).unwrap();
    let names: Vec<&str> = r.load.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "virtio_ring",
            "virtio",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio_pci",
            "virtio_blk",
            "overlay",
            "failover",
            "net_failover",
            "virtio_net"
        ]
    );
    // Every module comes after everything modules.dep says it needs.
    for (i, m) in r.load.iter().enumerate() {
        for dep in &db.modules[&m.name].deps {
            let at = names.iter().position(|n| n == dep).unwrap();
            assert!(at < i, "{dep} must come before {}", m.name);
        }
    }
}

#[test]
fn softdeps_and_aliases_of_the_real_kernel() {
    let Some((_, dir)) = common::cloud_kernel() else {
        return;
    };
    let db = ModuleDb::load(&dir).unwrap();
    // softdep xt_LOG pre: nf_log_syslog
    let r = resolve(&db, &requested(&["xt_LOG"])).unwrap();
    let names: Vec<&str> = r.load.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["nf_log_syslog", "x_tables", "xt_LOG"]);
    assert_eq!(r.load[0].why, "soft dependency of xt_LOG");
    // xfs needs libcrc32c, whose softdep `pre: crc32c` is an alias of crc32c_intel.
    let r = resolve(&db, &requested(&["xfs"])).unwrap();
    let names: Vec<&str> = r.load.iter().map(|m| m.name.as_str()).collect();
    let intel = names.iter().position(|n| *n == "crc32c_intel").unwrap();
    let lib = names.iter().position(|n| *n == "libcrc32c").unwrap();
    assert!(intel < lib, "{names:?}");
    // Aliases and built-ins.
    assert_eq!(
        db.lookup("fs-overlay"),
        Lookup::Modules(vec!["overlay".into()])
    );
    assert_eq!(db.lookup("fs-ext4"), Lookup::Builtin("ext4".into()));
    assert_eq!(db.lookup("nvme"), Lookup::Builtin("nvme".into()));
}

#[test]
fn server_set_skips_what_this_kernel_lacks() {
    let Some((_, dir)) = common::cloud_kernel() else {
        return;
    };
    let db = ModuleDb::load(&dir).unwrap();
    let set: Vec<Request> = ModuleSet::Server
        .modules()
        .iter()
        .map(|n| Request {
            name: n.to_string(),
            root: Root::Set(ModuleSet::Server),
        })
        .collect();
    let r = resolve(&db, &set).unwrap();
    let names: Vec<&str> = r.load.iter().map(|m| m.name.as_str()).collect();
    for needed in [
        "virtio_pci",
        "virtio_blk",
        "virtio_scsi",
        "sd_mod",
        "scsi_mod",
        "overlay",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    let why = r.why_text();
    assert!(
        why.contains("ext4: built into the kernel (module set server)"),
        "{why}"
    );
    let err = resolve(&db, &requested(&["virtio_blok"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean virtio_blk"), "{err}");
}
