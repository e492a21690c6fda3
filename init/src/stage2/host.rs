//! The host's identity and its loopback interface.

use crate::env::Env;

/// Sets the hostname from the image's `/etc/hostname` (first word); a
/// missing or bad file keeps the kernel's name and says so.
pub fn set_hostname(env: &Env) {
    let file = &env.paths.hostname;
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
        Some(name) => match env.kernel.set_hostname(&name) {
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

/// `ip link set lo up`: containers' own network namespaces have their own
/// loopback, but the host's services (containerd's CRI streaming server,
/// exporters) listen on 127.0.0.1.
pub fn loopback_up(env: &Env) {
    match env.kernel.link_up("lo") {
        Ok(()) => log::debug!("ip link set lo up"),
        Err(e) => log::error!("ip link set lo up: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Paths;
    use crate::kernel::fake::Fake;
    use std::time::Instant;

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

    #[test]
    fn sets_the_image_hostname_and_brings_lo_up() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            hostname: dir.path().join("hostname"),
            ..Paths::default()
        };
        let k = Fake::default();
        let env = Env::new(paths, &k, Instant::now());
        set_hostname(&env); // missing file: the kernel's name stays
        std::fs::write(dir.path().join("hostname"), "node-1\n").unwrap();
        set_hostname(&env);
        loopback_up(&env);
        assert_eq!(k.calls(), ["hostname node-1", "ip link set lo up"]);
    }
}
