//! Saved boot logs: the kernel log (which holds every `terra:` line too) of
//! the last few boots, kept on the partition as `log/boot-<seq>.log` so that
//! a failed boot keeps its story for `terra logs`, from the next boot, from
//! another version or from the live system. Stage 2 saves one before every
//! deliberate power-off or reboot; the oldest beyond [`KEEP`] are dropped.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::Partition;

/// The directory of the saved logs, relative to the partition root.
pub const LOG_DIR: &str = "log";
/// How many boots' logs are kept.
pub const KEEP: usize = 5;

/// `boot-000012.log` for boot 12.
pub fn file_name(seq: u64) -> String {
    format!("boot-{seq:06}.log")
}

/// The sequence number of a saved log's file name.
pub fn parse_seq(name: &str) -> Option<u64> {
    name.strip_prefix("boot-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// What saving one more log does: the name to write, the names to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePlan {
    pub write: String,
    pub drop: Vec<String>,
}

/// Plans a save among the `existing` file names (others are ignored).
pub fn plan_save(existing: &[String]) -> SavePlan {
    let mut seqs: Vec<u64> = existing.iter().filter_map(|n| parse_seq(n)).collect();
    seqs.sort_unstable();
    let next = seqs.last().map_or(1, |s| s + 1);
    let excess = (seqs.len() + 1).saturating_sub(KEEP);
    SavePlan {
        write: file_name(next),
        drop: seqs.iter().take(excess).map(|s| file_name(*s)).collect(),
    }
}

/// The saved log `boot` boots back: -1 is the newest, -2 the one before.
pub fn pick(existing: &[String], boot: i64) -> Option<String> {
    let mut seqs: Vec<u64> = existing.iter().filter_map(|n| parse_seq(n)).collect();
    seqs.sort_unstable();
    let back = usize::try_from(boot.checked_neg()?).ok()?;
    let i = seqs.len().checked_sub(back)?;
    seqs.get(i).map(|s| file_name(*s))
}

/// The saved logs' names, oldest first.
pub fn list(part: &Partition) -> io::Result<Vec<String>> {
    let dir = part.root().join(LOG_DIR);
    let mut names: Vec<(u64, String)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                parse_seq(&n).map(|s| (s, n))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// Saves `text` as the newest log (atomically) and drops the oldest.
pub fn save(part: &Partition, text: &str) -> io::Result<PathBuf> {
    let dir = part.root().join(LOG_DIR);
    // 0700 like the partition's other trees: a log may hold secrets.
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let plan = plan_save(&list(part)?);
    let path = dir.join(&plan.write);
    crate::atomic::write_atomic(&path, text.as_bytes())?;
    for old in plan.drop {
        // Best effort: one more old log is no harm.
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(seqs: &[u64]) -> Vec<String> {
        seqs.iter().map(|s| file_name(*s)).collect()
    }

    #[test]
    fn saves_number_up_and_keep_the_last_few() {
        assert_eq!(
            plan_save(&[]),
            SavePlan {
                write: "boot-000001.log".into(),
                drop: vec![]
            }
        );
        let mut existing = names(&[3, 1, 2, 4]);
        existing.push("notes.txt".into());
        assert_eq!(
            plan_save(&existing),
            SavePlan {
                write: "boot-000005.log".into(),
                drop: vec![]
            }
        );
        assert_eq!(
            plan_save(&names(&[7, 3, 4, 5, 6])),
            SavePlan {
                write: "boot-000008.log".into(),
                drop: vec!["boot-000003.log".into()]
            }
        );
    }

    #[test]
    fn picks_boots_back_from_the_newest() {
        let existing = names(&[9, 10, 11]);
        assert_eq!(pick(&existing, -1).as_deref(), Some("boot-000011.log"));
        assert_eq!(pick(&existing, -3).as_deref(), Some("boot-000009.log"));
        assert_eq!(pick(&existing, -4), None);
        assert_eq!(pick(&existing, 0), None);
        assert_eq!(pick(&existing, 1), None);
        assert_eq!(pick(&[], -1), None);
    }

    #[test]
    fn save_writes_and_drops_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let part = Partition::new(dir.path());
        for i in 0..7 {
            save(&part, &format!("boot {i}\n")).unwrap();
        }
        let got = list(&part).unwrap();
        assert_eq!(got, names(&[3, 4, 5, 6, 7]));
        let newest = dir.path().join(LOG_DIR).join(pick(&got, -1).unwrap());
        assert_eq!(std::fs::read_to_string(newest).unwrap(), "boot 6\n");
    }
}
