//! What goes into the initramfs: from a [`Spec`] (the command line, resolved)
//! to an [`Archive`], following the contract with init in
//! [`terra_layout::initramfs`] (`/init`, the skeleton of directories and
//! device nodes, modules under `/lib/modules/KVER/`, the module list and
//! `modules.why`), plus busybox.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use terra_layout::initramfs::{self, ModuleList, NodeKind, SKELETON};

use crate::archive::{clean_path, Archive};
use crate::compress;
use crate::elf;
use crate::kmod::{self, ModuleDb, ModuleSet, Request, Resolution, Root};

/// busybox applets linked in `/bin` with `--shell` (`sh` is the one init
/// needs; the rest make the rescue shell usable).
pub const SHELL_APPLETS: &[&str] = &[
    "cat", "dmesg", "ls", "lsmod", "mkdir", "mount", "ps", "sh", "umount", "blkid", "insmod", "ip",
    "poweroff", "reboot",
];

/// Parses `--module-options "NAME OPTIONS"` (as in modprobe.d's `options`
/// lines) into the canonical name and the options.
pub fn parse_module_options(s: &str) -> Result<(String, String), String> {
    match s.trim().split_once(char::is_whitespace) {
        Some((name, options)) if !options.trim().is_empty() => {
            Ok((kmod::normalize(name), options.trim().to_string()))
        }
        _ => Err(format!(
            "{s:?}: expected \"MODULE OPTIONS\", e.g. \"virtio_blk queue_depth=64\""
        )),
    }
}

/// A host file or directory to copy in: `SRC[:DEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path on the build host.
    pub src: PathBuf,
    /// Absolute path in the initramfs (defaults to `src` when it is absolute).
    pub dest: String,
}

impl FromStr for FileSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (src, dest) = match s.split_once(':') {
            Some((src, dest)) => (src, dest.to_string()),
            None => (s, s.to_string()),
        };
        if src.is_empty() {
            return Err(format!("{s:?}: empty source; use SRC[:DEST]"));
        }
        if !dest.starts_with('/') {
            return Err(format!(
                "{s:?}: the destination in the initramfs must be absolute; use SRC:/DEST"
            ));
        }
        Ok(FileSpec {
            src: PathBuf::from(src),
            dest,
        })
    }
}

/// Everything a build needs, with defaults already applied.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The kernel release the modules are for (`uname -r` of the target).
    pub kernel_version: String,
    /// Where that kernel's modules and index files are.
    pub modules_dir: PathBuf,
    /// Modules named with `--module` (names or aliases).
    pub modules: Vec<String>,
    /// The default set added to them.
    pub module_set: ModuleSet,
    /// Parameters for modules, by canonical name (`virtio_blk` ->
    /// `queue_depth=64`), written after the module's path in the load order.
    pub module_options: BTreeMap<String, String>,
    /// The static init binary, stored as `/init`.
    pub init: PathBuf,
    /// A static busybox to add as `/bin/busybox` with `/bin/sh`, if any.
    pub busybox: Option<PathBuf>,
    /// Extra files.
    pub files: Vec<FileSpec>,
    /// mtime of every entry.
    pub mtime: u32,
}

/// The built archive and the module resolution behind it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The contents, ready to write.
    pub archive: Archive,
    /// Which modules are in it, in load order, and why.
    pub modules: Resolution,
}

/// Builds the archive. Every error names the file or module concerned; no
/// output file is touched here.
pub fn build(spec: &Spec) -> Result<Image> {
    let mut archive = Archive::new();
    archive.set_mtime(spec.mtime);
    skeleton(&mut archive)?;

    let init = read_static(&spec.init, "init").with_context(|| {
        format!(
            "the init {} (build it with scripts/build, or pass --init PATH)",
            spec.init.display()
        )
    })?;
    archive.file("init", init, 0o755)?;

    let modules = add_modules(&mut archive, spec)?;

    if let Some(busybox) = &spec.busybox {
        let data = read_static(busybox, "busybox").with_context(|| {
            format!(
                "the shell {} (install busybox-static, or pass --busybox PATH)",
                busybox.display()
            )
        })?;
        archive.file("bin/busybox", data, 0o755)?;
        for applet in SHELL_APPLETS {
            archive.symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }

    for f in &spec.files {
        add_host_path(&mut archive, &f.src, &f.dest)
            .with_context(|| format!("--file {}:{}", f.src.display(), f.dest))?;
    }
    Ok(Image { archive, modules })
}

/// The directories and device nodes of the contract with init
/// ([`terra_layout::initramfs::SKELETON`]).
fn skeleton(archive: &mut Archive) -> Result<()> {
    for node in SKELETON {
        match node.kind {
            NodeKind::Dir => archive.dir(node.path, node.mode)?,
            NodeKind::CharDev { major, minor } => {
                archive.char_dev(node.path, major, minor, node.mode)?
            }
        }
    }
    Ok(())
}

/// Reads a binary that must run in the initramfs: it must exist and, if it
/// is ELF, be static.
fn read_static(path: &Path, what: &str) -> Result<Vec<u8>> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(interp) = elf::interpreter(&data) {
        bail!(
            "{} is dynamically linked (it asks for {interp}); the initramfs has no loader, so the {what} must be static",
            path.display()
        );
    }
    Ok(data)
}

