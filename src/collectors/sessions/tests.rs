//! The sessions collector on the real captures, and the counters over sequences of polls.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::snapshot::families;
use super::tracker::Tracker;
use crate::jellyfin::dto::Session;
use crate::privacy::{Privacy, UserLabel};
use crate::sample::Family;

fn capture(name: &str) -> Vec<Session> {
    let path = format!(
        "{}/tests/fixtures/jellyfin/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// name -> "label=value,…" -> value, for exact comparisons.
fn table(families: &[Family]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for f in families {
        let entry = out.entry(f.name.to_string()).or_default();
        for s in &f.samples {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            entry.insert(labels.join(","), s.value);
        }
    }
    out
}

fn expect(table: &BTreeMap<String, BTreeMap<String, f64>>, name: &str, want: &[(&str, f64)]) {
    let got = table.get(name).cloned().unwrap_or_default();
    let want: BTreeMap<String, f64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want, "{name}");
}

/// jellyfin_transcode_total: every acceleration type at 0 but `hw`, which has `n`.
fn expect_transcodes(table: &BTreeMap<String, BTreeMap<String, f64>>, hw: &str, n: f64) {
    let want: Vec<(String, f64)> = super::tracker::HW_ACCELS
        .iter()
        .map(|h| (format!("hw_accel={h}"), if *h == hw { n } else { 0.0 }))
        .collect();
    let want: Vec<(&str, f64)> = want.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    expect(table, "jellyfin_transcode_total", &want);
}

#[test]
fn the_10_9_capture_with_two_transcodes_gives_exact_gauges() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let t = table(&families(
        &capture("sessions.transcoding.10.9.6.json"),
        &privacy,
    ));
    expect(
        &t,
        "jellyfin_sessions",
        &[
            ("client=Jellyfin Web", 4.0),
            ("client=Jellyseerr", 1.0),
            ("client=jfa-go", 1.0),
        ],
    );
    expect(&t, "jellyfin_active_users", &[("", 5.0)]);
    expect(
        &t,
        "jellyfin_streams",
        &[
            ("play_method=directplay,media_type=video,state=paused", 0.0),
            ("play_method=directplay,media_type=video,state=playing", 0.0),
            (
                "play_method=directstream,media_type=video,state=paused",
                0.0,
            ),
            (
                "play_method=directstream,media_type=video,state=playing",
                0.0,
            ),
            ("play_method=transcode,media_type=video,state=paused", 1.0),
            ("play_method=transcode,media_type=video,state=playing", 1.0),
        ],
    );
    expect(&t, "jellyfin_user_streams", &[("user=USER8", 2.0)]);
    // The playing transcode's output bitrate, 4,872,000 bit/s; the paused one counts 0.
    expect(
        &t,
        "jellyfin_bandwidth_bytes_per_second",
        &[("user=USER8", 609_000.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_active",
        &[("hw_accel=none,video_codec=h264", 2.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_reasons",
        &[("reason=containerbitrateexceedslimit", 2.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_conversions",
        &[
            ("from_codec=h264,to_codec=h264", 1.0),
            ("from_codec=hevc,to_codec=h264", 1.0),
        ],
    );
    assert!(
        !t.contains_key("jellyfin_transcode_speed_ratio"),
        "10.9 reports no transcode frame rate"
    );
}

#[test]
fn the_10_11_idle_capture_has_sessions_but_no_streams() {
    let privacy = Privacy::with_salt(UserLabel::Hash, [7; 16]);
    let t = table(&families(&capture("sessions.idle.10.11.11.json"), &privacy));
    expect(
        &t,
        "jellyfin_sessions",
        &[
            ("client=Home Assistant", 1.0),
            ("client=Seerr", 1.0),
            ("client=Wholphin", 1.0),
        ],
    );
    assert!(t["jellyfin_streams"].values().all(|v| *v == 0.0));
    expect(&t, "jellyfin_transcode_active", &[]);
    expect(&t, "jellyfin_user_streams", &[]);
}

#[test]
fn privacy_none_drops_every_per_user_series() {
    let privacy = Privacy::with_salt(UserLabel::None, [0; 16]);
    let t = table(&families(
        &capture("sessions.transcoding.10.9.6.json"),
        &privacy,
    ));
    assert!(
        !t.contains_key("jellyfin_user_streams")
            && !t.contains_key("jellyfin_bandwidth_bytes_per_second")
    );
    let mut tracker = Tracker::new(50);
    tracker.observe(
        &capture("sessions.transcoding.10.9.6.json"),
        Instant::now(),
        Duration::from_secs(30),
        &privacy,
    );
    assert!(
        !table(&tracker.families(&privacy)).contains_key("jellyfin_user_watch_time_seconds_total")
    );
}

/// A session playing `item` (None: idle), paused or not, by direct play or transcoding.
fn session(id: &str, item: Option<(&str, &str, &str)>, paused: bool, transcode: bool) -> Session {
    let json = match item {
        None => format!(r#"{{"Id":"{id}","UserId":"u1","UserName":"alice","Client":"Web"}}"#),
        Some((item_id, kind, name)) => format!(
            r#"{{"Id":"{id}","UserId":"u1","UserName":"alice","Client":"Web",
                "NowPlayingItem":{{"Id":"{item_id}","Type":"{kind}","MediaType":"Video","Name":"{name}","SeriesName":"Show"}},
                "PlayState":{{"IsPaused":{paused},"PlayMethod":"{}"}}
                {}}}"#,
            if transcode { "Transcode" } else { "DirectPlay" },
            if transcode {
                r#","TranscodingInfo":{"VideoCodec":"h264","HardwareAccelerationType":"vaapi"}"#
            } else {
                ""
            }
        ),
    };
    serde_json::from_str(&json).unwrap()
}

#[test]
fn a_play_that_starts_pauses_resumes_and_stops_is_counted_once_with_unpaused_time() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let gap = Duration::from_secs(30);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut tracker = Tracker::new(50);
    let polls = [
        (0, vec![session("s1", None, false, false)]),
        (
            15,
            vec![session("s1", Some(("m1", "Movie", "Film")), false, false)],
        ), // starts
        (
            30,
            vec![session("s1", Some(("m1", "Movie", "Film")), false, false)],
        ), // +15 s
        (
            45,
            vec![session("s1", Some(("m1", "Movie", "Film")), true, false)],
        ), // paused
        (
            60,
            vec![session("s1", Some(("m1", "Movie", "Film")), false, false)],
        ), // resumed
        (
            75,
            vec![session("s1", Some(("m1", "Movie", "Film")), false, false)],
        ), // +15 s
        (90, vec![session("s1", None, false, false)]), // stopped
        (
            105,
            vec![session("s1", Some(("e1", "Episode", "Pilot")), false, true)],
        ), // a transcode starts
    ];
    for (second, sessions) in &polls {
        tracker.observe(sessions, at(*second), gap, &privacy);
    }
    let t = table(&tracker.families(&privacy));
    assert_eq!(
        t["jellyfin_playback_total"]["type=directplay,media_type=video"],
        1.0
    );
    assert_eq!(
        t["jellyfin_playback_total"]["type=transcode,media_type=video"],
        1.0
    );
    assert_eq!(t["jellyfin_playback_total"].values().sum::<f64>(), 2.0);
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 30.0)],
    );
    expect(
        &t,
        "jellyfin_item_plays_total",
        &[
            ("item=Film,item_type=movie", 1.0),
            ("item=Show,item_type=series", 1.0),
        ],
    );
    expect_transcodes(&t, "vaapi", 1.0);
}

#[test]
fn a_restarted_agent_does_not_count_what_was_already_playing() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let playing = vec![session("s1", Some(("m1", "Movie", "Film")), false, false)];
    let (mut tracker, t0) = (Tracker::new(50), Instant::now());
    tracker.observe(&playing, t0, Duration::from_secs(30), &privacy);
    tracker.observe(
        &playing,
        t0 + Duration::from_secs(15),
        Duration::from_secs(30),
        &privacy,
    );
    let t = table(&tracker.families(&privacy));
    assert_eq!(t["jellyfin_playback_total"].values().sum::<f64>(), 0.0);
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 15.0)],
    );
}

