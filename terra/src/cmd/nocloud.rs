//! `terra nocloud`: applies a cloud-init NoCloud seed, run once at boot by
//! stage 2 as the service `nocloud` (docs/network.md). The seed is a
//! filesystem labelled `cidata`, FAT (`cloud-localds -f vfat`) or ISO 9660
//! (`cloud-localds`' default, Rock Ridge and Joliet names), holding
//! `meta-data` and `user-data`, read in userspace (no kernel module); its
//! host name (`local-hostname`, or `hostname` in user-data) and
//! `ssh_authorized_keys` are used, checked as the machine config checks
//! them. The machine config's host name wins over the seed's; the seed's
//! wins over a DHCP lease's.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use terra_layout::machine::{Hostname, SshKey};
use yaml_rust2::{Yaml, YamlLoader};

/// Apply a cloud-init NoCloud seed (a FAT or ISO 9660 filesystem labelled cidata):
/// its host name and ssh keys. Run by Terra's init at boot.
#[derive(Debug, Args)]
pub struct NocloudArgs {
    /// The seed device (default: the first block device labelled cidata).
    #[arg(long, value_name = "DEV")]
    pub device: Option<PathBuf>,
    /// Where block devices are listed (for tests).
    #[arg(long, default_value = "/sys/class/block", hide = true)]
    pub sys_block: PathBuf,
    /// The root the keys are written under (for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    /// Do not set the host name (the machine config names the host).
    #[arg(long)]
    pub keep_hostname: bool,
}

/// What a seed says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seed {
    pub hostname: Option<Hostname>,
    pub keys: Vec<SshKey>,
}

/// Set when the seed named the host, so the DHCP event script keeps it.
const HOSTNAME_FIXED: &str = "run/terra/hostname-fixed";