/// Resolves the requested modules and adds them, the load order and the
/// reasons.
fn add_modules(archive: &mut Archive, spec: &Spec) -> Result<Resolution> {
    let mut requests: Vec<Request> = spec
        .module_set
        .modules()
        .iter()
        .map(|name| Request {
            name: name.to_string(),
            root: Root::Set(spec.module_set),
        })
        .collect();
    requests.extend(spec.modules.iter().map(|name| Request {
        name: name.clone(),
        root: Root::Requested,
    }));

    let resolution = if requests.is_empty() {
        Resolution::default()
    } else {
        let db = load_db(spec)?;
        kmod::resolve(&db, &requests).with_context(|| format!("kernel {}", spec.kernel_version))?
    };

    let mut order = ModuleList::new();
    order.comment(&format!(
        "Kernel modules for {}, in load order (dependencies first), written by mkinitrd.",
        spec.kernel_version
    ))?;
    order.comment(&format!(
        "Why each is here: {}",
        initramfs::MODULES_WHY_FILE
    ))?;
    for m in &resolution.load {
        let src = spec.modules_dir.join(&m.path);
        let data = fs::read(&src)
            .with_context(|| format!("reading module {} ({})", m.name, src.display()))?;
        let data = compress::module_contents(&m.path, data)?;
        let dest = format!(
            "lib/modules/{}/{}",
            spec.kernel_version,
            compress::uncompressed_module_path(&m.path)
        );
        archive.file(&dest, data, 0o644)?;
        let options = spec.module_options.get(&m.name).map_or("", String::as_str);
        order
            .push(&format!("/{dest}"), options)
            .with_context(|| format!("module {}", m.name))?;
    }
    for name in spec.module_options.keys() {
        if !resolution.load.iter().any(|m| &m.name == name) {
            bail!(
                "--module-options for {name}, which is not in the initramfs (add --module {name})"
            );
        }
    }
    archive.file(initramfs::MODULES_FILE, order.render().into_bytes(), 0o644)?;
    archive.file(
        initramfs::MODULES_WHY_FILE,
        resolution.why_text().into_bytes(),
        0o644,
    )?;
    Ok(resolution)
}

fn load_db(spec: &Spec) -> Result<ModuleDb> {
    if !spec.modules_dir.is_dir() {
        let parent = spec.modules_dir.parent().unwrap_or(Path::new("/"));
        let mut known: Vec<String> = fs::read_dir(parent)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        let seen = if known.is_empty() {
            format!("{} is empty or missing", parent.display())
        } else {
            format!("{} has: {}", parent.display(), known.join(", "))
        };
        bail!(
            "no modules for kernel version {:?}: {} does not exist ({seen}); install that kernel, or pass --modules-dir",
            spec.kernel_version,
            spec.modules_dir.display()
        );
    }
    ModuleDb::load(&spec.modules_dir)
}

/// Adds a host file, symlink or directory (recursively) at `dest`.
fn add_host_path(archive: &mut Archive, src: &Path, dest: &str) -> Result<()> {
    let dest = clean_path(dest)?;
    let meta =
        fs::symlink_metadata(src).with_context(|| format!("{} is missing", src.display()))?;
    let perm = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(src).with_context(|| format!("reading link {}", src.display()))?;
        archive.symlink(&dest, &target.to_string_lossy())
    } else if meta.is_dir() {
        archive.dir(&dest, perm)?;
        let mut children: Vec<_> = fs::read_dir(src)
            .with_context(|| format!("listing {}", src.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("listing {}", src.display()))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name();
            add_host_path(
                archive,
                &child.path(),
                &format!("{dest}/{}", name.to_string_lossy()),
            )?;
        }
        Ok(())
    } else if meta.is_file() {
        let data = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        archive.file(&dest, data, perm)
    } else {
        bail!(
            "{} is neither a file, a directory nor a symlink",
            src.display()
        )
    }
}
