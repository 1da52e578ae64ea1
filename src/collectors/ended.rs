//! Series whose subject ended: a stream, a transcode, a client, a storage location, a
//! scheduled task that was there at the collector's last run and is gone now gets one last
//! sample, so an instant query stops showing the last value at once instead of for the
//! receiver's lookback (Prometheus: 5 minutes, the "ghost transcodes"). After that one sample
//! the series is no longer sent. The sets these families are keyed by are bounded
//! (src/labels), so the extra samples are too.
//!
//! The runner (`schedule.rs`) applies [`ENDS`] to every collector's result after the label
//! bounds, so a marker is never summed into an `other` series, and only after a successful
//! run: a failed one says nothing has ended. The last sample is either
//! - 0 ([`End::Zero`]), for gauges where 0 is the truth when the subject is gone (counts,
//!   rates): an instant query shows 0, which an idle server's panel should show; or
//! - Prometheus' staleness marker ([`End::Stale`], [`STALE_NAN`]), for figures whose 0 would
//!   lie (a transcode's speed or lead, where 0 is "stalled"; free bytes, where 0 is "full"; a
//!   timestamp, where 0 is 1970): the series leaves instant queries, on Prometheus and on
//!   VictoriaMetrics (since 1.73), as a scraped series does when it vanishes from the page.
//!
//! Never for counters: a counter's 0 would read as a reset (a marker would not, but a
//! counter's series stays; [`Ended::close`] refuses them in debug builds). A restarted agent
//! does not know what the last one sent: those series linger for the lookback, as in
//! Prometheus after a restart.

use crate::sample::{Family, Kind, Labels, STALE_NAN};

/// What the last sample of an ended series says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Zero,
    Stale,
}

impl End {
    fn value(self) -> f64 {
        match self {
            End::Zero => 0.0,
            End::Stale => STALE_NAN,
        }
    }
}

/// Every gauge family whose series can end while the collector still answers, and what its
/// ended series say. A family not listed keeps its series (always present, or counters).
pub const ENDS: &[(&str, End)] = &[
    // sessions: counts and rates of what plays; 0 when it stopped.
    ("jellyfin_sessions", End::Zero),
    ("jellyfin_streams", End::Zero),
    ("jellyfin_user_streams", End::Zero),
    ("jellyfin_bandwidth_bytes_per_second", End::Zero),
    ("jellyfin_transcode_active", End::Zero),
    ("jellyfin_transcode_reasons", End::Zero),
    ("jellyfin_transcode_conversions", End::Zero),
    ("jellyfin_sessions_by_country", End::Zero),
    // sessions: measured only while an unpaused video transcode runs; 0 would be "stalled".
    ("jellyfin_transcode_speed_ratio", End::Stale),
    ("jellyfin_transcode_lead_seconds", End::Stale),
    // system: the old identity after an upgrade or a rename (else two versions for 5 min).
    ("jellyfin_info", End::Stale),
    // library: a removed library or location, or one the server can no longer measure.
    ("jellyfin_library_info", End::Stale),
    ("jellyfin_storage_free_bytes", End::Stale),
    ("jellyfin_storage_used_bytes", End::Stale),
    // inventory: counts, sizes and run times of a library that was removed, or of a codec,
    // resolution or kind no longer in it: 0 is the truth, and it is what the panels'
    // `last_over_time` then shows (a marker would be skipped there, the old value shown for
    // the whole window).
    ("jellyfin_library_size_bytes", End::Zero),
    ("jellyfin_library_inventory_items", End::Zero),
    ("jellyfin_library_video_codec_items", End::Zero),
    ("jellyfin_library_resolution_items", End::Zero),
    ("jellyfin_library_missing_metadata_items", End::Zero),
    ("jellyfin_library_duration_seconds", End::Zero),
    // inventory: an item no longer among the newest (the value is a date: 0 would be 1970).
    ("jellyfin_library_recently_added", End::Stale),
    // tasks: progress only while running (0 would be "just started"); a removed task.
    ("jellyfin_scheduled_task_progress_ratio", End::Stale),
    ("jellyfin_scheduled_task_running", End::Stale),
    ("jellyfin_scheduled_task_last_duration_seconds", End::Stale),
    (
        "jellyfin_scheduled_task_last_end_timestamp_seconds",
        End::Stale,
    ),
    ("jellyfin_scheduled_task_last_status", End::Stale),
    ("jellyfin_library_scan_duration_seconds", End::Stale),
    // process: memory by source when the source changes (cgroup <-> process tree; both
    // for 5 min would double a sum), and open fds when they become unreadable.
    ("process_resident_memory_bytes", End::Stale),
    ("process_open_fds", End::Stale),
];

