//! `activity`: Jellyfin's activity log (logins, failed logins, lock-outs, task failures,
//! playback…), counted by `Type` (the `Name` is localised and may hold IP addresses, so it is
//! never read) and severity, each entry exactly once ([`cursor`]); and playback starts from the
//! same entries ([`playback`]).
//!
//! A walk asks for the entries since the overlap before the newest one counted (`minDate`) and
//! pages through all of them, however many: a burst of thousands of failed logins between two
//! cycles is counted in full. The server pages newest first by offset, so entries arriving
//! during a walk shift the later pages down: an entry is then served twice, never skipped, and
//! the second time it is recognised by its id. Pages overlap by [`PAGE_OVERLAP`] rows because
//! the server's order has no tie-breaker for equal dates. What was counted is saved in
//! `state_dir/activity.json` after each walk; a first start only marks the entries present as
//! counted: the server's history is not counted.

pub mod cursor;
pub mod playback;
pub mod types;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::plays_seen::{PlaysSeen, item_labels};
use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::date::parse_ms;
use crate::jellyfin::dto::{ActivityEntry, ActivityPage, NamedItemPage};
use crate::sample::{Family, label_value, now_ms};
use crate::state_file::StateFile;
use cursor::Counted;
use playback::{PendingStart, Settled, Starts};
use types::{playback_start, type_label};

pub const PAGE: usize = 500;
/// Rows each page repeats of the previous one (equal dates have no stable order).
pub const PAGE_OVERLAP: usize = 20;
/// A safety stop for a server that ignores startIndex: about 1,000,000 entries per walk.
pub const MAX_PAGES: usize = 2_100;
/// Item ids per GET /Items?ids= when naming starts the sessions collector did not see.
const NAMES_PER_REQUEST: usize = 50;

/// What `state_dir/activity.json` holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    counted: Counted,
    #[serde(default)]
    pending: Vec<PendingStart>,
    /// Earlier versions saved only `{"id": …, "date": …}`.
    #[serde(default, skip_serializing)]
    id: i64,
    #[serde(default, skip_serializing)]
    date: Option<String>,
}

impl Saved {
    /// The cursor of earlier versions (`{"id", "date"}` at the top) moved where it is read.
    fn migrated(mut self) -> Saved {
        if self.id != 0 || self.date.is_some() {
            self.counted.id = self.id;
            self.counted.date = self.date.take();
        }
        self
    }
}

pub struct Activity {
    client: Client,
    file: StateFile,
    saved: Option<Saved>,
    counts: BTreeMap<(String, String), u64>,
    starts: Starts,
}

impl Activity {
    /// `seen`: the sessions collector's sightings; `top_items`: privacy.top_items.
    pub fn new(client: Client, file: StateFile, seen: PlaysSeen, top_items: usize) -> Self {
        let saved = file.load::<Saved>().map(Saved::migrated);
        Activity {
            client,
            file,
            saved,
            counts: BTreeMap::new(),
            starts: Starts::new(seen, top_items),
        }
    }

    async fn page(
        &self,
        min_date: Option<&str>,
        start: usize,
        limit: usize,
    ) -> Result<Vec<ActivityEntry>, CollectError> {
        let mut path = format!("/System/ActivityLog/Entries?startIndex={start}&limit={limit}");
        if let Some(date) = min_date {
            path.push_str(&format!("&minDate={}", date.replace(':', "%3A")));
        }
        let page: ActivityPage = self
            .client
            .get_json("/System/ActivityLog/Entries", Some(&path))
            .await?;
        Ok(page.items.unwrap_or_default())
    }

