//! The gauges of one GET /Sessions answer: who is connected, what is playing and how, and
//! what the transcoder is doing. Pure: a list of sessions in, families out.

use std::collections::BTreeMap;

use super::classify::{hw_accel, is_video_transcode, lead_seconds, play_method, source_video};
use crate::jellyfin::dto::{EncodingOptions, NowPlaying, Session};
use crate::labels::PLAY_METHODS;
use crate::privacy::Privacy;
use crate::sample::{Family, enum_label, label_value};

/// Clients beyond this many distinct names are counted as `other`.
const TOP_CLIENTS: usize = 20;

pub fn is_paused(session: &Session) -> bool {
    session
        .play_state
        .as_ref()
        .and_then(|p| p.is_paused)
        .unwrap_or(false)
}

/// Bits per second the session streams: the transcoding job's output rate when there is a job
/// (transcode, remux or direct stream), else the media source's rate, else the sum of its
/// default video and audio streams.
fn bitrate(session: &Session, item: &NowPlaying) -> Option<f64> {
    let transcoded = session
        .transcoding_info
        .as_ref()
        .and_then(|t| t.bitrate)
        .filter(|_| play_method(session) != "directplay");
    if transcoded.is_some() {
        return transcoded;
    }
    if let Some(rate) = item
        .media_sources
        .as_deref()
        .and_then(|s| s.first())
        .and_then(|s| s.bitrate)
    {
        return Some(rate);
    }
    let streams = item.media_streams.as_deref()?;
    let rates: Vec<f64> = streams
        .iter()
        .filter(|s| {
            matches!(s.kind.as_deref(), Some("Video" | "Audio")) && s.is_default == Some(true)
        })
        .filter_map(|s| s.bit_rate)
        .collect();
    (!rates.is_empty()).then(|| rates.iter().sum())
}

fn counted<K: Ord>(
    map: BTreeMap<K, f64>,
    mut family: Family,
    labels: impl Fn(K) -> crate::sample::Labels,
) -> Family {
    for (key, value) in map {
        family.push(labels(key), value);
    }
    family
}

