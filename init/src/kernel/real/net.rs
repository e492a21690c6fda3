//! Network interfaces on the real kernel.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// `ip link set NAME up`: the interface flags are read and written back with
/// IFF_UP and IFF_RUNNING, through a datagram socket (netdevice(7)).
pub fn link_up(name: &str) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    crate::sys::set_link_up(sock.as_raw_fd(), name)
}
