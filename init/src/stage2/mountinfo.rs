//! `/proc/self/mountinfo`, parsed (proc(5)): what is mounted where, in the
//! order the kernel lists it (parents before children).

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    /// Where it is mounted, unescaped.
    pub target: String,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (`rw`, `ro`, `nosuid`, …).
    pub options: String,
}

impl MountInfo {
    /// A mount known only by its target (when mountinfo cannot be read).
    pub fn at(target: &str) -> Self {
        Self {
            id: 0,
            parent: 0,
            target: target.to_string(),
            fstype: String::new(),
            source: String::new(),
            options: String::new(),
        }
    }
}

/// Parses the whole file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
// (1)(2)(3)   (4)   (5)      (6)      (7)    (8) (9)   (10)         (11)
fn parse_line(line: &str) -> Option<MountInfo> {
    let (head, tail) = line.split_once(" - ")?;
    let mut h = head.split(' ');
    let id = h.next()?.parse().ok()?;
    let parent = h.next()?.parse().ok()?;
    let _devno = h.next()?;
    let _root = h.next()?;
    let target = unescape(h.next()?);
    let options = h.next()?.to_string();
    let mut t = tail.split(' ');
    let fstype = t.next()?.to_string();
    let source = unescape(t.next()?);
    Some(MountInfo {
        id,
        parent,
        target,
        fstype,
        source,
        options,
    })
}

/// The kernel escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=1000k
24 22 254:0 / /run/terra/partition rw,relatime shared:1 - ext4 /dev/vda rw
25 22 254:0 /vlc /var/lib/containerd rw,relatime - ext4 /dev/vda rw
26 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn parses_targets_types_and_sources() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].target, "/");
        assert_eq!(m[0].fstype, "overlay");
        assert_eq!(m[2].target, "/run/terra/partition");
        assert_eq!(m[2].source, "/dev/vda");
        assert_eq!(m[3].parent, 22);
        assert_eq!(m[3].id, 25);
        assert_eq!(m[4].target, "/mnt/with space");
        assert_eq!(m[1].options, "rw,nosuid");
    }

    #[test]
    fn unescapes_octal_and_keeps_stray_backslashes() {
        assert_eq!(unescape("a\\011b\\134c"), "a\tb\\c");
        assert_eq!(unescape("a\\9"), "a\\9");
        assert_eq!(unescape("end\\"), "end\\");
    }
}
