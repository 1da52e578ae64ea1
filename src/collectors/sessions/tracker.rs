//! Counters that need two polls: playback starts, watch time, item plays and transcodes
//! started. A start is a session showing an item it did not show at the previous poll; the
//! first poll after start-up only records what is already playing (counting it would count
//! it again after every restart of the agent). Counters restart at 0 with the agent, which
//! rate() and increase() handle as a counter reset.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::snapshot::{enum_label, hw_accel, is_paused, is_transcode, play_method};
use crate::jellyfin::dto::{NowPlaying, Session};
use crate::privacy::Privacy;
use crate::sample::{Family, label_value};

/// Jellyfin's HardwareAccelerationType values (the same in the 10.11 and 12.0 API). Each
/// starts at 0, as the playback counters do: Prometheus' increase() does not count a series'
/// first sample, so a counter born at 1 would hide the first transcode of its kind from the
/// failure-rate alert and panel. A value Jellyfin adds later still gets its series, from 1.
pub const HW_ACCELS: [&str; 8] = crate::labels::HW_ACCEL;

#[derive(Debug, Clone, PartialEq)]
struct Playing {
    item: String,
    paused: bool,
}

#[derive(Debug, Default)]
pub struct Tracker {
    previous: Option<(Instant, HashMap<String, Playing>)>,
    playbacks: BTreeMap<(String, String), u64>,
    watch_seconds: BTreeMap<String, f64>,
    item_plays: BTreeMap<(String, String), u64>,
    transcodes: BTreeMap<String, u64>,
    top_items: usize,
}

/// The `item` and `item_type` labels: episodes count for their series, songs for their album.
fn item_labels(item: &NowPlaying) -> (String, String) {
    let name = |v: &Option<String>| v.as_deref().filter(|n| !n.is_empty()).map(label_value);
    match item.kind.as_deref() {
        Some("Episode") => (
            name(&item.series_name)
                .or(name(&item.name))
                .unwrap_or_default(),
            "series".into(),
        ),
        Some("Audio") => (
            name(&item.album).or(name(&item.name)).unwrap_or_default(),
            "album".into(),
        ),
        kind => (name(&item.name).unwrap_or_default(), enum_label(kind)),
    }
}

impl Tracker {
    pub fn new(top_items: usize) -> Self {
        let mut tracker = Tracker {
            top_items,
            ..Tracker::default()
        };
        for method in ["directplay", "directstream", "transcode"] {
            for media in ["video", "audio"] {
                tracker.playbacks.insert((method.into(), media.into()), 0);
            }
        }
        for hw in HW_ACCELS {
            tracker.transcodes.insert(hw.into(), 0);
        }
        tracker
    }

    /// Takes one poll's sessions. `max_gap` caps the watch time credited between two polls,
    /// so a poll that failed in between does not credit time nobody saw.
    pub fn observe(
        &mut self,
        sessions: &[Session],
        now: Instant,
        max_gap: Duration,
        privacy: &Privacy,
    ) {
        let mut current = HashMap::new();
        for s in sessions {
            let (Some(id), Some(item)) = (s.id.as_deref(), s.now_playing_item.as_ref()) else {
                continue;
            };
            let playing = Playing {
                item: item.id.clone().unwrap_or_default(),
                paused: is_paused(s),
            };
            let before = self.previous.as_ref().map(|(at, map)| (*at, map.get(id)));
            match before {
                // The first poll only records.
                None => {}
                // Still the same item: watch time, when it played at both polls.
                Some((at, Some(prev))) if prev.item == playing.item => {
                    let user = privacy.user(s.user_id.as_deref(), s.user_name.as_deref());
                    if let (false, false, Some(user)) = (prev.paused, playing.paused, user) {
                        let credit = now.saturating_duration_since(at).min(max_gap).as_secs_f64();
                        *self.watch_seconds.entry(user).or_default() += credit;
                    }
                }
                Some(_) => self.started(s, item),
            }
            current.insert(id.to_string(), playing);
        }
        self.previous = Some((now, current));
    }

    fn started(&mut self, session: &Session, item: &NowPlaying) {
        *self
            .playbacks
            .entry((play_method(session), enum_label(item.media_type.as_deref())))
            .or_default() += 1;
        if is_transcode(session) {
            *self.transcodes.entry(hw_accel(session)).or_default() += 1;
        }
        if self.top_items == 0 {
            return;
        }
        let key = item_labels(item);
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

    pub fn families(&self, privacy: &Privacy) -> Vec<Family> {
        let mut playbacks = Family::counter(
            "jellyfin_playback_total",
            "Playback starts seen (a new item on a session), by play method and media type.",
        );
        for ((method, media), n) in &self.playbacks {
            playbacks.push(
                vec![("type", method.clone()), ("media_type", media.clone())],
                *n as f64,
            );
        }
        let mut transcodes = Family::counter(
            "jellyfin_transcode_total",
            "Transcodes started, by reported acceleration.",
        );
        for (hw, n) in &self.transcodes {
            transcodes.push(vec![("hw_accel", hw.clone())], *n as f64);
        }
        let mut out = vec![playbacks, transcodes];
        if self.top_items > 0 {
            let mut items = Family::counter(
                "jellyfin_item_plays_total",
                "Playback starts per movie, series or album (the privacy.top_items most played).",
            );
            for ((item, kind), n) in &self.item_plays {
                items.push(
                    vec![("item", item.clone()), ("item_type", kind.clone())],
                    *n as f64,
                );
            }
            out.push(items);
        }
        if privacy.per_user_series() {
            let mut watch = Family::counter(
                "jellyfin_user_watch_time_seconds_total",
                "Seconds of unpaused playback per user, accrued between polls.",
            );
            for (user, seconds) in &self.watch_seconds {
                watch.push(vec![("user", user.clone())], *seconds);
            }
            out.push(watch);
        }
        out
    }
}
