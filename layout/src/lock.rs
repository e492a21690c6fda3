//! The partition's write lock: an exclusive `flock` on `tmp/terra.lock`.
//!
//! Every writer of `ov/metadata.db` holds it around its read-modify-write,
//! so two writers never lose each other's change: the `terra` CLI (for its
//! whole command), stage 1 (spending a try, recording a failure) and stage 2
//! (the good mark). It is `flock(2)` through rustix, the same call the CLI
//! makes.

use std::fs::{File, OpenOptions};

use rustix::fs::FlockOperation;
use std::io;
use std::time::{Duration, Instant};

use crate::Partition;

/// The lock file, relative to the partition root.
pub const LOCK_FILE: &str = "tmp/terra.lock";

/// Held while alive; dropping the file releases the lock.
#[derive(Debug)]
pub struct PartitionLock {
    _file: File,
}

/// Takes the lock, waiting at most `wait` for another holder (a long
/// install must not stall PID 1 forever). Creates `tmp/` if missing, but
/// not the partition root: a wrong root is an error, not a new tree.
pub fn lock(part: &Partition, wait: Duration) -> io::Result<PartitionLock> {
    match std::fs::create_dir(part.tmp_dir()) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let path = part.root().join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let deadline = Instant::now() + wait;
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(PartitionLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is held by another writer after {} s",
                        path.display(),
                        wait.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_then_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let part = Partition::new(dir.path());
        let held = lock(&part, Duration::ZERO).unwrap();
        let err = lock(&part, Duration::from_millis(120)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("terra.lock"), "{err}");
        drop(held);
        lock(&part, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_missing_partition_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let part = Partition::new(dir.path().join("nope"));
        assert!(lock(&part, Duration::ZERO).is_err());
        assert!(!dir.path().join("nope").exists());
    }
}