#[test]
fn watch_time_between_polls_is_capped_and_item_plays_are_bounded() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let t0 = Instant::now();
    let mut tracker = Tracker::new(2);
    tracker.observe(
        &[session("s1", None, false, false)],
        t0,
        Duration::from_secs(30),
        &privacy,
    );
    for (i, name) in ["A", "B", "B", "C"].iter().enumerate() {
        let item = format!("i{i}");
        let s = session("s1", Some((&item, "Movie", name)), false, false);
        tracker.observe(
            &[s],
            t0 + Duration::from_secs(10 * (i as u64 + 1)),
            Duration::from_secs(30),
            &privacy,
        );
    }
    let t = table(&tracker.families(&privacy));
    // A was played least when C needed room.
    expect(
        &t,
        "jellyfin_item_plays_total",
        &[
            ("item=B,item_type=movie", 2.0),
            ("item=C,item_type=movie", 1.0),
        ],
    );
    let s = session("s1", Some(("i3", "Movie", "C")), false, false);
    tracker.observe(
        &[s],
        t0 + Duration::from_secs(3600),
        Duration::from_secs(30),
        &privacy,
    );
    let t = table(&tracker.families(&privacy));
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 30.0)],
    );
}

#[test]
fn a_10_11_hardware_transcode_reports_acceleration_speed_and_an_audio_direct_play() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let sessions = capture("sessions.transcoding.synthetic.10.11.json");
    let t = table(&families(&sessions, &privacy));
    expect(
        &t,
        "jellyfin_transcode_active",
        &[("hw_accel=vaapi,video_codec=h264", 1.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_speed_ratio",
        &[("stat=min", 2.0), ("stat=avg", 2.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_conversions",
        &[("from_codec=hevc,to_codec=h264", 1.0)],
    );
    expect(
        &t,
        "jellyfin_transcode_reasons",
        &[
            ("reason=audiocodecnotsupported", 1.0),
            ("reason=videocodecnotsupported", 1.0),
        ],
    );
    // Transcoder output 8 Mbit/s; the audio direct play's own stream, 320 kbit/s.
    expect(
        &t,
        "jellyfin_bandwidth_bytes_per_second",
        &[("user=User 3", 1_000_000.0), ("user=User 4", 40_000.0)],
    );
    assert_eq!(
        t["jellyfin_streams"]["play_method=directplay,media_type=audio,state=playing"],
        1.0
    );
    let mut tracker = Tracker::new(50);
    tracker.observe(&[], Instant::now(), Duration::from_secs(30), &privacy);
    tracker.observe(&sessions, Instant::now(), Duration::from_secs(30), &privacy);
    let t = table(&tracker.families(&privacy));
    expect_transcodes(&t, "vaapi", 1.0);
    assert_eq!(
        t["jellyfin_item_plays_total"]["item=An Album,item_type=album"],
        1.0
    );
    assert_eq!(
        t["jellyfin_playback_total"]["type=directplay,media_type=audio"],
        1.0
    );
}
