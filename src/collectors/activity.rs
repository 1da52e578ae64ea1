//! `activity`: Jellyfin's activity log (logins, failed logins, lock-outs, task failures,
//! playback…), counted by `Type` (the `Name` is localised and may hold IP addresses, so it is
//! never read) and severity.
//!
//! Each entry is counted once: the newest entry seen (its id and date) is the cursor, kept in
//! `state_dir/activity.json`, and each cycle asks only for entries since its date
//! (`minDate`), counting those with a higher id. The log is served newest first, so a cycle
//! pages back until it meets the cursor (at most [`MAX_PAGES`] pages). A first start only
//! sets the cursor: the server's history is not counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::{ActivityEntry, ActivityPage};
use crate::sample::{Family, label_value};
use crate::state_file::StateFile;

const PAGE: usize = 100;
const MAX_PAGES: usize = 10;

/// Types Jellyfin 10.9-12.0 write (Jellyfin.Server.Implementations/Events/Consumers and the
/// session manager); any other (plugins) is counted as `other` to bound the label.
const KNOWN_TYPES: [&str; 22] = [
    "AudioPlayback",
    "AudioPlaybackStopped",
    "AuthenticationFailed",
    "AuthenticationSucceeded",
    "PluginError",
    "PluginInstalled",
    "PluginUninstalled",
    "PluginUpdated",
    "PackageInstallationCancelled",
    "PackageInstallationFailed",
    "ScheduledTaskFailed",
    "SessionEnded",
    "SessionStarted",
    "SubtitleDownloadFailure",
    "UserCreated",
    "UserDeleted",
    "UserLockedOut",
    "UserPasswordChanged",
    "UserPolicyUpdated",
    "UserConfigurationUpdated",
    "VideoPlayback",
    "VideoPlaybackStopped",
];

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub id: i64,
    pub date: Option<String>,
}

pub struct Activity {
    client: Client,
    file: StateFile,
    cursor: Option<Cursor>,
    counts: BTreeMap<(String, String), u64>,
}

impl Activity {
    pub fn new(client: Client, file: StateFile) -> Self {
        let cursor = file.load();
        Activity {
            client,
            file,
            cursor,
            counts: BTreeMap::new(),
        }
    }

    async fn page(
        &self,
        cursor: Option<&Cursor>,
        start: usize,
        limit: usize,
    ) -> Result<Vec<ActivityEntry>, CollectError> {
        let mut path = format!("/System/ActivityLog/Entries?startIndex={start}&limit={limit}");
        if let Some(date) = cursor.and_then(|c| c.date.as_deref()) {
            path.push_str(&format!("&minDate={date}"));
        }
        let page: ActivityPage = self
            .client
            .get_json("/System/ActivityLog/Entries", Some(&path))
            .await?;
        Ok(page.items.unwrap_or_default())
    }
}

/// The `type` label: the server's Type when it is a known one, else `other`.
pub fn type_label(kind: Option<&str>) -> String {
    match kind {
        Some(kind) if KNOWN_TYPES.contains(&kind) => kind.to_string(),
        _ => "other".into(),
    }
}

/// Counts the entries newer than `cursor` into `counts`; returns the new cursor.
pub fn count_new(
    entries: &[ActivityEntry],
    cursor: &Cursor,
    counts: &mut BTreeMap<(String, String), u64>,
) -> Cursor {
    let mut newest = cursor.clone();
    for entry in entries {
        let Some(id) = entry.id.filter(|id| *id > cursor.id) else {
            continue;
        };
        let severity = label_value(
            &entry
                .severity
                .as_deref()
                .unwrap_or("none")
                .to_ascii_lowercase(),
        );
        *counts
            .entry((type_label(entry.kind.as_deref()), severity))
            .or_default() += 1;
        if id > newest.id {
            newest = Cursor {
                id,
                date: entry.date.clone(),
            };
        }
    }
    newest
}

#[async_trait::async_trait]
impl Collector for Activity {
    fn name(&self) -> &'static str {
        "activity"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let cursor = match self.cursor.clone() {
            Some(cursor) => {
                let mut newest = cursor.clone();
                for page in 0..MAX_PAGES {
                    let entries = self.page(Some(&cursor), page * PAGE, PAGE).await?;
                    newest = count_new(&entries, &cursor, &mut self.counts).max_by_id(newest);
                    // Newest first: a page that reaches the cursor, or a short one, is the last.
                    if entries.len() < PAGE
                        || entries
                            .iter()
                            .any(|e| e.id.is_some_and(|id| id <= cursor.id))
                    {
                        break;
                    }
                }
                newest
            }
            // First start: the newest entry becomes the cursor; history is not counted.
            None => {
                let entries = self.page(None, 0, 1).await?;
                let newest = entries
                    .iter()
                    .filter_map(|e| {
                        Some(Cursor {
                            id: e.id?,
                            date: e.date.clone(),
                        })
                    })
                    .next();
                newest.unwrap_or_default()
            }
        };
        if self.cursor.as_ref() != Some(&cursor)
            && let Err(e) = self.file.save(&cursor)
        {
            tracing::warn!(error = %e, "cannot save the activity-log cursor");
        }
        self.cursor = Some(cursor);
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
        Ok(())
    }
}

impl Cursor {
    fn max_by_id(self, other: Cursor) -> Cursor {
        if self.id >= other.id { self } else { other }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<ActivityEntry> {
        let page: ActivityPage = serde_json::from_str(include_str!(
            "../../tests/fixtures/jellyfin/activity-log.synthetic.json"
        ))
        .unwrap();
        page.items.unwrap()
    }

    #[test]
    fn counts_only_entries_after_the_cursor_by_type_and_severity() {
        let mut counts = BTreeMap::new();
        let cursor = count_new(
            &fixture(),
            &Cursor {
                id: 102,
                date: None,
            },
            &mut counts,
        );
        assert_eq!(
            cursor,
            Cursor {
                id: 106,
                date: Some("2026-11-25T09:14:03.1234567Z".into())
            }
        );
        let got: Vec<(String, String, u64)> = counts
            .iter()
            .map(|((t, s), n)| (t.clone(), s.clone(), *n))
            .collect();
        assert_eq!(
            got,
            [
                ("AuthenticationFailed".to_string(), "error".to_string(), 2),
                ("ScheduledTaskFailed".to_string(), "error".to_string(), 1),
                ("VideoPlayback".to_string(), "information".to_string(), 1),
            ]
        );
        // The same page again counts nothing.
        let again = count_new(&fixture(), &cursor, &mut counts);
        assert_eq!(again, cursor);
        assert_eq!(counts.values().sum::<u64>(), 4);
    }

    #[test]
    fn unknown_types_are_other() {
        let mut counts = BTreeMap::new();
        count_new(
            &fixture(),
            &Cursor {
                id: 100,
                date: None,
            },
            &mut counts,
        );
        assert_eq!(counts[&("other".to_string(), "information".to_string())], 1);
    }
}
