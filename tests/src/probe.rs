//! The probe: the `/sbin/init` of the test versions (a busybox `sh` script).
//!
//! It is the handoff, so it runs as PID 1 in the new root. It prints
//! `TERRA-PROBE-BEGIN`, one `probe.KEY=VALUE` line per fact, `TERRA-PROBE-END`,
//! then syncs and powers off. Since every boot of a test reuses the same disk
//! image, the kernel command line tells it what to write:
//! `probe.write=WORD` writes WORD to `/probe-marker` (in the version's upper
//! layer), `probe.vlcwrite=WORD` writes `/var/lib/containerd/from-WORD`,
//! `probe.devices` makes a null device in the root, in `/var/lib/containerd`
//! and on the partition, and prints `probe.dev=WHERE:opens|denied` for each;
//! `probe.net` prints `probe.net=IFACE:DRIVER` for each network interface.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use terra_qemu::floor::{parse_clock, CLOCK_PREFIX, UPTIME_PREFIX};
use terra_qemu::Vm;

pub const BEGIN: &str = "TERRA-PROBE-BEGIN";
pub const END: &str = "TERRA-PROBE-END";

/// The script. The clock comes first: it is the benchmark's "handoff
/// reached", as `/proc/uptime` and as the `now at <ns> nsecs` line of
/// `/proc/timer_list` (the same clock in nanoseconds; the floors print it too).
pub const SCRIPT: &str = r#"#!/bin/sh
# Terra test probe: prints what the boot tests check, then powers off.
export PATH=/bin:/sbin
echo TERRA-PROBE-BEGIN
read -r up < /proc/uptime
echo "probe.uptime=$up"
{ read -r _; read -r _; read -r now; } < /proc/timer_list
echo "$now"
echo "probe.pid=$$"
for word in $(cat /proc/cmdline); do
  case "$word" in
    probe.write=*)
      v=${word#probe.write=}
      echo "$v" > /probe-marker && echo "probe.wrote=$v" ;;
    probe.vlcwrite=*)
      v=${word#probe.vlcwrite=}
      echo "$v" > "/var/lib/containerd/from-$v" && echo "probe.vlcwrote=$v" ;;
    probe.devices)
      # A null device (1,3) made and opened where it lives: nodev denies the open.
      for at in root:/ vlc:/var/lib/containerd partition:/run/terra/partition/tmp; do
        n="${at#*:}/probe-null"
        mknod "$n" c 1 3 2>/dev/null
        if cat "$n" > /dev/null 2>&1; then r=opens; else r=denied; fi
        rm -f "$n"
        echo "probe.dev=${at%%:*}:$r"
      done ;;
    probe.net)
      # Each network interface and the driver bound to it (none: virtual).
      for n in /sys/class/net/*; do
        d=$(readlink "$n/device/driver" 2>/dev/null)
        echo "probe.net=${n##*/}:${d##*/}"
      done ;;
  esac
done
sync
echo "probe.hostname=$(cat /etc/hostname 2>/dev/null)"
if [ -e /probe-marker ]; then echo "probe.marker=$(cat /probe-marker)"; else echo "probe.marker=none"; fi
for f in /var/lib/containerd/*; do
  [ -e "$f" ] && echo "probe.vlc=${f##*/}:$(cat "$f")"
done
while read -r line; do echo "probe.mount=$line"; done < /proc/mounts
if [ -e /etc/whiteme ]; then echo "probe.whiteout=visible"; else echo "probe.whiteout=hidden"; fi
for f in /opt/opaque/*; do [ -e "$f" ] && echo "probe.opaque=${f##*/}"; done
echo "probe.bootjson=$( { tr -d '\n' < /run/terra/boot.json; } 2>/dev/null)"
echo "probe.mountplan=$( { tr '\n' ';' < /run/terra/mounts; } 2>/dev/null)"
echo TERRA-PROBE-END
sync
poweroff -f
echo o > /proc/sysrq-trigger
"#;

/// What the probe printed, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub facts: Vec<(String, String)>,
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
}

impl Report {
    /// Reads the probe's block from the console (waits for BEGIN, then END).
    pub fn read(vm: &mut Vm, timeout: Duration) -> Result<Self> {
        vm.wait_for(BEGIN, timeout)?;
        let start = vm.console.cursor();
        vm.wait_for(END, Duration::from_secs(30))?;
        let lines = vm.console.lines();
        let block = lines.get(start..).unwrap_or_default();
        Ok(Self::parse(block.iter().map(String::as_str)))
    }

    /// Collects `probe.KEY=VALUE` lines until END (kernel lines between
    /// them are ignored).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut facts = Vec::new();
        for line in lines {
            if line.starts_with(END) {
                break;
            }
            if let Some((key, value)) = line.strip_prefix("probe.").and_then(|l| l.split_once('='))
            {
                facts.push((key.to_string(), value.to_string()));
            }
        }
        Self { facts }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.all(key)
            .into_iter()
            .next()
            .with_context(|| format!("the probe printed no probe.{key}: {self:#?}"))
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.facts
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The seconds of `/proc/uptime` when the probe started.
    pub fn uptime(&self) -> Result<f64> {
        parse_uptime(self.get("uptime")?)
    }

    /// `/proc/mounts` as the probe saw it.
    pub fn mounts(&self) -> Vec<Mount> {
        self.all("mount")
            .into_iter()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                Some(Mount {
                    source: f.next()?.to_string(),
                    target: f.next()?.to_string(),
                    fstype: f.next()?.to_string(),
                    options: f.next()?.to_string(),
                })
            })
            .collect()
    }

    /// The mount at `target` (the last one: it is the one on top).
    pub fn mount_at(&self, target: &str) -> Result<Mount> {
        match self.mounts().into_iter().rev().find(|m| m.target == target) {
            Some(m) => Ok(m),
            None => bail!("nothing is mounted at {target}: {:#?}", self.mounts()),
        }
    }
}

/// Waits for the handoff's clock (the uptime line, then the `now at` line
/// that follows it from the probe or a floor) and returns seconds since boot.
pub fn wait_handoff_clock(vm: &mut Vm, timeout: Duration) -> Result<f64> {
    vm.wait_for(UPTIME_PREFIX, timeout)?;
    let line = vm.wait_for(CLOCK_PREFIX, Duration::from_secs(30))?;
    parse_clock(&line)
}

/// The first number of a `/proc/uptime` line (`"1.55 0.00"` is 1.55).
pub fn parse_uptime(text: &str) -> Result<f64> {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an uptime: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_probe_block() {
        let console = [
            "probe.uptime=2.34 0.10",
            "probe.pid=1",
            "[    2.1] random kernel line",
            "probe.mount=overlay / overlay rw,lowerdir=/a:/b 0 0",
            "probe.mount=proc /proc proc rw 0 0",
            "probe.vlc=shared:hello=world",
            "TERRA-PROBE-END",
            "probe.pid=2",
        ];
        let r = Report::parse(console);
        assert_eq!(r.uptime().unwrap(), 2.34);
        assert_eq!(r.all("pid"), ["1"]);
        assert_eq!(r.get("vlc").unwrap(), "shared:hello=world");
        assert_eq!(r.mount_at("/").unwrap().fstype, "overlay");
        assert!(r.mount_at("/sys").is_err());
        assert!(r.get("hostname").is_err());
    }

    #[test]
    fn the_script_is_posix_sh() {
        // busybox sh -n would be ideal; the host's sh checks the syntax too.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
