//! What needs more than one poll: watch time, the sightings the activity collector classifies
//! playback starts with ([`PlaysSeen`]), and, when no transcode log is read, video transcodes
//! started.
//!
//! Playback starts are not counted here: the activity log is the server's own record of them
//! (see `collectors::activity`). A transcode start is a session showing a video transcode of an
//! item it was not transcoding when last seen; a session that drops out of the list (paused,
//! reconnecting, the server restarting) and comes back within [`FORGET_AFTER`] is the same
//! job. The first poll after start-up only records what is already going on. Counters restart
//! at 0 with the agent, which rate() and increase() handle as a counter reset.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::classify::{hw_accel, is_video_transcode, play_method};
use super::snapshot::is_paused;
use crate::collectors::plays_seen::{PlaysSeen, item_labels};
use crate::jellyfin::dto::{EncodingOptions, Session};
use crate::privacy::Privacy;
use crate::sample::Family;

/// Jellyfin's HardwareAccelerationType values (the same in the 10.11 and 12.0 API), and
/// `unknown`. Each starts at 0: Prometheus' increase() does not count a series' first sample,
/// so a counter born at 1 would hide the first transcode of its kind from the failure-rate
/// alert and panel.
pub const HW_ACCELS: [&str; 9] = crate::labels::HW_ACCEL;

/// How long a session that left the list is remembered: longer than the server's idle-stop
/// (5 min without a check-in, SessionManager.CheckForIdlePlayback).
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq)]
struct Playing {
    item: String,
    paused: bool,
    video_transcode: bool,
    seen: Instant,
}

pub struct Tracker {
    /// The last poll's time, and every session seen within FORGET_AFTER.
    previous: Option<(Instant, HashMap<String, Playing>)>,
    /// None: the Playback Reporting plugin tells watch time (one producer per family).
    watch_seconds: Option<BTreeMap<String, f64>>,
    /// None: the transcode log counts starts (one producer per family).
    transcodes: Option<BTreeMap<String, u64>>,
    seen: PlaysSeen,
}

impl Tracker {
    pub fn new(seen: PlaysSeen, count_transcodes: bool, count_watch_time: bool) -> Self {
        Tracker {
            previous: None,
            watch_seconds: count_watch_time.then(BTreeMap::new),
            transcodes: count_transcodes
                .then(|| HW_ACCELS.iter().map(|hw| (hw.to_string(), 0)).collect()),
            seen,
        }
    }

    /// Takes one poll's sessions, seen at `now` (`now_ms` on the wall clock, for matching the
    /// activity log). `max_gap` caps the watch time credited between two polls, so a poll that
    /// failed in between does not credit time nobody saw.
    pub fn observe(
        &mut self,
        sessions: &[Session],
        (now, now_ms): (Instant, i64),
        max_gap: Duration,
        privacy: &Privacy,
        encoding: Option<&EncodingOptions>,
    ) {
        let first_poll = self.previous.is_none();
        let (last_poll, mut known) = self.previous.take().unwrap_or((now, HashMap::new()));
        for s in sessions {
            let (Some(id), Some(item)) = (s.id.as_deref(), s.now_playing_item.as_ref()) else {
                continue;
            };
            let playing = Playing {
                item: item.id.clone().unwrap_or_default(),
                paused: is_paused(s),
                video_transcode: is_video_transcode(s),
                seen: now,
            };
            if let (Some(user), Some(item_id)) = (s.user_id.as_deref(), item.id.as_deref()) {
                self.seen
                    .record(user, item_id, play_method(s), item_labels(item), now_ms);
            }
            let before = known.get(id);
            // Watch time: unpaused at this poll and at the previous one (an item change in
            // between is still time watched).
            if before.is_some_and(|p| p.seen == last_poll && !p.paused)
                && !playing.paused
                && let Some(user) = privacy.user(s.user_id.as_deref(), s.user_name.as_deref())
                && let Some(watch_seconds) = &mut self.watch_seconds
            {
                let credit = now
                    .saturating_duration_since(last_poll)
                    .min(max_gap)
                    .as_secs_f64();
                *watch_seconds.entry(user).or_default() += credit;
            }
            let was_transcoding =
                before.is_some_and(|p| p.video_transcode && p.item == playing.item);
            if playing.video_transcode
                && !was_transcoding
                && !first_poll
                && let Some(counts) = &mut self.transcodes
            {
                *counts.entry(hw_accel(s, item, encoding)).or_default() += 1;
            }
            known.insert(id.to_string(), playing);
        }
        known.retain(|_, p| now.saturating_duration_since(p.seen) <= FORGET_AFTER);
        self.previous = Some((now, known));
    }

    pub fn families(&self, privacy: &Privacy) -> Vec<Family> {
        let mut out = Vec::new();
        if let Some(counts) = &self.transcodes {
            let mut transcodes = Family::counter(
                "jellyfin_transcode_total",
                "Video transcodes started (remuxes and audio-only jobs are not), by the acceleration the stream uses.",
            );
            for (hw, n) in counts {
                transcodes.push(vec![("hw_accel", hw.clone())], *n as f64);
            }
            out.push(transcodes);
        }
        if let (true, Some(watch_seconds)) = (privacy.per_user_series(), &self.watch_seconds) {
            let mut watch = Family::counter(
                "jellyfin_user_watch_time_seconds_total",
                "Seconds of unpaused playback per user, credited between two polls that both saw it playing (at most two intervals).",
            );
            for (user, seconds) in watch_seconds {
                watch.push(vec![("user", user.clone())], *seconds);
            }
            out.push(watch);
        }
        out
    }
}
