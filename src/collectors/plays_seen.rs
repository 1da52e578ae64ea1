//! What the sessions collector saw playing, for the activity collector to classify the server's
//! own playback-start entries: the activity log says *that* a user started an item and when, but
//! not how; GET /Sessions says how, but misses short plays and cannot tell a new start from a
//! session that dropped out of the list and came back.
//!
//! The sessions collector [`PlaysSeen::record`]s each playing session every poll; the activity
//! collector asks [`PlaysSeen::find`] for the sighting of a (user, item) around the time of a
//! start entry. Sightings are spans: one per (user, item, play method) seen without a gap longer
//! than the match window, so a user who plays the same film again tomorrow, or switches from
//! direct play to transcode, has a span per play. At most [`MAX_SPANS`]; the least recently seen
//! goes first. Sightings are stamped with the agent's clock and compared with the server's
//! entry dates: the agent runs on the Jellyfin host, so both read the same clock (a skew
//! larger than the window would turn seen starts into `unknown`, never count them twice).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::jellyfin::dto::NowPlaying;
use crate::sample::label_value;

/// Enough for every stream of a big server over the longest activity interval.
pub const MAX_SPANS: usize = 4096;

/// One uninterrupted sighting of a user playing an item with one play method.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub user_id: String,
    pub item_id: String,
    /// directplay, remux, directstream, transcode (jellyfin_streams' play_method).
    pub play_method: String,
    /// The `item` and `item_type` labels of jellyfin_item_plays_total.
    pub item: (String, String),
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Clone)]
pub struct PlaysSeen {
    spans: Arc<Mutex<VecDeque<Sighting>>>,
    /// How far before its first sighting a start may lie (the sessions poll interval plus
    /// slack) and how long a span survives a gap.
    window_ms: i64,
}

impl PlaysSeen {
    /// `window_ms`: at least the sessions collector's interval, since a start is seen at the
    /// next poll at the latest.
    pub fn new(window_ms: i64) -> Self {
        PlaysSeen {
            spans: Arc::default(),
            window_ms: window_ms.max(1),
        }
    }

    /// How long after a start the activity collector waits for a sighting before it settles
    /// for `unknown`.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Notes that `user_id` plays `item_id` with `play_method` at `at_ms`.
    pub fn record(
        &self,
        user_id: &str,
        item_id: &str,
        play_method: &str,
        item: (String, String),
        at_ms: i64,
    ) {
        let (user_id, item_id) = (id_key(user_id), id_key(item_id));
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window_ms;
        let current = spans.iter().position(|s| {
            s.user_id == user_id
                && s.item_id == item_id
                && s.play_method == play_method
                && at_ms - s.last_ms <= window
                && at_ms >= s.first_ms
        });
        let mut span = match current.and_then(|i| spans.remove(i)) {
            Some(span) => span,
            None => Sighting {
                user_id,
                item_id,
                play_method: play_method.into(),
                item,
                first_ms: at_ms,
                last_ms: at_ms,
            },
        };
        span.last_ms = span.last_ms.max(at_ms);
        // Most recently seen at the back: eviction takes the front.
        spans.push_back(span);
        while spans.len() > MAX_SPANS {
            spans.pop_front();
        }
    }

    /// The sighting of the play `user_id` started on `item_id` at `start_ms`: a span of that
    /// user and item that covers the start or begins within the window after it; the nearest
    /// if several do.
    pub fn find(&self, user_id: &str, item_id: &str, start_ms: i64) -> Option<Sighting> {
        let (user_id, item_id) = (id_key(user_id), id_key(item_id));
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        spans
            .iter()
            .filter(|s| s.user_id == user_id && s.item_id == item_id)
            .filter(|s| s.first_ms - self.window_ms <= start_ms && start_ms <= s.last_ms)
            .min_by_key(|s| (s.first_ms - start_ms).abs())
            .cloned()
    }
}

/// The `item` and `item_type` labels: episodes count for their series, songs for their album.
pub fn item_labels(item: &NowPlaying) -> (String, String) {
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
        kind => (
            name(&item.name).unwrap_or_default(),
            crate::sample::enum_label(kind),
        ),
    }
}

/// Guids as the server writes them in both places ("N": 32 lower-case hex digits), whatever
/// the spelling.
fn id_key(id: &str) -> String {
    id.replace('-', "").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> (String, String) {
        ("Film".into(), "movie".into())
    }

    #[test]
    fn a_start_matches_the_span_seen_after_it_within_the_window() {
        let seen = PlaysSeen::new(30_000);
        for t in [10_000, 25_000, 40_000] {
            seen.record("u", "i", "remux", labels(), t);
        }
        let found = seen.find("u", "i", 1_000).unwrap();
        assert_eq!(
            (found.play_method.as_str(), found.first_ms, found.last_ms),
            ("remux", 10_000, 40_000)
        );
        // A restart of the item while it plays is covered by the span.
        assert_eq!(seen.find("u", "i", 30_000).unwrap().play_method, "remux");
        // Too early, too late, another user or item: not this play.
        assert_eq!(seen.find("u", "i", -25_000), None);
        assert_eq!(seen.find("u", "i", 41_000), None);
        assert_eq!(seen.find("v", "i", 10_000), None);
        assert_eq!(seen.find("u", "j", 10_000), None);
    }

    #[test]
    fn a_later_play_or_another_method_is_its_own_span() {
        let seen = PlaysSeen::new(30_000);
        seen.record("u", "i", "directplay", labels(), 10_000);
        seen.record("u", "i", "transcode", labels(), 20_000);
        seen.record("u", "i", "directplay", labels(), 500_000);
        assert_eq!(
            seen.find("u", "i", 5_000).unwrap().play_method,
            "directplay"
        );
        assert_eq!(
            seen.find("u", "i", 15_000).unwrap().play_method,
            "transcode"
        );
        let late = seen.find("u", "i", 490_000).unwrap();
        assert_eq!((late.first_ms, late.last_ms), (500_000, 500_000));
    }

    #[test]
    fn bounded_the_least_recently_seen_goes_first() {
        let seen = PlaysSeen::new(1_000);
        for i in 0..MAX_SPANS + 10 {
            seen.record("u", &i.to_string(), "directplay", labels(), i as i64);
        }
        assert_eq!(seen.spans.lock().unwrap().len(), MAX_SPANS);
        assert_eq!(seen.find("u", "0", 0), None);
        assert!(
            seen.find("u", &(MAX_SPANS + 9).to_string(), (MAX_SPANS + 9) as i64)
                .is_some()
        );
    }
}
