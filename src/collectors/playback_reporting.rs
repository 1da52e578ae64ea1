//! `playback_reporting` (optional): exact, pause-free watch time per user from the Playback
//! Reporting plugin (jellyfin/jellyfin-plugin-playbackreporting). The plugin keeps one row per
//! play in its PlaybackActivity table, with `PlayDuration` in seconds, pauses excluded, updated
//! every 20 s while it plays and at its stop (EventMonitorEntryPoint.cs, PlaybackTracker.cs);
//! it answers SQL through POST /user_usage_stats/submit_custom_query (admin key).
//!
//! Each cycle reads the rows of the last two days (a play longer than that stops being
//! followed) and credits each row's growth since it was last read; the per-row durations are
//! saved in `state_dir/playback-reporting.json`, so a restart credits nothing twice. A first
//! start only records what the rows hold: history is not counted. With this collector on, the
//! sessions collector's polled estimate is not sent (one producer per family).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::{CustomQueryAnswer, NamedUser};
use crate::privacy::Privacy;
use crate::sample::Family;
use crate::state_file::StateFile;

const ENDPOINT: &str = "/user_usage_stats/submit_custom_query";

/// `DateCreated` is stored as text (SqliteExtensions.ToDateTimeParamValue), in the server's
/// local time: two days back covers any time zone.
pub const QUERY: &str = "SELECT rowid AS RowId, UserId, PlayDuration FROM PlaybackActivity \
                         WHERE DateCreated >= datetime('now', '-2 days')";

/// One row of the plugin's table as last read: its user and seconds played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub user_id: String,
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    rows: BTreeMap<i64, Row>,
}

pub struct PlaybackReporting {
    client: Client,
    privacy: Privacy,
    file: StateFile,
    saved: Option<Saved>,
    /// Seconds credited per user id since the agent started.
    credited: BTreeMap<String, f64>,
}

impl PlaybackReporting {
    pub fn new(client: Client, privacy: Privacy, file: StateFile) -> Self {
        let saved = file.load();
        PlaybackReporting {
            client,
            privacy,
            file,
            saved,
            credited: BTreeMap::new(),
        }
    }
}

