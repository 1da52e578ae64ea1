//! Which activity-log entries were counted already, so that each is counted exactly once.
//!
//! The server pages newest first (`ORDER BY DateCreated DESC`, no tie-breaker) from `minDate`
//! on (ActivityManager.GetPagedResultAsync). Ids and dates are not in the same order
//! (`DateCreated` is set before the insert), so neither "id > last id" nor "date > last date"
//! is safe. Instead each walk asks from [`OVERLAP_MS`] before the newest date counted and skips
//! the ids already counted in that overlap; the ids are kept with their dates and dropped once
//! they fall out of the overlap, and the whole record is saved after each walk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jellyfin::date::format_ms;

/// How late an entry may be inserted after another with a later date. The server creates
/// and inserts an entry within one request; a minute is far beyond that.
pub const OVERLAP_MS: i64 = 60_000;

/// Bound on the ids remembered: a burst of this many entries within one overlap would let the
/// oldest of them be counted again (logged).
pub const MAX_SEEN: usize = 200_000;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    /// The newest `Date` counted, ms since the epoch.
    #[serde(default)]
    pub newest_ms: Option<i64>,
    /// Id → date (ms) of the entries counted within the overlap.
    #[serde(default)]
    pub seen: BTreeMap<i64, i64>,
    /// The cursor of earlier versions (last id and its date): entries up to both were counted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Counted {
    /// `minDate` for the next walk, None when nothing was counted yet (then the whole log).
    pub fn min_date(&self) -> Option<String> {
        let newest = self.newest_ms.or_else(|| {
            self.date
                .as_deref()
                .and_then(crate::jellyfin::date::parse_ms)
        })?;
        Some(format_ms(newest - OVERLAP_MS))
    }

    /// True the first time an entry is offered, false for one counted already. `date_ms`:
    /// the entry's date, or None when it has none that parses (it is then kept as of the
    /// newest date, so that it leaves the overlap like its neighbours).
    pub fn first_time(&mut self, id: i64, date_ms: Option<i64>) -> bool {
        if self.seen.contains_key(&id) {
            return false;
        }
        let legacy_ms = self
            .date
            .as_deref()
            .and_then(crate::jellyfin::date::parse_ms);
        if let (Some(legacy), Some(date)) = (legacy_ms, date_ms)
            && id <= self.id
            && date <= legacy
        {
            return false;
        }
        let date = date_ms.or(self.newest_ms).unwrap_or(0);
        self.seen.insert(id, date);
        self.newest_ms = Some(self.newest_ms.map_or(date, |n| n.max(date)));
        true
    }

    /// Forgets what the next walk cannot return again; called after each walk.
    pub fn prune(&mut self) {
        let Some(newest) = self.newest_ms else {
            return;
        };
        let floor = newest - OVERLAP_MS;
        self.seen.retain(|_, date| *date >= floor);
        if self.seen.len() > MAX_SEEN {
            let mut dates: Vec<i64> = self.seen.values().copied().collect();
            dates.sort_unstable();
            let cut = dates[self.seen.len() - MAX_SEEN];
            tracing::warn!(
                entries = self.seen.len(),
                "more activity-log entries within a minute than remembered; the oldest may be counted again"
            );
            self.seen.retain(|_, date| *date >= cut);
        }
        // Once the overlap has moved past it, the old cursor says nothing more.
        if self
            .date
            .as_deref()
            .and_then(crate::jellyfin::date::parse_ms)
            .is_some_and(|legacy| legacy < floor)
        {
            self.id = 0;
            self.date = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_new_once_and_the_overlap_is_remembered() {
        let mut counted = Counted::default();
        assert_eq!(counted.min_date(), None);
        assert!(counted.first_time(5, Some(100_000)));
        assert!(counted.first_time(4, Some(100_500)));
        assert!(!counted.first_time(5, Some(100_000)));
        assert_eq!(counted.newest_ms, Some(100_500));
        assert_eq!(
            counted.min_date().as_deref(),
            Some("1970-01-01T00:00:40.5000000Z")
        );
        counted.first_time(9, Some(200_000));
        counted.prune();
        // 5 and 4 are out of the overlap of 200 s: the server will not return them again.
        assert_eq!(counted.seen.keys().copied().collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn resumes_from_the_cursor_of_earlier_versions() {
        let mut counted: Counted =
            serde_json::from_str(r#"{"id":106,"date":"2026-11-25T09:14:03.1234567Z"}"#).unwrap();
        assert_eq!(
            counted.min_date().as_deref(),
            Some("2026-11-25T09:13:03.1230000Z")
        );
        let at = crate::jellyfin::date::parse_ms("2026-11-25T09:14:03.1234567Z");
        assert!(!counted.first_time(106, at));
        assert!(!counted.first_time(105, at.map(|t| t - 5000)));
        assert!(counted.first_time(107, at));
        let saved = serde_json::to_value(&counted).unwrap();
        assert!(saved["seen"]["107"].is_number(), "{saved}");
    }
}
