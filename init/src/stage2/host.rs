//! The host's identity and its loopback interface.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// Sets the hostname from the image's `/etc/hostname` (first word); a
/// missing or bad file keeps the kernel's name and says so.
pub fn set_hostname(file: &Path) {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            log::warn!(
                "hostname: reading {}: {e}; keeping the kernel's",
                file.display()
            );
            return;
        }
    };
    match parse_hostname(&text) {
        Some(name) => match nix::unistd::sethostname(&name) {
            Ok(()) => log::info!("hostname {name}"),
            Err(e) => log::error!("hostname {name}: {e}"),
        },
        None => log::warn!("hostname: {} holds no valid name", file.display()),
    }
}

/// The first non-comment word of `/etc/hostname`, if it is a valid host name
/// (1-64 bytes of letters, digits, `-` and `.`).
pub fn parse_hostname(text: &str) -> Option<String> {
    let word = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?
        .split_whitespace()
        .next()?;
    let ok = word.len() <= 64
        && !word.starts_with(['-', '.'])
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| word.to_string())
}

nix::ioctl_read_bad!(get_flags, nix::libc::SIOCGIFFLAGS, nix::libc::ifreq);
nix::ioctl_write_ptr_bad!(set_flags, nix::libc::SIOCSIFFLAGS, nix::libc::ifreq);

/// `ip link set lo up`: containers' own network namespaces have their own
/// loopback, but the host's services (containerd's CRI streaming server,
/// exporters) listen on 127.0.0.1.
pub fn loopback_up() {
    match set_up("lo") {
        Ok(()) => log::debug!("ip link set lo up"),
        Err(e) => log::error!("ip link set lo up: {e}"),
    }
}

fn set_up(name: &str) -> Result<(), String> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as nix::libc::c_char;
    }
    // SAFETY: the socket is open and `req` is a valid ifreq naming the
    // interface, as SIOCGIFFLAGS expects (netdevice(7)).
    unsafe { get_flags(sock.as_raw_fd(), &mut req) }.map_err(|e| format!("SIOCGIFFLAGS: {e}"))?;
    // SAFETY: reading the union member SIOCGIFFLAGS just filled in.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (nix::libc::IFF_UP | nix::libc::IFF_RUNNING) as i16;
    // SAFETY: as above; SIOCSIFFLAGS reads the name and the flags.
    unsafe { set_flags(sock.as_raw_fd(), &req) }.map_err(|e| format!("SIOCSIFFLAGS: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_the_first_word() {
        assert_eq!(parse_hostname("terra\n").as_deref(), Some("terra"));
        assert_eq!(
            parse_hostname("# c\n\n  node-1.lan  x\n").as_deref(),
            Some("node-1.lan")
        );
    }

    #[test]
    fn bad_hostnames_are_refused() {
        for bad in ["", "\n\n", "-x", "a/b", "naïve", &"a".repeat(65)] {
            assert_eq!(parse_hostname(bad), None, "{bad:?}");
        }
    }
}
