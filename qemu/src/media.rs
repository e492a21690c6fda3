//! Install media: the live ISO as a CD (on q35's built-in AHCI) or as a
//! USB stick (usb-storage on an xHCI controller), booted before the disks
//! (`bootindex`), as a person boots a machine from a stick or a disc.

use std::path::{Path, PathBuf};

/// One medium, read-only for the guest... except a USB stick, writable
/// like a real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Medium {
    /// A CD-ROM drive with this image.
    Cd(PathBuf),
    /// A USB stick with this image written to it (raw).
    Usb(PathBuf),
}

impl Medium {
    pub fn path(&self) -> &PathBuf {
        match self {
            Medium::Cd(p) | Medium::Usb(p) => p,
        }
    }
}

fn escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// QEMU's arguments for the media, boot order from 0.
pub fn args(media: &[Medium]) -> Vec<String> {
    let mut args = Vec::new();
    if media.iter().any(|m| matches!(m, Medium::Usb(_))) {
        args.extend(["-device".to_string(), "qemu-xhci,id=xhci".to_string()]);
    }
    for (i, m) in media.iter().enumerate() {
        let (drive, device) = match m {
            Medium::Cd(p) => (
                format!(
                    "file={},format=raw,if=none,id=media{i},media=cdrom,readonly=on",
                    escape(p)
                ),
                format!("ide-cd,drive=media{i},bootindex={i}"),
            ),
            Medium::Usb(p) => (
                format!("file={},format=raw,if=none,id=media{i}", escape(p)),
                format!("usb-storage,bus=xhci.0,drive=media{i},removable=on,bootindex={i}"),
            ),
        };
        args.extend(["-drive".to_string(), drive, "-device".to_string(), device]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cd_and_a_stick_boot_first() {
        let a = args(&[
            Medium::Cd("/x/t.iso".into()),
            Medium::Usb("/x/s,1.img".into()),
        ])
        .join(" ");
        assert!(a.starts_with("-device qemu-xhci,id=xhci "), "{a}");
        assert!(
            a.contains("media=cdrom,readonly=on -device ide-cd,drive=media0,bootindex=0"),
            "{a}"
        );
        assert!(a.contains("file=/x/s,,1.img,format=raw,if=none,id=media1 -device usb-storage,bus=xhci.0,drive=media1,removable=on,bootindex=1"), "{a}");
        assert!(args(&[]).is_empty());
    }
}
