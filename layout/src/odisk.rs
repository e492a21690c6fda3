//! `odisk`: extra mounts of the partition, in fstab format.
//!
//! ```text
//! # source            target              type   options
//! vlc-cni             /var/lib/cni        none   bind
//! tmpfs               /var/cache          tmpfs  size=64m,mode=0755
//! ```
//!
//! Stage 1 applies these after the overlay root and `/var/lib/containerd`.
//! A bind source that does not start with `/` is a path on the partition
//! (created if missing); targets are paths in the new root (created if
//! missing). Lines starting with `#` and blank lines are ignored.

use crate::partition::check_relative;

/// One extra mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

impl MountEntry {
    /// A bind mount (`bind` or `rbind` among the options).
    pub fn is_bind(&self) -> bool {
        self.options.iter().any(|o| o == "bind" || o == "rbind")
    }

    /// The line as a shell command, for the log.
    pub fn to_shell(&self) -> String {
        let opts = self.options.join(",");
        if self.is_bind() {
            format!("mount -o {opts} {} {}", self.source, self.target)
        } else {
            format!(
                "mount -t {} -o {opts} {} {}",
                self.fstype, self.source, self.target
            )
        }
    }
}

/// A line of `odisk` that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("odisk line {line}: {what} (expected `source target type [options]`, found {found:?})")]
pub struct OdiskError {
    pub line: usize,
    pub what: &'static str,
    pub found: String,
}

/// Parses `odisk`. Every bad line is an error, so a typo is not silently lost.
pub fn parse(text: &str) -> Result<Vec<MountEntry>, OdiskError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what| OdiskError {
            line: i + 1,
            what,
            found: line.to_string(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (source, target, fstype) = match fields.as_slice() {
            [s, t, f, ..] if fields.len() <= 6 => (*s, *t, *f),
            _ => return Err(err("wrong number of fields")),
        };
        let options: Vec<String> = fields
            .get(3)
            .map(|o| {
                o.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
            return Err(err("the target must be an absolute path without `..`"));
        }
        let entry = MountEntry {
            source: source.to_string(),
            target: target.to_string(),
            fstype: fstype.to_string(),
            options,
        };
        if entry.is_bind() && !source.starts_with('/') && check_relative(source).is_err() {
            return Err(err("a bind source on the partition must stay inside it"));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Renders entries back to fstab format.
pub fn render(entries: &[MountEntry]) -> String {
    let mut s = String::from("# Terra mount plan: source target type options\n");
    for e in entries {
        let opts = if e.options.is_empty() {
            "defaults".to_string()
        } else {
            e.options.join(",")
        };
        s.push_str(&format!(
            "{} {} {} {}\n",
            e.source, e.target, e.fstype, opts
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binds_and_filesystems() {
        let text = "# comment\n\nvlc-cni /var/lib/cni none bind\ntmpfs /var/cache tmpfs size=64m,mode=0755 0 0\n";
        let e = parse(text).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e[0].is_bind());
        assert_eq!(e[0].to_shell(), "mount -o bind vlc-cni /var/lib/cni");
        assert_eq!(e[1].options, ["size=64m", "mode=0755"]);
        assert_eq!(
            e[1].to_shell(),
            "mount -t tmpfs -o size=64m,mode=0755 tmpfs /var/cache"
        );
        assert_eq!(parse(&render(&e)).unwrap(), e);
    }

    #[test]
    fn bad_lines_say_what_was_expected() {
        for (text, want) in [
            ("onlyone", "wrong number"),
            ("a b", "wrong number"),
            ("a relative none bind", "absolute"),
            ("a /x/../y none bind", "absolute"),
            ("../etc /x none bind", "inside"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
            assert_eq!(e.line, 1);
        }
    }
}
