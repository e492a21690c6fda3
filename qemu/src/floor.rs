//! The floor of boot time: an initramfs whose `/init` only prints
//! `/proc/uptime` and powers off.
//!
//! Its `/init` is a hand-assembled static x86-64 ELF of a few hundred bytes
//! (no libc, no loader), so the floor measures the kernel alone: any real
//! program (even busybox) would add its own unpacking and start-up time.
//! It prints `probe.uptime=<seconds> <idle>`, the same line the test probe prints.

use std::io::Write;

use anyhow::Result;

/// The line prefix the floor (and the test probe) prints before the uptime.
pub const UPTIME_PREFIX: &str = "probe.uptime=";

/// Where the ELF is loaded (the classic non-PIE base).
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// A tiny assembler: bytes plus RIP-relative fixups to data labels.
struct Asm {
    code: Vec<u8>,
    /// (position of a disp32, data label)
    fixups: Vec<(usize, &'static str)>,
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

    /// `lea rdi/rsi, [rip + label]`: 48 8D /r with mod=00 rm=101.
    fn lea_rip(&mut self, reg: u8, label: &'static str) {
        self.bytes(&[0x48, 0x8D, 0x05 | (reg << 3)]);
        self.fixups.push((self.code.len(), label));
        self.bytes(&[0; 4]);
    }

    fn syscall(&mut self, nr: u32) {
        self.mov_imm(EAX, nr);
        self.bytes(&[0x0F, 0x05]);
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
/// tcdrain() is ioctl(fd, TCSBRK, 1): wait until the console has sent it all.
const TCSBRK: u32 = 0x5409;
// include/uapi/linux/reboot.h
const REBOOT_MAGIC1: u32 = 0xfee1_dead;
const REBOOT_MAGIC2: u32 = 0x2812_1969;
const REBOOT_POWER_OFF: u32 = 0x4321_fedc;

/// The floor's `/init`: mount proc, print the uptime, power off.
pub fn floor_init_elf() -> Vec<u8> {
    let mut a = Asm {
        code: Vec::new(),
        fixups: Vec::new(),
    };
    a.bytes(&[0x48, 0x83, 0xEC, 0x40]); // sub rsp, 64: a read buffer
                                        // mount("proc", "/proc", "proc", 0, NULL)
    a.lea_rip(EDI, "proc");
    a.lea_rip(ESI, "/proc");
    a.bytes(&[0x48, 0x89, 0xFA]); // mov rdx, rdi
    a.bytes(&[0x45, 0x31, 0xD2]); // xor r10d, r10d
    a.bytes(&[0x45, 0x31, 0xC0]); // xor r8d, r8d
    a.syscall(SYS_MOUNT);
    // write(1, "probe.uptime=", 13)
    a.mov_imm(EDI, 1);
    a.lea_rip(ESI, "prefix");
    a.mov_imm(EDX, UPTIME_PREFIX.len() as u32);
    a.syscall(SYS_WRITE);
    // fd = open("/proc/uptime", O_RDONLY)
    a.lea_rip(EDI, "/proc/uptime");
    a.bytes(&[0x31, 0xF6]); // xor esi, esi
    a.syscall(SYS_OPEN);
    // n = read(fd, rsp, 64)
    a.bytes(&[0x89, 0xC7]); // mov edi, eax
    a.bytes(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
    a.mov_imm(EDX, 64);
    a.syscall(SYS_READ);
    // write(1, rsp, n)
    a.bytes(&[0x89, 0xC2]); // mov edx, eax
    a.mov_imm(EDI, 1);
    a.bytes(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
    a.syscall(SYS_WRITE);
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

    let data: [(&str, &[u8]); 4] = [
        ("proc", b"proc\0"),
        ("/proc", b"/proc\0"),
        ("/proc/uptime", b"/proc/uptime\0"),
        ("prefix", UPTIME_PREFIX.as_bytes()),
    ];
    let mut labels = Vec::new();
    let mut body = a.code.clone();
    for (label, bytes) in data {
        labels.push((label, body.len()));
        body.extend_from_slice(bytes);
    }
    for (pos, label) in &a.fixups {
        let target = labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, o)| *o)
            .unwrap_or(0);
        // RIP-relative: from the end of the 4-byte displacement.
        let disp = target as i64 - (*pos as i64 + 4);
        body[*pos..*pos + 4].copy_from_slice(&(disp as i32).to_le_bytes());
    }
    elf(&body)
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
        assert!(text.contains(UPTIME_PREFIX));
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
