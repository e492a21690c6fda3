//! The one order of versions: stage 1 tries them in it, the boot menu lists
//! them in it.
//!
//! Stage 1 calls [`Metadata::boot_order`] with the version named by
//! `terra.version=`; the GRUB menu calls it with `None`, so its first entry
//! (GRUB's default) is the version stage 1 would boot on its own, and the
//! entries below it are the fallbacks in the order stage 1 would try them.

use crate::record::{Metadata, VersionRecord};

/// Why a version is a candidate for this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Named by `terra.version=`.
    Requested,
    /// The partition's default.
    Default,
    /// The last good default, kept when another version was made pending.
    LastGood,
    /// The newest installed version.
    Newest,
    /// Any other version, newest first: better than no boot at all.
    Other,
}

/// One entry of the boot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub name: String,
    pub reason: Reason,
}

impl Metadata {
    /// The newest version (largest `installed_at`, then the largest name).
    pub fn newest(&self) -> Option<&str> {
        self.versions
            .iter()
            .max_by(|a, b| newness(a).cmp(&newness(b)))
            .map(|(n, _)| n.as_str())
    }

    /// The requested version, the default, the last good default (the
    /// recorded fallback), the newest, then all others newest first; every
    /// installed version exactly once. A requested name that is not
    /// installed is left out (the caller says so). Which of them may boot is
    /// [`crate::boot_state::gate`]'s decision.
    pub fn boot_order(&self, requested: Option<&str>) -> Vec<Choice> {
        let mut order: Vec<Choice> = Vec::new();
        let mut push = |name: &str, reason: Reason| {
            if self.versions.contains_key(name) && !order.iter().any(|c| c.name == name) {
                order.push(Choice {
                    name: name.to_string(),
                    reason,
                });
            }
        };
        if let Some(r) = requested {
            push(r, Reason::Requested);
        }
        if let Some(d) = &self.default {
            push(d, Reason::Default);
        }
        if let Some(f) = &self.fallback {
            push(f, Reason::LastGood);
        }
        if let Some(n) = self.newest() {
            push(n, Reason::Newest);
        }
        let mut rest: Vec<(&String, &VersionRecord)> = self.versions.iter().collect();
        rest.sort_by(|a, b| newness(b).cmp(&newness(a)));
        for (name, _) in rest {
            push(name, Reason::Other);
        }
        order
    }
}

/// What "newer" compares: the install time, then the name, so that two
/// versions installed in the same second still have one order.
fn newness<'a>(v: &(&'a String, &VersionRecord)) -> (u64, &'a String) {
    (v.1.installed_at, v.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::test_record as rec;

    fn meta_of(versions: &[(&str, u64)], default: Option<&str>) -> Metadata {
        let mut m = Metadata::default();
        for (name, at) in versions {
            m.versions.insert((*name).into(), rec(*at));
        }
        m.default = default.map(String::from);
        m
    }

    fn meta() -> Metadata {
        meta_of(&[("v1", 10), ("v2", 20), ("v3", 15)], Some("v1"))
    }

    fn names(o: Vec<Choice>) -> Vec<String> {
        o.into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn boot_order_requested_default_newest_others() {
        let m = meta();
        assert_eq!(names(m.boot_order(Some("v3"))), ["v3", "v1", "v2"]);
        assert_eq!(names(m.boot_order(None)), ["v1", "v2", "v3"]);
        assert_eq!(names(m.boot_order(Some("nope"))), ["v1", "v2", "v3"]);
        assert_eq!(m.boot_order(Some("v3"))[0].reason, Reason::Requested);
        assert_eq!(m.boot_order(None)[1].reason, Reason::Newest);
    }

    #[test]
    fn without_default_the_newest_boots() {
        let mut m = meta();
        m.default = None;
        assert_eq!(m.boot_order(None)[0].name, "v2");
        assert_eq!(Metadata::default().boot_order(None), vec![]);
    }

    #[test]
    fn reasons_name_why_each_is_there() {
        let m = meta_of(&[("a", 1), ("b", 3), ("c", 2), ("d", 4)], Some("b"));
        let got: Vec<(String, Reason)> = m
            .boot_order(Some("a"))
            .into_iter()
            .map(|c| (c.name, c.reason))
            .collect();
        let want = [
            ("a", Reason::Requested),
            ("b", Reason::Default),
            ("d", Reason::Newest),
            ("c", Reason::Other),
        ];
        let want: Vec<(String, Reason)> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want);
    }

    /// The recorded fallback comes right after the default, before newer ones.
    #[test]
    fn the_last_good_default_comes_second() {
        let mut m = meta_of(&[("a", 1), ("b", 3), ("c", 2)], Some("c"));
        m.fallback = Some("a".into());
        let got: Vec<(String, Reason)> = m
            .boot_order(None)
            .into_iter()
            .map(|c| (c.name, c.reason))
            .collect();
        let want = [
            ("c", Reason::Default),
            ("a", Reason::LastGood),
            ("b", Reason::Newest),
        ];
        let want: Vec<(String, Reason)> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want);
        // A fallback that is not installed any more is passed over.
        m.fallback = Some("gone".into());
        assert_eq!(names(m.boot_order(None)), ["c", "b", "a"]);
    }

    /// Same install second: the larger name is the newer, everywhere.
    #[test]
    fn ties_are_broken_by_name() {
        let m = meta_of(&[("a", 5), ("c", 5), ("b", 5)], None);
        assert_eq!(m.newest(), Some("c"));
        assert_eq!(names(m.boot_order(None)), ["c", "b", "a"]);
    }

    /// Versions with their install times, the default, the expected order.
    type Case = (
        &'static [(&'static str, u64)],
        Option<&'static str>,
        &'static [&'static str],
    );

    /// Without a request: the default, then every other version newest
    /// first (the boot menu's order), each installed version exactly once.
    #[test]
    fn unrequested_order_is_default_then_newest_first() {
        let table: [Case; 6] = [
            (&[], None, &[]),
            (&[("v1", 1)], None, &["v1"]),
            (&[("v1", 1)], Some("v1"), &["v1"]),
            (
                &[("v1", 1), ("v2", 2), ("v3", 3)],
                None,
                &["v3", "v2", "v1"],
            ),
            (
                &[("v1", 1), ("v2", 2), ("v3", 3)],
                Some("v3"),
                &["v3", "v2", "v1"],
            ),
            (
                &[("v1", 1), ("v2", 2), ("v3", 3)],
                Some("v2"),
                &["v2", "v3", "v1"],
            ),
        ];
        for (versions, default, want) in table {
            let m = meta_of(versions, default);
            assert_eq!(names(m.boot_order(None)), want, "{versions:?} {default:?}");
        }
    }
}
