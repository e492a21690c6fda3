//! The initramfs: what `mkinitrd` writes and stage 1 reads.
//!
//! Two things cross from one to the other, and both are here so that neither
//! side can drift: the directory skeleton ([`SKELETON`]: the directories and
//! device nodes the image must hold before `/init` runs) and the module list
//! ([`ModuleList`] at [`MODULES_FILE`]: which kernel modules stage 1 loads, in
//! which order, with which parameters).
//!
//! The module list is plain text, one module per line, dependencies first:
//!
//! ```text
//! # Kernel modules for 6.1.0-9-cloud-amd64, in load order (dependencies first), written by mkinitrd.
//! # Why each is here: /etc/terra/modules.why
//! /lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/virtio/virtio.ko
//! /lib/modules/6.1.0-9-cloud-amd64/kernel/drivers/block/virtio_blk.ko queue_depth=64
//! ```
//!
//! `<absolute path>[ <parameters>]` per line; `#` comments and blank lines
//! are ignored. Reading never fails (PID 1 boots with whatever it finds);
//! writing refuses what the format cannot carry, so that whatever
//! [`ModuleList::render`] writes, [`ModuleList::parse`] reads back unchanged.

use std::fmt;

/// The module list, as stage 1 sees it (`mkinitrd` stores it without the
/// leading `/`, as every cpio member name).
pub const MODULES_FILE: &str = "/etc/terra/modules";

/// Why each module is in the image, for a person and `mkinitrd --list`
/// (stage 1 does not read it).
pub const MODULES_WHY_FILE: &str = "/etc/terra/modules.why";

/// Where stage 1 mounts the chosen version before switching root to it.
pub const NEWROOT: &str = "/newroot";

/// One entry of the skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Absolute path inside the initramfs.
    pub path: &'static str,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits (`0o1777` for a sticky directory).
    pub mode: u32,
}

/// The kinds of node the skeleton holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    /// A character device with its major and minor numbers.
    CharDev {
        major: u32,
        minor: u32,
    },
}

impl Node {
    const fn dir(path: &'static str, mode: u32) -> Self {
        Self {
            path,
            kind: NodeKind::Dir,
            mode,
        }
    }

    const fn char_dev(path: &'static str, major: u32, minor: u32, mode: u32) -> Self {
        Self {
            path,
            kind: NodeKind::CharDev { major, minor },
            mode,
        }
    }
}

/// What every Terra initramfs holds besides `/init`, the modules and the
/// optional shell. Stage 1 still creates what it mounts on (`mkdir -p`), so a
/// hand-made image works too; these make the common path need no writes.
pub const SKELETON: &[Node] = &[
    // busybox and its applets, when built with a shell (the rescue shell).
    Node::dir("/bin", 0o755),
    // devtmpfs is mounted here; the two nodes below exist before it is.
    Node::dir("/dev", 0o755),
    // The module list and its reasons.
    Node::dir("/etc/terra", 0o755),
    Node::dir(NEWROOT, 0o755),
    Node::dir("/proc", 0o755),
    Node::dir("/run", 0o755),
    Node::dir("/sys", 0o755),
    Node::dir("/tmp", 0o1777),
    // The kernel opens /dev/console for init's stdio before running /init,
    // before any devtmpfs exists (init/main.c: console_on_rootfs).
    Node::char_dev("/dev/console", 5, 1, 0o600),
    Node::char_dev("/dev/null", 1, 3, 0o666),
];

/// One module of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Absolute path of the `.ko` file inside the initramfs.
    pub path: String,
    /// Parameters passed to the module when it is loaded (may be empty).
    pub params: String,
}

impl Module {
    /// `virtio_blk` for `/lib/modules/K/kernel/drivers/block/virtio_blk.ko`.
    pub fn name(&self) -> &str {
        let file = self.path.rsplit('/').next().unwrap_or(&self.path);
        file.strip_suffix(".ko").unwrap_or(file)
    }
}

/// The list of modules stage 1 loads, in order, with the comments before
/// them (for a person reading the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleList {
    comments: Vec<String>,
    modules: Vec<Module>,
}

/// Something the module list cannot carry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModuleListError {
    #[error("module path {0:?} must be absolute (stage 1 loads it by that path)")]
    RelativePath(String),
    #[error("module path {0:?} contains whitespace, which separates the path from its parameters")]
    Whitespace(String),
    #[error("{what} {text:?} contains a line break; the module list has one entry per line")]
    LineBreak { what: &'static str, text: String },
}

impl ModuleList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the text of [`MODULES_FILE`]. Never fails: a line that is not
    /// a usable module shows up when stage 1 tries to load it, by its path.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::new();
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.strip_prefix(' ').unwrap_or(comment);
                list.comments.push(comment.to_string());
            } else if !line.is_empty() {
                let (path, params) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                list.modules.push(Module {
                    path: path.to_string(),
                    params: params.trim().to_string(),
                });
            }
        }
        list
    }

    /// Adds a comment line, written before the modules.
    pub fn comment(&mut self, text: &str) -> Result<(), ModuleListError> {
        no_line_break("comment", text)?;
        self.comments.push(text.trim_end().to_string());
        Ok(())
    }

    /// Adds a module after the ones already listed (so dependencies go
    /// first). Surrounding whitespace of `params` is dropped.
    pub fn push(&mut self, path: &str, params: &str) -> Result<(), ModuleListError> {
        if !path.starts_with('/') {
            return Err(ModuleListError::RelativePath(path.to_string()));
        }
        if path.contains(char::is_whitespace) {
            return Err(ModuleListError::Whitespace(path.to_string()));
        }
        no_line_break("module parameters", params)?;
        self.modules.push(Module {
            path: path.to_string(),
            params: params.trim().to_string(),
        });
        Ok(())
    }

    /// The modules, in load order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The comment lines, without their `# `.
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// The text of [`MODULES_FILE`]: the comments, then one module a line.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ModuleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.comments {
            if c.is_empty() {
                writeln!(f, "#")?;
            } else {
                writeln!(f, "# {c}")?;
            }
        }
        for m in &self.modules {
            if m.params.is_empty() {
                writeln!(f, "{}", m.path)?;
            } else {
                writeln!(f, "{} {}", m.path, m.params)?;
            }
        }
        Ok(())
    }
}

fn no_line_break(what: &'static str, text: &str) -> Result<(), ModuleListError> {
    if text.contains(['\n', '\r']) {
        return Err(ModuleListError::LineBreak {
            what,
            text: text.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