    /// Walks every entry from the overlap on, offering each to `counted`; `on_new` gets those
    /// offered for the first time.
    async fn walk(
        &self,
        counted: &mut Counted,
        mut on_new: impl FnMut(&ActivityEntry, Option<i64>),
    ) -> Result<(), CollectError> {
        let min_date = counted.min_date();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let entries = self.page(min_date.as_deref(), start, PAGE).await?;
            for entry in &entries {
                let Some(id) = entry.id else {
                    tracing::warn!("an activity-log entry without an Id; not counted");
                    continue;
                };
                let date_ms = entry.date.as_deref().and_then(parse_ms);
                if counted.first_time(id, date_ms) {
                    on_new(entry, date_ms);
                }
            }
            if entries.len() < PAGE {
                return Ok(());
            }
            start += PAGE - PAGE_OVERLAP;
        }
        // Treated as a failed page: the next walk starts from the same overlap again, so the
        // older entries not reached are not skipped (those counted are recognised by id).
        Err(format!(
            "/System/ActivityLog/Entries: stopped after {MAX_PAGES} pages of {PAGE} without reaching the end"
        )
        .into())
    }

    /// Names the settled starts the sessions collector did not see (GET /Items?ids=…); a
    /// failure leaves them unnamed (counted in jellyfin_playback_total only).
    async fn name(&self, settled: &mut [Settled]) {
        let ids: Vec<String> = settled
            .iter()
            .filter(|s| s.item.is_none())
            .filter_map(|s| s.start.item_id.clone())
            .collect();
        let mut names = HashMap::new();
        for chunk in ids.chunks(NAMES_PER_REQUEST) {
            let path = format!("/Items?ids={}", chunk.join(","));
            match self
                .client
                .get_json::<NamedItemPage>("/Items", Some(&path))
                .await
            {
                Ok(page) => {
                    for item in page.items.unwrap_or_default() {
                        if let Some(id) = item.id.clone() {
                            names.insert(id.to_ascii_lowercase(), item_labels(&item));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot name the items of playback starts"),
            }
        }
        for s in settled.iter_mut().filter(|s| s.item.is_none()) {
            s.item = s
                .start
                .item_id
                .as_deref()
                .and_then(|id| names.get(&id.to_ascii_lowercase()).cloned());
        }
    }
}

fn severity_label(entry: &ActivityEntry) -> String {
    label_value(
        &entry
            .severity
            .as_deref()
            .unwrap_or("none")
            .to_ascii_lowercase(),
    )
}

#[async_trait::async_trait]
impl Collector for Activity {
    fn name(&self) -> &'static str {
        "activity"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let first_start = self.saved.is_none();
        let mut saved = self.saved.take().unwrap_or_default();
        let before = saved.counted.newest_ms;
        let result = if first_start {
            // The newest entry sets the overlap; everything in it is history.
            match self.page(None, 0, 1).await {
                Ok(newest) => {
                    saved.counted.newest_ms = newest
                        .first()
                        .and_then(|e| e.date.as_deref())
                        .and_then(parse_ms);
                    if saved.counted.newest_ms.is_some() {
                        self.walk(&mut saved.counted, |_, _| {}).await
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            let mut counts = std::mem::take(&mut self.counts);
            let pending = &mut saved.pending;
            let now = now_ms();
            let result = self
                .walk(&mut saved.counted, |entry, date_ms| {
                    *counts
                        .entry((type_label(entry.kind.as_deref()), severity_label(entry)))
                        .or_default() += 1;
                    if let Some(media) = playback_start(entry.kind.as_deref()) {
                        pending.push(PendingStart {
                            date_ms: date_ms.unwrap_or(now),
                            user_id: entry.user_id.clone(),
                            item_id: entry.item_id.clone(),
                            media_type: media.into(),
                        });
                    }
                })
                .await;
            self.counts = counts;
            result
        };
        if first_start && result.is_err() {
            // Still a first start next time: never count the history.
            return result;
        }
        if result.is_err() {
            // A partial walk: what it counted stays recognised by id, but the next walk must
            // start from the old overlap, or the entries beyond the failed page are lost.
            saved.counted.newest_ms = before;
        } else {
            saved.counted.prune();
        }
        let (mut ready, waiting) = self
            .starts
            .settle(std::mem::take(&mut saved.pending), now_ms());
        saved.pending = waiting;
        self.name(&mut ready).await;
        for settled in &ready {
            self.starts.count(settled);
        }
        if let Err(e) = self.file.save(&saved) {
            tracing::warn!(error = %e, "cannot save the activity-log cursor");
        }
        self.saved = Some(saved);
        // Counted is counted, also when a later page failed: the counters go out either way.
        let mut family = Family::counter(
            "jellyfin_activity_events_total",
            "Activity-log entries by Type (unknown types: other) and severity, each counted once.",
        );
        for ((kind, severity), n) in &self.counts {
            family.push(
                vec![("type", kind.clone()), ("severity", severity.clone())],
                *n as f64,
            );
        }
        out.push(family);
        out.extend(self.starts.families());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_of_earlier_versions_is_resumed_from() {
        let old: Saved =
            serde_json::from_str(r#"{"id":106,"date":"2026-11-25T09:14:03.1234567Z"}"#).unwrap();
        let saved = old.migrated();
        assert_eq!(
            saved.counted.min_date().as_deref(),
            Some("2026-11-25T09:13:03.1230000Z")
        );
        assert_eq!(saved.counted.id, 106);
        // Written back in the new shape only.
        let json = serde_json::to_value(&saved).unwrap();
        assert!(
            json.get("id").is_none() && json["counted"]["id"] == 106,
            "{json}"
        );
    }
}