/// `encoding`: GET /System/Configuration/encoding when known (for `hw_accel`).
pub fn families(
    sessions: &[Session],
    privacy: &Privacy,
    encoding: Option<&EncodingOptions>,
) -> Vec<Family> {
    let mut out = Vec::new();

    let mut clients: BTreeMap<String, f64> = BTreeMap::new();
    for s in sessions {
        *clients
            .entry(label_value(s.client.as_deref().unwrap_or("unknown")))
            .or_default() += 1.0;
    }
    if clients.len() > TOP_CLIENTS {
        let mut ranked: Vec<(String, f64)> = clients.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let other: f64 = ranked[TOP_CLIENTS..].iter().map(|(_, n)| n).sum();
        clients = ranked.into_iter().take(TOP_CLIENTS).collect();
        *clients.entry("other".into()).or_default() += other;
    }
    let help = "Sessions active within collectors.sessions.active_within, by client app (top 20, rest other).";
    out.push(counted(
        clients,
        Family::gauge("jellyfin_sessions", help),
        |c| vec![("client", c)],
    ));

    let mut users: Vec<&str> = sessions
        .iter()
        .filter_map(|s| s.user_id.as_deref())
        .collect();
    users.sort_unstable();
    users.dedup();
    out.push(
        Family::gauge(
            "jellyfin_active_users",
            "Distinct users with an active session.",
        )
        .with(vec![], users.len() as f64),
    );

    let playing: Vec<(&Session, &NowPlaying)> = sessions
        .iter()
        .filter_map(|s| s.now_playing_item.as_ref().map(|i| (s, i)))
        .collect();
    let mut streams: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for method in PLAY_METHODS {
        for state in ["playing", "paused"] {
            streams.insert((method.into(), "video".into(), state.into()), 0.0);
        }
    }
    for (s, item) in &playing {
        let state = if is_paused(s) { "paused" } else { "playing" };
        *streams
            .entry((
                play_method(s).to_string(),
                enum_label(item.media_type.as_deref()),
                state.into(),
            ))
            .or_default() += 1.0;
    }
    let help = "Sessions playing something, by play method as Jellyfin's dashboard shows it (directplay, remux, directstream, transcode), media type and state.";
    out.push(counted(
        streams,
        Family::gauge("jellyfin_streams", help),
        |(m, t, st)| vec![("play_method", m), ("media_type", t), ("state", st)],
    ));

    if privacy.per_user_series() {
        let mut per_user: BTreeMap<String, f64> = BTreeMap::new();
        let mut bandwidth: BTreeMap<String, f64> = BTreeMap::new();
        for (s, item) in &playing {
            let Some(user) = privacy.user(s.user_id.as_deref(), s.user_name.as_deref()) else {
                continue;
            };
            *per_user.entry(user.clone()).or_default() += 1.0;
            let rate = if is_paused(s) {
                0.0
            } else {
                bitrate(s, item).unwrap_or(0.0) / 8.0
            };
            *bandwidth.entry(user).or_default() += rate;
        }
        let help = "Streams per user (the user label follows privacy.user_label).";
        out.push(counted(
            per_user,
            Family::gauge("jellyfin_user_streams", help),
            |u| vec![("user", u)],
        ));
        let help = "Bytes per second streamed to a user: transcoder output rate, else the media bitrate; paused streams count 0.";
        out.push(counted(
            bandwidth,
            Family::gauge("jellyfin_bandwidth_bytes_per_second", help),
            |u| vec![("user", u)],
        ));
    }

    let transcodes: Vec<(&Session, &NowPlaying)> = playing
        .iter()
        .copied()
        .filter(|(s, _)| is_video_transcode(s))
        .collect();
    let mut active: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, f64> = BTreeMap::new();
    let mut conversions: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut speeds: Vec<f64> = Vec::new();
    let mut leads: Vec<f64> = Vec::new();
    for (s, item) in &transcodes {
        let info = s.transcoding_info.as_ref();
        let target = enum_label(info.and_then(|t| t.video_codec.as_deref()));
        *active
            .entry((hw_accel(s, item, encoding), target.clone()))
            .or_default() += 1.0;
        for reason in info
            .and_then(|t| t.transcode_reasons.as_deref())
            .unwrap_or_default()
        {
            *reasons.entry(enum_label(Some(reason))).or_default() += 1.0;
        }
        let source = source_video(item);
        let from = enum_label(source.and_then(|v| v.codec.as_deref()));
        *conversions.entry((from, target)).or_default() += 1.0;
        if is_paused(s) {
            continue;
        }
        let rate = info
            .and_then(|t| t.framerate)
            .zip(source.and_then(|v| v.real_frame_rate));
        if let Some((out_fps, in_fps)) = rate.filter(|(_, i)| *i > 0.0) {
            speeds.push(out_fps / in_fps);
        }
        leads.extend(lead_seconds(s, item));
    }
    let help = "Active video transcodes (video re-encoded; remuxes and audio-only jobs are not), paused ones included, by acceleration this stream uses and target codec.";
    out.push(counted(
        active,
        Family::gauge("jellyfin_transcode_active", help),
        |(hw, codec)| vec![("hw_accel", hw), ("video_codec", codec)],
    ));
    let help = "Active video transcodes per TranscodeReason (one stream can count under several).";
    out.push(counted(
        reasons,
        Family::gauge("jellyfin_transcode_reasons", help),
        |r| vec![("reason", r)],
    ));
    let help = "Active video transcodes by source codec and target codec.";
    out.push(counted(
        conversions,
        Family::gauge("jellyfin_transcode_conversions", help),
        |(from, to)| vec![("from_codec", from), ("to_codec", to)],
    ));
    if !speeds.is_empty() {
        let min = speeds.iter().copied().fold(f64::INFINITY, f64::min);
        let avg = speeds.iter().sum::<f64>() / speeds.len() as f64;
        let help = "Transcode frame rate over source frame rate of unpaused video transcodes (1 = real time).";
        out.push(
            Family::gauge("jellyfin_transcode_speed_ratio", help)
                .with(vec![("stat", "min".into())], min)
                .with(vec![("stat", "avg".into())], avg),
        );
    }
    if let Some(min) = leads.iter().copied().reduce(f64::min) {
        let help = "Seconds the transcoder is ahead of its viewer (CompletionPercentage of the run time minus the position), minimum over unpaused video transcodes; near 0 the viewer is about to buffer.";
        out.push(
            Family::gauge("jellyfin_transcode_lead_seconds", help)
                .with(vec![("stat", "min".into())], min),
        );
    }
    out
}