pub fn run(a: NocloudArgs) -> Result<()> {
    let device = match a.device {
        Some(d) => d,
        None => match find_seed(&a.sys_block)? {
            Some(d) => d,
            None => {
                // stdout, not the log: stage 2 prefixes it with the service's name.
                println!("no NoCloud seed (no FAT or ISO 9660 filesystem labelled cidata)");
                return Ok(());
            }
        },
    };
    let seed = read_seed(&device)?;
    println!(
        "NoCloud seed on {}: hostname {}, {} ssh key(s)",
        device.display(),
        seed.hostname.as_ref().map_or("none", |h| h.as_str()),
        seed.keys.len()
    );
    if let (Some(name), false) = (&seed.hostname, a.keep_hostname) {
        rustix::system::sethostname(name.as_str().as_bytes())
            .with_context(|| format!("setting the host name {name}"))?;
    }
    if seed.hostname.is_some() && !a.keep_hostname {
        let marker = a.root.join(HOSTNAME_FIXED);
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&marker, "nocloud\n")?;
    }
    if !seed.keys.is_empty() {
        let dir = a.root.join("root/.ssh");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("authorized_keys");
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        for k in &seed.keys {
            if !text.lines().any(|l| l == k.as_str()) {
                text.push_str(&format!("{k}\n"));
            }
        }
        terra_layout::atomic::write_atomic(&file, text.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

/// The first whole disk, partition or CD whose FAT or ISO 9660 label is
/// `cidata`, in any case (some tools store labels upper-case).
fn find_seed(sys_block: &Path) -> Result<Option<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(sys_block)
        .with_context(|| format!("reading {}", sys_block.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    for name in names {
        let dev = Path::new("/dev").join(&name);
        let Ok(mut f) = std::fs::File::open(&dev) else {
            continue;
        };
        if label(&mut f).is_some_and(|l| l.eq_ignore_ascii_case("cidata")) {
            return Ok(Some(dev));
        }
    }
    Ok(None)
}

/// Where the ISO 9660 volume descriptors start: sector 16 of 2048 bytes.
const ISO_DESCRIPTORS: u64 = 16 * 2048;

/// The FAT or ISO 9660 label of what `f` holds, if it is either.
fn label(f: &mut std::fs::File) -> Option<String> {
    let mut boot = [0u8; 512];
    f.read_exact(&mut boot).ok()?;
    if let Some(l) = fat_label(&boot) {
        return Some(l);
    }
    let mut pvd = [0u8; 2048];
    f.seek(SeekFrom::Start(ISO_DESCRIPTORS)).ok()?;
    f.read_exact(&mut pvd).ok()?;
    iso_label(&pvd)
}

/// The volume identifier of an ISO 9660 primary volume descriptor (type 1,
/// `CD001`; the identifier is 32 bytes at offset 40, space-padded).
pub fn iso_label(pvd: &[u8; 2048]) -> Option<String> {
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return None;
    }
    Some(String::from_utf8_lossy(&pvd[40..72]).trim_end().to_string())
}

/// The volume label in a FAT boot sector, if it is one: FAT32 keeps it at
/// offset 71 (after the extended boot signature 0x29 at 66), FAT12/16 at 43
/// (signature at 38); the boot sector ends with 0x55 0xAA.
pub fn fat_label(boot: &[u8; 512]) -> Option<String> {
    if boot[510..512] != [0x55, 0xAA] {
        return None;
    }
    let at = if &boot[82..87] == b"FAT32" && boot[66] == 0x29 {
        71
    } else if boot[54..57] == *b"FAT" && boot[38] == 0x29 {
        43
    } else {
        return None;
    };
    let label = String::from_utf8_lossy(&boot[at..at + 11])
        .trim_end()
        .to_string();
    Some(label)
}

/// Reads `meta-data` and `user-data` from the seed on `device`: ISO 9660
/// when it has a primary volume descriptor, FAT otherwise.
fn read_seed(device: &Path) -> Result<Seed> {
    let mut f =
        std::fs::File::open(device).with_context(|| format!("opening {}", device.display()))?;
    let mut pvd = [0u8; 2048];
    let is_iso = f.seek(SeekFrom::Start(ISO_DESCRIPTORS)).is_ok()
        && f.read_exact(&mut pvd).is_ok()
        && iso_label(&pvd).is_some();
    f.seek(SeekFrom::Start(0))?;
    if is_iso {
        return read_iso_seed(f, device);
    }
    let fs = fatfs::FileSystem::new(f, fatfs::FsOptions::new())
        .with_context(|| format!("{}: not a FAT filesystem", device.display()))?;
    let read = |name: &str| -> Result<String> {
        let mut text = String::new();
        match fs.root_dir().open_file(name) {
            Ok(mut file) => {
                file.read_to_string(&mut text)
                    .with_context(|| format!("reading {name} on {}", device.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("opening {name}")),
        }
        Ok(text)
    };
    parse_seed(&read("meta-data")?, &read("user-data")?)
}

/// The ISO 9660 seed's two files, by their Rock Ridge or Joliet names
/// (`meta-data` has a hyphen, which plain ISO 9660 names cannot hold).
fn read_iso_seed(f: std::fs::File, device: &Path) -> Result<Seed> {
    let d = device.display();
    let iso = hadris_iso::sync::IsoImage::open(f)
        .map_err(|e| anyhow::anyhow!("{d}: not an ISO 9660 filesystem: {e}"))?;
    let read = |name: &str| -> Result<String> {
        let Some(entry) = iso
            .find_path(name)
            .map_err(|e| anyhow::anyhow!("looking for {name} on {d}: {e}"))?
        else {
            return Ok(String::new());
        };
        let bytes = iso
            .read_file(&entry)
            .map_err(|e| anyhow::anyhow!("reading {name} on {d}: {e}"))?;
        String::from_utf8(bytes).with_context(|| format!("{name} on {d} is not UTF-8"))
    };
    parse_seed(&read("meta-data")?, &read("user-data")?)
}

/// Parses a seed's two files: `local-hostname` from meta-data, and from a
/// `#cloud-config` user-data `hostname` (which wins) and
/// `ssh_authorized_keys`. Other keys are ignored (cloud-init has hundreds);
/// a bad host name or key is an error naming it.
pub fn parse_seed(meta_data: &str, user_data: &str) -> Result<Seed> {
    let meta = first_doc(meta_data).context("meta-data is not YAML")?;
    let mut name = meta["local-hostname"].as_str().map(str::to_string);
    let mut keys = Vec::new();
    if user_data.trim_start().starts_with("#cloud-config") {
        let user = first_doc(user_data).context("user-data is not YAML")?;
        if let Some(h) = user["hostname"].as_str() {
            name = Some(h.to_string());
        }
        match &user["ssh_authorized_keys"] {
            Yaml::Array(list) => {
                for k in list {
                    let Some(k) = k.as_str() else {
                        bail!("user-data: ssh_authorized_keys: expected strings, found {k:?}");
                    };
                    keys.push(
                        SshKey::try_from(k.trim().to_string())
                            .map_err(|e| anyhow::anyhow!("user-data: ssh_authorized_keys: {e}"))?,
                    );
                }
            }
            Yaml::BadValue | Yaml::Null => {}
            other => bail!("user-data: ssh_authorized_keys: expected a list, found {other:?}"),
        }
    } else if !user_data.trim().is_empty() {
        log::warn!("user-data is not #cloud-config: ignored");
    }
    let hostname = name
        .map(|n| Hostname::try_from(n).map_err(|e| anyhow::anyhow!("hostname: {e}")))
        .transpose()?;
    Ok(Seed { hostname, keys })
}

fn first_doc(text: &str) -> Result<Yaml> {
    let docs = YamlLoader::load_from_str(text)?;
    Ok(docs.into_iter().next().unwrap_or(Yaml::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3cRIuq5RixcFdgbtqC6dmUKAbh8BbG6LrHsXoKrbv me@host";

    #[test]
    fn reads_the_hostname_and_keys() {
        let s = parse_seed(
            "instance-id: i-1\nlocal-hostname: seed-host\n",
            &format!("#cloud-config\nssh_authorized_keys:\n  - {KEY}\npackages: [vim]\n"),
        )
        .unwrap();
        assert_eq!(s.hostname.unwrap().as_str(), "seed-host");
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.keys[0].as_str(), KEY);
        let s = parse_seed("local-hostname: a\n", "#cloud-config\nhostname: b\n").unwrap();
        assert_eq!(s.hostname.unwrap().as_str(), "b");
        assert_eq!(parse_seed("", "").unwrap(), Seed::default());
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse_seed("local-hostname: bad name\n", "").unwrap_err();
        assert!(format!("{e:#}").contains("expected a host name"), "{e:#}");
        let e = parse_seed(
            "",
            "#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 x\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("ssh_authorized_keys"), "{e:#}");
        let e = parse_seed("", "#cloud-config\nssh_authorized_keys: one\n").unwrap_err();
        assert!(format!("{e:#}").contains("expected a list"), "{e:#}");
    }

    #[test]
    fn finds_the_label_in_mkfs_vfat_images() {
        let dir = tempfile::tempdir().unwrap();
        for (args, fat) in [(&["-F", "12"][..], 12), (&["-F", "32"][..], 32)] {
            let img = dir.path().join(format!("seed{fat}.img"));
            std::fs::File::create(&img)
                .unwrap()
                .set_len(if fat == 32 { 40 << 20 } else { 2 << 20 })
                .unwrap();
            let st = std::process::Command::new("mkfs.vfat")
                .args(args)
                .args(["-n", "cidata"])
                .arg(&img)
                .output()
                .unwrap();
            assert!(st.status.success(), "{st:?}");
            let mut boot = [0u8; 512];
            std::fs::File::open(&img)
                .unwrap()
                .read_exact(&mut boot)
                .unwrap();
            assert_eq!(fat_label(&boot).as_deref(), Some("cidata"), "FAT{fat}");
        }
        assert_eq!(fat_label(&[0u8; 512]), None);
    }

    /// What `cloud-localds` makes by default (genisoimage -volid cidata
    /// -joliet -rock), and the same with Joliet names only, made with
    /// xorriso's genisoimage mode.
    #[test]
    fn reads_iso_9660_seeds_by_rock_ridge_and_joliet_names() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("meta-data"), "local-hostname: iso-host\n").unwrap();
        std::fs::write(
            src.join("user-data"),
            format!("#cloud-config\nssh_authorized_keys:\n  - {KEY}\n"),
        )
        .unwrap();
        for names in [&["-joliet", "-rock"][..], &["-joliet"][..]] {
            let iso = dir.path().join(format!("seed{}.iso", names.len()));
            let out = std::process::Command::new("xorriso")
                .args(["-as", "genisoimage", "-quiet", "-volid", "cidata"])
                .args(names)
                .arg("-output")
                .arg(&iso)
                .arg(src.join("user-data"))
                .arg(src.join("meta-data"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let mut f = std::fs::File::open(&iso).unwrap();
            assert_eq!(label(&mut f).as_deref(), Some("cidata"), "{names:?}");
            let seed = read_seed(&iso).unwrap();
            assert_eq!(seed.hostname.unwrap().as_str(), "iso-host", "{names:?}");
            assert_eq!(seed.keys.len(), 1, "{names:?}");
        }
        assert_eq!(iso_label(&[0u8; 2048]), None);
    }
}
