//! Explicit zeros for series whose subject ended: a stream, a transcode, a client that was
//! there last cycle and is gone now gets one sample of 0, so an instant query shows 0 at
//! once instead of the last value for the receiver's lookback (Prometheus: 5 minutes, the
//! "ghost transcodes"). After that one zero the series is no longer sent. The sets these
//! families are keyed by are bounded (src/labels), so the extra samples are too.
//!
//! Only for gauges where 0 is the truth when the subject is gone (counts, rates). Not for
//! figures whose 0 would mean something else (a transcode's speed or lead: 0 is "stalled").

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{Family, Labels};

pub struct Ended {
    names: &'static [&'static str],
    /// Per family: an empty copy (name, help, kind) and the label sets it had last cycle.
    last: BTreeMap<&'static str, (Family, BTreeSet<Labels>)>,
}

impl Ended {
    pub fn new(names: &'static [&'static str]) -> Self {
        Ended {
            names,
            last: BTreeMap::new(),
        }
    }

    /// Adds a 0 to `out` for each series of `names` sent last time and missing now.
    /// Called only after a successful collection: a failed one says nothing has ended.
    pub fn close(&mut self, out: &mut Vec<Family>) {
        for &name in self.names {
            let now: BTreeSet<Labels> = out
                .iter()
                .filter(|f| f.name == name)
                .flat_map(|f| f.samples.iter().map(|s| s.labels.clone()))
                .collect();
            let template = out.iter().find(|f| f.name == name).map(|f| Family {
                samples: Vec::new(),
                ..f.clone()
            });
            if let Some((empty, before)) = self.last.get(name) {
                let gone: Vec<&Labels> = before.difference(&now).collect();
                if !gone.is_empty() {
                    let at = match out.iter().position(|f| f.name == name) {
                        Some(i) => i,
                        None => {
                            out.push(empty.clone());
                            out.len() - 1
                        }
                    };
                    for labels in gone {
                        out[at].push(labels.clone(), 0.0);
                    }
                }
            }
            match template {
                Some(template) => {
                    self.last.insert(name, (template, now));
                }
                None => {
                    if let Some(entry) = self.last.get_mut(name) {
                        entry.1.clear();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(users: &[&str]) -> Vec<Family> {
        let mut f = Family::gauge("jellyfin_user_streams", "Streams per user.");
        for u in users {
            f.push(vec![("user", (*u).into())], 1.0);
        }
        vec![f]
    }

    fn values(out: &[Family]) -> Vec<(String, f64)> {
        out[0]
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect()
    }

    #[test]
    fn an_ended_series_gets_one_zero_then_is_no_longer_sent() {
        let mut ended = Ended::new(&["jellyfin_user_streams"]);
        let mut out = streams(&["a", "b"]);
        ended.close(&mut out);
        assert_eq!(values(&out), [("a".into(), 1.0), ("b".into(), 1.0)]);
        let mut out = streams(&["a"]);
        ended.close(&mut out);
        assert_eq!(values(&out), [("a".into(), 1.0), ("b".into(), 0.0)]);
        let mut out = streams(&["a"]);
        ended.close(&mut out);
        assert_eq!(values(&out), [("a".into(), 1.0)]);
    }

    #[test]
    fn a_family_gone_entirely_is_sent_once_with_zeros() {
        let mut ended = Ended::new(&["jellyfin_user_streams"]);
        ended.close(&mut streams(&["a"]));
        let mut out = Vec::new();
        ended.close(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "jellyfin_user_streams");
        assert_eq!(values(&out), [("a".into(), 0.0)]);
        let mut out = Vec::new();
        ended.close(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn other_families_are_left_alone() {
        let mut ended = Ended::new(&["jellyfin_user_streams"]);
        let mut first = vec![
            Family::gauge("jellyfin_transcode_speed_ratio", "Speed.")
                .with(vec![("stat", "min".into())], 0.9),
        ];
        ended.close(&mut first);
        let mut out = Vec::new();
        ended.close(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
