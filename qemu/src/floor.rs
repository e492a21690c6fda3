//! The floor of boot time: an initramfs whose `/init` only prints the
//! clock and powers off.
//!
//! Its `/init` is a hand-assembled static x86-64 ELF of a few hundred bytes
//! (no libc, no loader), so the floor measures the kernel alone: any real
//! program (even busybox) would add its own unpacking and start-up time.
//! It prints `probe.uptime=<seconds> <idle>` (the line the test probe
//! prints) and then the head of `/proc/timer_list`, whose `now at <ns>
//! nsecs` line is the same clock to the nanosecond: `/proc/uptime` has 10 ms
//! steps, too coarse to compare boots that differ by a few milliseconds.
//!
//! [`module_floor_init_elf`] is the same program loading kernel modules
//! first: what the kernel alone spends on the modules an initramfs needs.

use std::io::Write;

use anyhow::{Context, Result};

/// The line prefix the floor (and the test probe) prints before the uptime.
pub const UPTIME_PREFIX: &str = "probe.uptime=";

/// The `/proc/timer_list` line the floor (and the test probe) print:
/// `now at <nanoseconds since boot> nsecs`.
pub const CLOCK_PREFIX: &str = "now at ";

/// Seconds since boot from a [`CLOCK_PREFIX`] line.
pub fn parse_clock(line: &str) -> Result<f64> {
    line.strip_prefix(CLOCK_PREFIX)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ns| ns.parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9)
        .with_context(|| format!("expected \"{CLOCK_PREFIX}<ns> nsecs\", found {line:?}"))
}

/// Where the ELF is loaded (the classic non-PIE base).
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;
/// The read buffer on the stack.
const BUF: u32 = 1024;

/// A tiny assembler: bytes, a data table after the code, and RIP-relative
/// fixups from the code to the data.
struct Asm {
    code: Vec<u8>,
    data: Vec<Vec<u8>>,
    /// (position of a disp32, index into `data`)
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn bytes(&mut self, b: &[u8]) {
        self.code.extend_from_slice(b);
    }