/// What one collector sent at its last successful run, for the families of [`ENDS`].
#[derive(Default)]
pub struct Ended {
    /// Per family of [`ENDS`] (same index): an empty copy (name, help, kind) and the label
    /// sets it had last time, sorted, each once.
    last: Vec<Option<(Family, Vec<Labels>)>>,
    /// Which of a family's last label sets this run has too (kept to save an allocation).
    seen: Vec<bool>,
}

impl Ended {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the last sample to `out` for each series of [`ENDS`] sent last time and missing
    /// now. Called only after a successful collection: a failed one says nothing has ended.
    /// A family with the same series as last time (the steady case) costs lookups only: its
    /// label sets are copied again only when they change.
    pub fn close(&mut self, out: &mut Vec<Family>) {
        self.last.resize_with(ENDS.len(), || None);
        for (&(name, end), last) in ENDS.iter().zip(self.last.iter_mut()) {
            let template = out.iter().find(|f| f.name == name);
            debug_assert!(
                template.is_none_or(|f| f.kind == Kind::Gauge),
                "{name}: a counter must never end (it would read as a reset)"
            );
            let before: &[Labels] = last.as_ref().map_or(&[], |l| &l.1);
            self.seen.clear();
            self.seen.resize(before.len(), false);
            let mut new = false;
            for labels in out
                .iter()
                .filter(|f| f.name == name)
                .flat_map(|f| f.samples.iter().map(|s| &s.labels))
            {
                match before.binary_search(labels) {
                    Ok(i) => self.seen[i] = true,
                    Err(_) => new = true,
                }
            }
            let gone = self.seen.contains(&false);
            // The series sent now (before the ends are added), when they differ from last time.
            let replace = (new || gone).then(|| {
                let mut now: Vec<Labels> = out
                    .iter()
                    .filter(|f| f.name == name)
                    .flat_map(|f| f.samples.iter().map(|s| s.labels.clone()))
                    .collect();
                now.sort();
                now.dedup();
                let template = template.map(|f| Family {
                    name: f.name,
                    help: f.help,
                    kind: f.kind,
                    samples: Vec::new(),
                });
                (template, now)
            });
            if gone && let Some((empty, before)) = last.as_ref() {
                let at = match out.iter().position(|f| f.name == name) {
                    Some(i) => i,
                    None => {
                        out.push(empty.clone());
                        out.len() - 1
                    }
                };
                for (labels, _) in before.iter().zip(&self.seen).filter(|(_, seen)| !**seen) {
                    out[at].push(labels.clone(), end.value());
                }
            }
            let Some((template, now)) = replace else {
                continue;
            };
            match (template, last.as_mut()) {
                (Some(template), _) => *last = Some((template, now)),
                // Gone entirely: its ends are sent; nothing is left to end next time.
                (None, Some(entry)) => entry.1.clear(),
                (None, None) => {}
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
        let mut ended = Ended::new();
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

    /// The same series again keeps the sets as they are; a series sent twice still counts
    /// once, so a missing one still ends.
    #[test]
    fn steady_series_end_nothing_and_a_repeated_one_hides_no_end() {
        let mut ended = Ended::new();
        for _ in 0..3 {
            let mut out = streams(&["a", "b"]);
            ended.close(&mut out);
            assert_eq!(out, streams(&["a", "b"]));
        }
        let mut out = streams(&["a", "a"]);
        ended.close(&mut out);
        assert_eq!(
            values(&out),
            [("a".into(), 1.0), ("a".into(), 1.0), ("b".into(), 0.0)]
        );
        let mut out = streams(&["a", "b"]);
        ended.close(&mut out);
        assert_eq!(values(&out), [("a".into(), 1.0), ("b".into(), 1.0)]);
        let mut out = streams(&["b"]);
        ended.close(&mut out);
        assert_eq!(values(&out), [("b".into(), 1.0), ("a".into(), 0.0)]);
    }

    #[test]
    fn a_family_gone_entirely_is_sent_once_with_zeros() {
        let mut ended = Ended::new();
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
    fn a_stale_family_gets_the_exact_marker_once() {
        let speed = |v: f64| {
            vec![
                Family::gauge("jellyfin_transcode_speed_ratio", "Speed.")
                    .with(vec![("stat", "min".into())], v)
                    .with(vec![("stat", "avg".into())], v),
            ]
        };
        let mut ended = Ended::new();
        ended.close(&mut speed(0.9));
        let mut out = Vec::new();
        ended.close(&mut out);
        let bits: Vec<(String, u64)> = out[0]
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value.to_bits()))
            .collect();
        assert_eq!(
            bits,
            [
                ("avg".into(), 0x7ff0_0000_0000_0002),
                ("min".into(), 0x7ff0_0000_0000_0002)
            ]
        );
        let mut out = Vec::new();
        ended.close(&mut out);
        assert!(out.is_empty(), "{out:?}");
        // The transcode comes back: its series resumes, nothing else is added.
        let mut out = speed(1.2);
        ended.close(&mut out);
        assert_eq!(out, speed(1.2));
    }

    #[test]
    fn a_removed_library_counts_zero_and_its_newest_items_end_with_a_marker() {
        let walk = |libraries: &[&str]| {
            let mut items = Family::gauge("jellyfin_library_inventory_items", "Items.");
            let mut recent = Family::gauge("jellyfin_library_recently_added", "Added.");
            for l in libraries {
                items.push(
                    vec![("library", (*l).into()), ("type", "movie".into())],
                    3.0,
                );
                recent.push(vec![("library", (*l).into()), ("item", "A".into())], 1.7e9);
            }
            vec![items, recent]
        };
        let mut ended = Ended::new();
        ended.close(&mut walk(&["Films", "Shows"]));
        let mut out = walk(&["Films"]);
        ended.close(&mut out);
        let shows = |f: &Family| {
            f.samples
                .iter()
                .filter(|s| s.labels[0].1 == "Shows")
                .map(|s| s.value.to_bits())
                .collect::<Vec<u64>>()
        };
        assert_eq!(shows(&out[0]), [0.0f64.to_bits()]);
        assert_eq!(shows(&out[1]), [crate::sample::STALE_NAN_BITS]);
    }

    #[test]
    fn other_families_are_left_alone() {
        let mut ended = Ended::new();
        let mut first = vec![
            Family::gauge("jellyfin_api_response_seconds", "Seconds.")
                .with(vec![("endpoint", "/System/Info".into())], 0.1),
        ];
        ended.close(&mut first);
        let mut out = Vec::new();
        ended.close(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    /// Every family of the table is a gauge of the README's metric table, so a renamed
    /// family cannot silently stop ending.
    #[test]
    fn every_ending_family_is_a_catalogued_gauge() {
        let readme = include_str!("../../README.md");
        for (name, _) in ENDS {
            let row = readme
                .lines()
                .find(|l| {
                    l.starts_with('|')
                        && l.split('|')
                            .nth(1)
                            .is_some_and(|c| c.contains(&format!("`{name}`")))
                })
                .unwrap_or_else(|| panic!("{name} is not in the README's metric table"));
            let kind = row.split('|').nth(2).unwrap_or("");
            assert!(kind.contains("gauge"), "{name}: {row}");
        }
    }
}
