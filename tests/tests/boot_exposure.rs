//! QEMU tier (issue 16, item 6): the mount flags of a booted system, as the
//! probe reads them from `/proc/mounts`. The partition at its documented
//! path holds every version's layers (setuid binaries, device nodes): it is
//! `nosuid,nodev`. What must keep suid and devices keeps them: the overlay
//! root, and `vlc/` on `/var/lib/containerd` (containerd's snapshots need
//! both). Needs `scripts/build` first.

use anyhow::{ensure, Result};
use terra_tests::boot::{boot_probe, Scenario};
use terra_tests::initramfs::Flavor;

fn flags(options: &str) -> Vec<&str> {
    options.split(',').collect()
}

#[test]
fn the_partition_is_nosuid_nodev_and_the_root_and_containerd_are_not() -> Result<()> {
    let s = Scenario::new()?;
    let disk = s.standard_disk("terra.img", "terra")?;
    let initrd = s.initramfs(Flavor::Vm)?;
    let (r, _console) = boot_probe(&s.vm(&initrd, &[&disk], "probe.devices"))?;

    let part = r.mount_at("/run/terra/partition")?;
    let f = flags(&part.options);
    ensure!(
        f.contains(&"nosuid") && f.contains(&"nodev"),
        "/run/terra/partition must be nosuid,nodev: {part:?}"
    );
    for target in ["/", "/var/lib/containerd"] {
        let m = r.mount_at(target)?;
        let f = flags(&m.options);
        ensure!(
            !f.contains(&"nosuid") && !f.contains(&"nodev"),
            "{target} must keep setuid and devices: {m:?}"
        );
        ensure!(f.contains(&"rw"), "{target} must be writable: {m:?}");
    }
    // The flags at work: a device node opens in the root and in
    // containerd's directory, not on the partition.
    let devs = r.all("dev");
    for want in ["root:opens", "vlc:opens", "partition:denied"] {
        ensure!(devs.contains(&want), "want {want}: {devs:?}");
    }
    Ok(())
}