    /// `mov r32, imm32` for eax (0), edx (2), esi (6), edi (7): B8+r id.
    fn mov_imm(&mut self, reg: u8, imm: u32) {
        self.code.push(0xB8 + reg);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `lea rdi/rsi, [rip + data]`: 48 8D /r with mod=00 rm=101.
    fn lea_data(&mut self, reg: u8, data: &[u8]) {
        let index = match self.data.iter().position(|d| d == data) {
            Some(i) => i,
            None => {
                self.data.push(data.to_vec());
                self.data.len() - 1
            }
        };
        self.bytes(&[0x48, 0x8D, 0x05 | (reg << 3)]);
        self.fixups.push((self.code.len(), index));
        self.bytes(&[0; 4]);
    }

    /// `lea reg, [rip + "text\0"]`.
    fn lea_cstr(&mut self, reg: u8, text: &str) {
        let mut c = text.as_bytes().to_vec();
        c.push(0);
        self.lea_data(reg, &c);
    }

    fn syscall(&mut self, nr: u32) {
        self.mov_imm(EAX, nr);
        self.bytes(&[0x0F, 0x05]);
    }

    /// write(1, text, len)
    fn print(&mut self, text: &str) {
        self.mov_imm(EDI, 1);
        self.lea_data(ESI, text.as_bytes());
        self.mov_imm(EDX, text.len() as u32);
        self.syscall(SYS_WRITE);
    }

    /// Copies up to `max` bytes of a file to stdout, through the stack buffer.
    fn cat(&mut self, path: &str, max: u32) {
        // fd = open(path, O_RDONLY)
        self.lea_cstr(EDI, path);
        self.bytes(&[0x31, 0xF6]); // xor esi, esi
        self.syscall(SYS_OPEN);
        // n = read(fd, rsp, max)
        self.bytes(&[0x89, 0xC7]); // mov edi, eax
        self.bytes(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
        self.mov_imm(EDX, max.min(BUF));
        self.syscall(SYS_READ);
        // write(1, rsp, n)
        self.bytes(&[0x89, 0xC2]); // mov edx, eax
        self.mov_imm(EDI, 1);
        self.bytes(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
        self.syscall(SYS_WRITE);
    }

    /// finit_module(open(path, O_RDONLY), "", 0). A failure shows in
    /// `/proc/modules`, which the module floor prints.
    fn load_module(&mut self, path: &str) {
        self.lea_cstr(EDI, path);
        self.bytes(&[0x31, 0xF6]); // xor esi, esi
        self.syscall(SYS_OPEN);
        self.bytes(&[0x89, 0xC7]); // mov edi, eax
        self.lea_cstr(ESI, "");
        self.bytes(&[0x31, 0xD2]); // xor edx, edx
        self.syscall(SYS_FINIT_MODULE);
    }

    /// The code, then the data, with the fixups resolved.
    fn link(self) -> Vec<u8> {
        let mut body = self.code;
        let mut offsets = Vec::new();
        for d in &self.data {
            offsets.push(body.len());
            body.extend_from_slice(d);
        }
        for (pos, index) in self.fixups {
            // RIP-relative: from the end of the 4-byte displacement.
            let disp = offsets[index] as i64 - (pos as i64 + 4);
            body[pos..pos + 4].copy_from_slice(&(disp as i32).to_le_bytes());
        }
        body
    }
}

const EAX: u8 = 0;
const EDX: u8 = 2;
const ESI: u8 = 6;
const EDI: u8 = 7;

// x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const SYS_READ: u32 = 0;
const SYS_WRITE: u32 = 1;
const SYS_OPEN: u32 = 2;
const SYS_IOCTL: u32 = 16;
const SYS_MOUNT: u32 = 165;
const SYS_REBOOT: u32 = 169;
const SYS_FINIT_MODULE: u32 = 313;
/// tcdrain() is ioctl(fd, TCSBRK, 1): wait until the console has sent it all.
const TCSBRK: u32 = 0x5409;
// include/uapi/linux/reboot.h
const REBOOT_MAGIC1: u32 = 0xfee1_dead;
const REBOOT_MAGIC2: u32 = 0x2812_1969;
const REBOOT_POWER_OFF: u32 = 0x4321_fedc;

/// The floor's `/init`: mount proc, print the clock, power off.
pub fn floor_init_elf() -> Vec<u8> {
    module_floor_init_elf(&[])
}

/// The floor's `/init` that first loads `modules` (absolute paths in the
/// initramfs, dependencies first) with finit_module, and after the clock
/// prints `/proc/modules`, so that a module that did not load shows.
pub fn module_floor_init_elf(modules: &[String]) -> Vec<u8> {
    let mut a = Asm {
        code: Vec::new(),
        data: Vec::new(),
        fixups: Vec::new(),
    };
    // sub rsp, BUF: the read buffer
    a.bytes(&[0x48, 0x81, 0xEC]);
    a.bytes(&BUF.to_le_bytes());
    // mount("proc", "/proc", "proc", 0, NULL)
    a.lea_cstr(EDI, "proc");
    a.lea_cstr(ESI, "/proc");
    a.bytes(&[0x48, 0x89, 0xFA]); // mov rdx, rdi
    a.bytes(&[0x45, 0x31, 0xD2]); // xor r10d, r10d
    a.bytes(&[0x45, 0x31, 0xC0]); // xor r8d, r8d
    a.syscall(SYS_MOUNT);
    for m in modules {
        a.load_module(m);
    }
    a.print(UPTIME_PREFIX);
    a.cat("/proc/uptime", 64);
    // The first three lines of /proc/timer_list end with "now at N nsecs"
    // (76 bytes while N has 10 digits); a newline ends the partial line after.
    a.cat("/proc/timer_list", 96);
    a.print("\n");
    if !modules.is_empty() {
        a.cat("/proc/modules", BUF);
    }
    // ioctl(1, TCSBRK, 1): drain the console before powering off
    a.mov_imm(EDI, 1);
    a.mov_imm(ESI, TCSBRK);
    a.mov_imm(EDX, 1);
    a.syscall(SYS_IOCTL);
    // reboot(MAGIC1, MAGIC2, POWER_OFF, NULL)
    a.mov_imm(EDI, REBOOT_MAGIC1);
    a.mov_imm(ESI, REBOOT_MAGIC2);
    a.mov_imm(EDX, REBOOT_POWER_OFF);
    a.bytes(&[0x45, 0x31, 0xD2]); // xor r10d, r10d
    a.syscall(SYS_REBOOT);
    a.bytes(&[0xEB, 0xFE]); // jmp . (never reached)
    elf(&a.link())
}

/// Wraps position-dependent code (loaded right after the headers) in an
/// ELF64 executable with one read+execute PT_LOAD segment.
fn elf(body: &[u8]) -> Vec<u8> {
    let total = (EHDR + PHDR + body.len()) as u64;
    let entry = BASE + (EHDR + PHDR) as u64;
    let mut f = Vec::with_capacity(total as usize);
    // e_ident: magic, ELFCLASS64, little-endian, version 1, System V ABI.
    f.extend_from_slice(&[0x7F, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    f.extend_from_slice(&0x3Eu16.to_le_bytes()); // e_machine: x86-64
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&entry.to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    f.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
                                  // The program header: PT_LOAD, R+X, the whole file at BASE.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    f.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    f.extend_from_slice(&total.to_le_bytes()); // p_filesz
    f.extend_from_slice(&total.to_le_bytes()); // p_memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(body);
    f
}

type Entry<'a> = (&'a str, u32, &'a [u8], (u32, u32));

/// The floor initramfs (uncompressed newc): `/dev/console` (the kernel opens
/// it for init's stdout), `/proc`, and the floor `/init`.
pub fn floor_initramfs() -> Result<Vec<u8>> {
    let init = floor_init_elf();
    let mut out = Vec::new();
    // (name, mode, contents, (rdev major, minor)), parents before children.
    let entries: [Entry; 4] = [
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("init", 0o100755, &init, (0, 0)),
        ("proc", 0o040755, b"", (0, 0)),
    ];
    for (ino, (name, mode, data, (major, minor))) in entries.into_iter().enumerate() {
        let mut w = cpio::newc::Builder::new(name)
            .ino(ino as u32 + 1)
            .mode(mode)
            .nlink(if mode & 0o040000 != 0 { 2 } else { 1 })
            .rdev_major(major)
            .rdev_minor(minor)
            .write(&mut out, data.len() as u32);
        w.write_all(data)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_init_is_a_small_elf() {
        let elf = floor_init_elf();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert!(elf.len() < 512, "{} bytes", elf.len());
        // The data follows the code and the prefix is in it.
        let text = String::from_utf8_lossy(&elf);
        assert!(text.contains("/proc/uptime"));
        assert!(text.contains("/proc/timer_list"));
        assert!(text.contains(UPTIME_PREFIX));
        assert!(!text.contains("/proc/modules"));
    }

    #[test]
    fn the_module_floor_loads_each_module_once_and_lists_them() {
        let modules = [
            "/lib/modules/k/a.ko".to_string(),
            "/lib/modules/k/b.ko".to_string(),
        ];
        let elf = module_floor_init_elf(&modules);
        let text = String::from_utf8_lossy(&elf);
        for m in &modules {
            assert_eq!(text.matches(m.as_str()).count(), 1, "{m} stored once");
        }
        assert!(text.contains("/proc/modules"));
        // Two finit_module calls: mov eax, 313 then syscall, once per module.
        let finit = [0xB8, 0x39, 0x01, 0x00, 0x00, 0x0F, 0x05];
        assert_eq!(elf.windows(finit.len()).filter(|w| *w == finit).count(), 2);
        assert!(elf.len() > floor_init_elf().len());
    }

    #[test]
    fn the_clock_line_parses_to_seconds() {
        assert_eq!(parse_clock("now at 1561807039 nsecs").unwrap(), 1.561807039);
        for bad in ["now at", "now at x nsecs", "1561807039", ""] {
            let err = parse_clock(bad).unwrap_err().to_string();
            assert!(err.contains("expected \"now at <ns> nsecs\""), "{err}");
        }
    }

    #[test]
    fn the_floor_initramfs_lists_with_cpio() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor.cpio");
        std::fs::write(&path, floor_initramfs().unwrap()).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-t", "-v", "-F"])
            .arg(&path)
            .output()
            .expect("cpio (scripts/setup installs it)");
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in ["dev", "dev/console", "init", "proc"] {
            assert!(
                list.lines().any(|l| l.ends_with(&format!(" {name}"))),
                "{name} in {list}"
            );
        }
        assert!(
            list.contains("crw-------"),
            "console is a char device: {list}"
        );
    }
}
