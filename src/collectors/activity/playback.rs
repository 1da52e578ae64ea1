//! Playback starts from the server's own record of them: one VideoPlayback, AudioPlayback or
//! Playback entry per start (PlaybackStartLogger.cs), whatever the poll timing, reconnects,
//! idle resumes and restarts. The play method comes from what the sessions collector saw of
//! that user and item around that time ([`PlaysSeen`]); a start it has not seen yet waits
//! (saved with the cursor) until the match window has passed, then counts as `unknown`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::collectors::plays_seen::PlaysSeen;
use crate::labels::PLAY_METHOD_VALUES;
use crate::sample::Family;

/// Starts waiting for a sighting beyond this many are settled as `unknown` at once.
pub const MAX_PENDING: usize = 10_000;

/// A start entry not yet counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingStart {
    pub date_ms: i64,
    pub user_id: Option<String>,
    pub item_id: Option<String>,
    /// video, audio or other (from the entry's Type).
    pub media_type: String,
}

/// A start ready to be counted: its play method and, when known, its item labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub start: PendingStart,
    pub play_method: String,
    pub item: Option<(String, String)>,
}

pub struct Starts {
    seen: PlaysSeen,
    playbacks: BTreeMap<(String, String), u64>,
    item_plays: BTreeMap<(String, String), u64>,
    top_items: usize,
}

impl Starts {
    pub fn new(seen: PlaysSeen, top_items: usize) -> Self {
        let mut playbacks = BTreeMap::new();
        // Born at 0 for what the dashboards split by: increase() skips a series' first sample.
        for method in PLAY_METHOD_VALUES {
            for media in ["video", "audio"] {
                playbacks.insert((method.to_string(), media.to_string()), 0);
            }
        }
        Starts {
            seen,
            playbacks,
            item_plays: BTreeMap::new(),
            top_items,
        }
    }

    /// Splits `pending` into starts to count now (seen, or past the window at `now_ms`) and
    /// starts still waiting.
    pub fn settle(
        &self,
        pending: Vec<PendingStart>,
        now_ms: i64,
    ) -> (Vec<Settled>, Vec<PendingStart>) {
        let overflow = pending.len().saturating_sub(MAX_PENDING);
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for (i, start) in pending.into_iter().enumerate() {
            let sighting = start
                .user_id
                .as_deref()
                .zip(start.item_id.as_deref())
                .and_then(|(user, item)| self.seen.find(user, item, start.date_ms));
            match sighting {
                Some(s) => ready.push(Settled {
                    start,
                    play_method: s.play_method,
                    item: Some(s.item),
                }),
                None if i < overflow || now_ms - start.date_ms > self.seen.window_ms() => ready
                    .push(Settled {
                        start,
                        play_method: "unknown".into(),
                        item: None,
                    }),
                None => waiting.push(start),
            }
        }
        (ready, waiting)
    }

    pub fn count(&mut self, settled: &Settled) {
        *self
            .playbacks
            .entry((
                settled.play_method.clone(),
                settled.start.media_type.clone(),
            ))
            .or_default() += 1;
        let (Some(key), true) = (settled.item.clone(), self.top_items > 0) else {
            return;
        };
        if !self.item_plays.contains_key(&key) && self.item_plays.len() >= self.top_items {
            // Bounded: the least played item makes room (its series ends).
            if let Some(least) = self
                .item_plays
                .iter()
                .min_by_key(|(_, n)| **n)
                .map(|(k, _)| k.clone())
            {
                self.item_plays.remove(&least);
            }
        }
        *self.item_plays.entry(key).or_default() += 1;
    }

    pub fn families(&self) -> Vec<Family> {
        let mut playbacks = Family::counter(
            "jellyfin_playback_total",
            "Playback starts the server logged (activity entries VideoPlayback, AudioPlayback, Playback), by the play method seen in the session (unknown when not seen) and media type.",
        );
        for ((method, media), n) in &self.playbacks {
            playbacks.push(
                vec![("type", method.clone()), ("media_type", media.clone())],
                *n as f64,
            );
        }
        let mut out = vec![playbacks];
        if self.top_items > 0 {
            let mut items = Family::counter(
                "jellyfin_item_plays_total",
                "Playback starts the server logged per movie, series or album (the privacy.top_items most played).",
            );
            for ((item, kind), n) in &self.item_plays {
                items.push(
                    vec![("item", item.clone()), ("item_type", kind.clone())],
                    *n as f64,
                );
            }
            out.push(items);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(date_ms: i64, item: &str) -> PendingStart {
        PendingStart {
            date_ms,
            user_id: Some("u".into()),
            item_id: Some(item.into()),
            media_type: "video".into(),
        }
    }

    #[test]
    fn a_seen_start_takes_its_method_an_unseen_one_waits_then_is_unknown() {
        let seen = PlaysSeen::new(30_000);
        seen.record("u", "a", "remux", ("Film".into(), "movie".into()), 110_000);
        let mut starts = Starts::new(seen, 10);
        let (ready, waiting) =
            starts.settle(vec![start(100_000, "a"), start(100_000, "b")], 105_000);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].play_method, "remux");
        assert_eq!(waiting, [start(100_000, "b")]);
        let (late, waiting) = starts.settle(waiting, 131_000);
        assert!(waiting.is_empty());
        assert_eq!(
            (late[0].play_method.as_str(), &late[0].item),
            ("unknown", &None)
        );
        for s in ready.iter().chain(&late) {
            starts.count(s);
        }
        let families = starts.families();
        let value = |labels: &[(&str, &str)]| {
            families[0]
                .samples
                .iter()
                .find(|s| {
                    s.labels
                        .iter()
                        .map(|(k, v)| (*k, v.as_str()))
                        .eq(labels.iter().copied())
                })
                .map(|s| s.value)
        };
        assert_eq!(
            value(&[("type", "remux"), ("media_type", "video")]),
            Some(1.0)
        );
        assert_eq!(
            value(&[("type", "unknown"), ("media_type", "video")]),
            Some(1.0)
        );
        assert_eq!(
            value(&[("type", "transcode"), ("media_type", "audio")]),
            Some(0.0)
        );
        assert_eq!(families[1].samples.len(), 1);
    }
}