/// The rows of an answer, by RowId; a row whose cells do not parse is skipped (logged).
pub fn rows(answer: &CustomQueryAnswer) -> Result<BTreeMap<i64, Row>, String> {
    if let Some(message) = answer.message.as_deref().filter(|m| m.contains("Error")) {
        // The plugin's message is HTML with the exception: its first line is enough.
        let first = message.split("</br>").nth(1).unwrap_or(message);
        return Err(format!(
            "{ENDPOINT}: the plugin could not run the query: {first}"
        ));
    }
    let columns = answer.colums.as_deref().unwrap_or_default();
    let index = |name: &str| columns.iter().position(|c| c == name);
    let results = answer.results.as_deref().unwrap_or_default();
    if results.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (Some(id), Some(user), Some(duration)) =
        (index("RowId"), index("UserId"), index("PlayDuration"))
    else {
        return Err(format!(
            "{ENDPOINT}: the answer lacks RowId, UserId or PlayDuration (columns {columns:?})"
        ));
    };
    let cell = |row: &[serde_json::Value], i: usize| -> Option<String> {
        match row.get(i)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut out = BTreeMap::new();
    for row in results {
        let parsed = (|| {
            let rowid = cell(row, id)?.trim().parse::<i64>().ok()?;
            let user_id = cell(row, user).filter(|u| !u.is_empty())?;
            let seconds = cell(row, duration)?.trim().parse::<f64>().ok()?;
            Some((rowid, Row { user_id, seconds }))
        })();
        match parsed {
            Some((rowid, row)) => {
                out.insert(rowid, row);
            }
            None => tracing::warn!(endpoint = ENDPOINT, "a row that does not parse; skipped"),
        }
    }
    Ok(out)
}

/// Seconds each user played since `before`: a row's growth, or all of a new row.
pub fn growth(before: &BTreeMap<i64, Row>, now: &BTreeMap<i64, Row>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (rowid, row) in now {
        let credit = match before.get(rowid) {
            Some(old) if old.user_id == row.user_id => (row.seconds - old.seconds).max(0.0),
            _ => row.seconds.max(0.0),
        };
        *out.entry(row.user_id.clone()).or_default() += credit;
    }
    out
}

#[async_trait::async_trait]
impl Collector for PlaybackReporting {
    fn name(&self) -> &'static str {
        "playback_reporting"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let body = serde_json::json!({ "CustomQueryString": QUERY, "ReplaceUserId": false });
        let answer: CustomQueryAnswer = self.client.post_json(ENDPOINT, &body).await?;
        let now = rows(&answer)?;
        if let Some(saved) = &self.saved {
            for (user, seconds) in growth(&saved.rows, &now) {
                *self.credited.entry(user).or_default() += seconds;
            }
        }
        let saved = Saved { rows: now };
        if let Err(e) = self.file.save(&saved) {
            tracing::warn!(error = %e, "cannot save the Playback Reporting rows");
        }
        self.saved = Some(saved);
        if !self.privacy.per_user_series() {
            return Ok(());
        }
        let users: Vec<NamedUser> = self.client.get_json("/Users", None).await?;
        let names: HashMap<String, String> = users
            .into_iter()
            .filter_map(|u| Some((u.id?.to_ascii_lowercase(), u.name?)))
            .collect();
        let mut watch: BTreeMap<String, f64> = BTreeMap::new();
        for (user_id, seconds) in &self.credited {
            let name = names.get(&user_id.to_ascii_lowercase()).map(String::as_str);
            if let Some(label) = self.privacy.user(Some(user_id), name) {
                *watch.entry(label).or_default() += seconds;
            }
        }
        let mut family = Family::counter(
            "jellyfin_user_watch_time_seconds_total",
            "Seconds of playback per user, pauses excluded, from the Playback Reporting plugin.",
        );
        for (user, seconds) in watch {
            family.push(vec![("user", user)], seconds);
        }
        out.push(family);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rows: &[(&str, &str, &str)]) -> CustomQueryAnswer {
        serde_json::from_value(serde_json::json!({
            "colums": ["RowId", "UserId", "PlayDuration"],
            "results": rows.iter().map(|(a, b, c)| [a, b, c]).collect::<Vec<_>>(),
            "message": ""
        }))
        .unwrap()
    }

    #[test]
    fn growth_of_known_rows_and_all_of_new_ones_per_user() {
        let before = rows(&answer(&[("1", "a", "100"), ("2", "b", "40")])).unwrap();
        let now = rows(&answer(&[
            ("1", "a", "130"),
            ("2", "b", "40"),
            ("3", "a", "25"),
        ]))
        .unwrap();
        let got = growth(&before, &now);
        assert_eq!(got, BTreeMap::from([("a".into(), 55.0), ("b".into(), 0.0)]));
        // A row that shrank (the plugin never does this) credits nothing.
        let shrunk = rows(&answer(&[("1", "a", "90")])).unwrap();
        assert_eq!(growth(&now, &shrunk)["a"], 0.0);
    }

    #[test]
    fn errors_and_odd_answers_are_named() {
        let failed: CustomQueryAnswer = serde_json::from_value(serde_json::json!({
            "colums": [], "results": [],
            "message": "Error Running Query</br>no such table: PlaybackActivity<pre>…</pre>"
        }))
        .unwrap();
        let e = rows(&failed).unwrap_err();
        assert!(
            e.contains("submit_custom_query") && e.contains("no such table"),
            "{e}"
        );
        let odd: CustomQueryAnswer =
            serde_json::from_value(serde_json::json!({ "colums": ["x"], "results": [["1"]] }))
                .unwrap();
        assert!(rows(&odd).unwrap_err().contains("RowId"));
        let partly = rows(&answer(&[("1", "a", "x"), ("2", "", "5"), ("3", "c", "7")])).unwrap();
        assert_eq!(partly.keys().copied().collect::<Vec<_>>(), [3]);
    }
}
