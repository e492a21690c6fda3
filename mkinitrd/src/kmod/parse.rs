//! Pure parsers for the index files `depmod` writes into `/lib/modules/KVER/`.
//!
//! Each takes the file's text and returns plain records; reading the files is
//! [`super::ModuleDb::load`]'s job. The formats are those of kmod (see
//! `depmod(8)`, `modprobe.d(5)` for softdep and kmod's `libkmod-config.c`).

use std::fmt;

/// A line that could not be understood, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Which index file (`modules.dep`, ...).
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The error for 1-based line `line` of index file `file`.
    fn at(file: &'static str, line: usize, message: impl Into<String>) -> Self {
        Self {
            file,
            line,
            message: message.into(),
        }
    }
}

/// The lines of an index file that carry something, trimmed and with their
/// 1-based numbers (for errors): blank lines and `#` comments are skipped.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// The lines that start with the word `command` (`softdep`, `alias`), with
/// their numbers and the words after the command; other commands are skipped.
fn command_lines<'a>(
    text: &'a str,
    command: &'a str,
) -> impl Iterator<Item = (usize, &'a str, std::str::SplitWhitespace<'a>)> {
    content_lines(text).filter_map(move |(n, line)| {
        let mut words = line.split_whitespace();
        (words.next() == Some(command)).then_some((n, line, words))
    })
}

/// The canonical form of a module name: kmod treats `-` and `_` as the same
/// character in module names (`usb-storage` is `usb_storage`).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path from the index files:
/// `kernel/drivers/block/virtio_blk.ko.xz` -> `virtio_blk`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.find(".ko") {
        Some(i) => &file[..i],
        None => file,
    };
    normalize(stem)
}

/// One line of `modules.dep`: `PATH: DEP_PATH...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    /// The module's file, relative to the modules directory, as on disk: it
    /// may end in `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`.
    pub path: String,
    /// The files of every module it needs, relative like `path`. depmod
    /// writes the whole transitive closure, ordered so that the last one is
    /// loaded first (modprobe walks the list backwards).
    pub deps: Vec<String>,
}

impl DepEntry {
    /// The module's canonical name (see [`module_name`]).
    pub fn name(&self) -> String {
        module_name(&self.path)
    }
}

/// Parses `modules.dep`. Blank lines and `#` comments are skipped.
pub fn parse_modules_dep(text: &str) -> Result<Vec<DepEntry>, ParseError> {
    let mut entries = Vec::new();
    for (n, line) in content_lines(text) {
        let Some((path, deps)) = line.split_once(':') else {
            return Err(ParseError::at(
                "modules.dep",
                n,
                format!("expected `PATH: DEPS`, got {line:?}"),
            ));
        };
        let path = path.trim();
        if path.is_empty() {
            return Err(ParseError::at("modules.dep", n, "empty module path"));
        }
        entries.push(DepEntry {
            path: path.to_string(),
            deps: deps.split_whitespace().map(str::to_string).collect(),
        });
    }
    Ok(entries)
}

/// One `softdep` line of `modules.softdep`:
/// `softdep MODULE pre: NAME... post: NAME...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftDep {
    /// The module these soft dependencies belong to (canonical name).
    pub module: String,
    /// Modules (or aliases) to load before it, when they exist.
    pub pre: Vec<String>,
    /// Modules (or aliases) to load after it, when they exist.
    pub post: Vec<String>,
}

/// Parses `modules.softdep` (the `softdep` lines that depmod extracts from
/// the modules' `.modinfo`). Names before any `pre:`/`post:` are ignored,
/// as kmod does (Debian's file has a few such lines, e.g. `softdep cifs gcm`).
/// Other commands (`options`, `alias`, ...) are ignored: this file only holds
/// softdeps. Lines for the same module are merged by the caller.
pub fn parse_modules_softdep(text: &str) -> Result<Vec<SoftDep>, ParseError> {
    let mut out = Vec::new();
    for (n, _, mut words) in command_lines(text, "softdep") {
        let Some(module) = words.next() else {
            return Err(ParseError::at(
                "modules.softdep",
                n,
                "softdep without a module name",
            ));
        };
        let mut dep = SoftDep {
            module: normalize(module),
            ..SoftDep::default()
        };
        enum Mode {
            None,
            Pre,
            Post,
        }
        let mut mode = Mode::None;
        for word in words {
            match word {
                "pre:" => mode = Mode::Pre,
                "post:" => mode = Mode::Post,
                name => match mode {
                    Mode::Pre => dep.pre.push(name.to_string()),
                    Mode::Post => dep.post.push(name.to_string()),
                    Mode::None => {}
                },
            }
        }
        out.push(dep);
    }
    Ok(out)
}

/// One line of `modules.alias`: `alias PATTERN MODULE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// A shell-style glob (`*`, `?`, `[...]`), e.g. `virtio:d00000002v*` or
    /// the plain `fs-overlay`.
    pub pattern: String,
    /// The canonical name of the module that provides it.
    pub module: String,
}

impl Alias {
    /// Whether `name` matches this alias. Like kmod, `-` and `_` are the
    /// same outside `[...]` classes on both sides.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(
            normalize_alias(&self.pattern).as_bytes(),
            normalize_alias(name).as_bytes(),
        )
    }
}

