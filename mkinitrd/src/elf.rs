//! Just enough ELF to refuse a dynamically linked `/init` or busybox: the
//! initramfs has no loader and no shared libraries.

/// The program interpreter (`PT_INTERP`) of a 64-bit little-endian ELF file,
/// or `None` when there is none (static) or the file is not such an ELF.
pub fn interpreter(data: &[u8]) -> Option<String> {
    // ELF header (elf.h, Elf64_Ehdr): e_ident[0..4] = "\x7fELF",
    // e_ident[EI_CLASS=4] = 2 (64-bit), e_ident[EI_DATA=5] = 1 (little endian).
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    // e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        // Elf64_Phdr: p_type at 0, p_offset at 8, p_filesz at 0x20; PT_INTERP = 3.
        if u32_at(ph)? == 3 {
            let off = usize::try_from(u64_at(ph + 8)?).ok()?;
            let len = usize::try_from(u64_at(ph + 0x20)?).ok()?;
            let bytes = data.get(off..off.checked_add(len)?)?;
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            return Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_binaries() {
        // Any dynamically linked system binary has an interpreter.
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(interpreter(&ls).unwrap().contains("ld-linux"));
        // busybox-static (installed by scripts/setup) has none.
        let busybox = std::fs::read("/bin/busybox").unwrap();
        assert_eq!(interpreter(&busybox), None);
        assert_eq!(interpreter(b"#!/bin/sh\necho not elf\n"), None);
        assert_eq!(interpreter(b"\x7fELF"), None);
    }
}