/// Parses `modules.alias`. Lines other than `alias` lines are ignored.
pub fn parse_modules_alias(text: &str) -> Result<Vec<Alias>, ParseError> {
    let mut out = Vec::new();
    for (n, line, mut words) in command_lines(text, "alias") {
        match (words.next(), words.next()) {
            (Some(pattern), Some(module)) => out.push(Alias {
                pattern: pattern.to_string(),
                module: normalize(module),
            }),
            _ => {
                return Err(ParseError::at(
                    "modules.alias",
                    n,
                    format!("expected `alias PATTERN MODULE`, got {line:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Parses `modules.builtin`: one path per line of a module compiled into the
/// kernel (`kernel/fs/ext4/ext4.ko`). Returns canonical module names.
pub fn parse_modules_builtin(text: &str) -> Vec<String> {
    content_lines(text)
        .map(|(_, path)| module_name(path))
        .collect()
}

/// Parses the aliases out of `modules.builtin.modinfo` (NUL-separated
/// `MODULE.KEY=VALUE` records; we keep `KEY == alias`), so that a name such
/// as `fs-ext4` or `crypto-crc32c` is known to be built in.
pub fn parse_builtin_modinfo(bytes: &[u8]) -> Vec<Alias> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|rec| std::str::from_utf8(rec).ok())
        .filter_map(|rec| {
            let (key, value) = rec.split_once('=')?;
            let (module, field) = key.split_once('.')?;
            (field == "alias").then(|| Alias {
                pattern: value.to_string(),
                module: normalize(module),
            })
        })
        .collect()
}

/// kmod's `alias_normalize`: `-` becomes `_` except inside `[...]`.
fn normalize_alias(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_class = false;
    for c in s.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// fnmatch(3) without flags, enough for modalias patterns: `*`, `?`, and
/// `[...]` classes with ranges and `!`/`^` negation.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unterminated class is a literal `[`.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`.
/// Returns whether it matched and the index after the class, or `None` if
/// the class is not terminated.
fn match_class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let lo = pattern[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_lines_with_and_without_dependencies() {
        let text = "kernel/a.ko: kernel/b.ko.xz kernel/c-d.ko\n\n# comment\nkernel/b.ko.xz:\n";
        let entries = parse_modules_dep(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "kernel/a.ko");
        assert_eq!(entries[0].deps, ["kernel/b.ko.xz", "kernel/c-d.ko"]);
        assert_eq!(entries[1].name(), "b");
        assert!(entries[1].deps.is_empty());
    }

    #[test]
    fn dep_line_without_colon_is_an_error_with_its_line() {
        let err = parse_modules_dep("kernel/a.ko:\nnonsense\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("modules.dep line 2"), "{err}");
    }

    #[test]
    fn module_names_are_canonical() {
        assert_eq!(
            module_name("kernel/drivers/usb/storage/usb-storage.ko.zst"),
            "usb_storage"
        );
        assert_eq!(module_name("virtio_blk.ko"), "virtio_blk");
        assert_eq!(normalize("nvme-core"), "nvme_core");
    }

    #[test]
    fn softdep_pre_and_post_and_unlabelled_names() {
        let text = "# Soft dependencies\nsoftdep ext4 pre: crc32c post: foo-bar\nsoftdep cifs gcm\nsoftdep btrfs pre: a b\n";
        let deps = parse_modules_softdep(text).unwrap();
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[0].module, "ext4");
        assert_eq!(deps[0].pre, ["crc32c"]);
        assert_eq!(deps[0].post, ["foo-bar"]);
        assert!(deps[1].pre.is_empty() && deps[1].post.is_empty());
        assert_eq!(deps[2].pre, ["a", "b"]);
        assert!(parse_modules_softdep("softdep\n").is_err());
    }

    #[test]
    fn aliases_match_like_kmod() {
        let aliases =
            parse_modules_alias("alias virtio:d00000002v* virtio_blk\nalias fs-overlay overlay\nalias pci:v00008086d*sv*sd*bc01sc0[1-6]i* ahci\n")
                .unwrap();
        assert_eq!(aliases.len(), 3);
        assert!(aliases[0].matches("virtio:d00000002v00001AF4"));
        assert!(!aliases[0].matches("virtio:d00000008v00001AF4"));
        assert!(aliases[1].matches("fs-overlay"));
        assert!(aliases[1].matches("fs_overlay"));
        assert!(aliases[2].matches("pci:v00008086d00001234sv0sd0bc01sc06i01"));
        assert!(!aliases[2].matches("pci:v00008086d00001234sv0sd0bc01sc07i01"));
        assert!(parse_modules_alias("alias lonely\n").is_err());
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(!glob_match(b"a*b*c", b"axxbyy"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"[!x]b", b"ab"));
        assert!(!glob_match(b"[!x]b", b"xb"));
        assert!(glob_match(b"[]]", b"]"));
        assert!(glob_match(b"a[", b"a["));
    }

    #[test]
    fn builtin_paths_and_modinfo_aliases() {
        assert_eq!(
            parse_modules_builtin(
                "kernel/fs/ext4/ext4.ko\nkernel/drivers/nvme/host/nvme-core.ko\n"
            ),
            ["ext4", "nvme_core"]
        );
        let info =
            b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c_generic.alias=crypto-crc32c\0junk\0";
        let aliases = parse_builtin_modinfo(info);
        assert_eq!(aliases.len(), 2);
        assert!(aliases[0].matches("fs-ext4"));
        assert_eq!(aliases[1].module, "crc32c_generic");
    }
}
