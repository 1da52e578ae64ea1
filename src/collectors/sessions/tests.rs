//! The sessions collector on the real captures, and the counters over sequences of polls.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::snapshot;
use super::tracker::Tracker;
use crate::collectors::plays_seen::PlaysSeen;
use crate::jellyfin::dto::{EncodingOptions, Session};
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

fn families(sessions: &[Session], privacy: &Privacy) -> Vec<Family> {
    snapshot::families(sessions, privacy, None)
}

/// A tracker counting transcode starts, and the sightings it records.
fn tracker() -> (Tracker, PlaysSeen) {
    let seen = PlaysSeen::new(35_000);
    (Tracker::new(seen.clone(), true, true), seen)
}

/// One poll `second`s after `t0` (wall clock: second × 1000 ms).
fn poll(tracker: &mut Tracker, sessions: &[Session], t0: Instant, second: u64, privacy: &Privacy) {
    tracker.observe(
        sessions,
        (t0 + Duration::from_secs(second), second as i64 * 1000),
        Duration::from_secs(30),
        privacy,
        None,
    );
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
    let mut streams: Vec<(String, f64)> = Vec::new();
    for method in ["directplay", "directstream", "remux", "transcode"] {
        for state in ["paused", "playing"] {
            let n = if method == "transcode" { 1.0 } else { 0.0 };
            streams.push((
                format!("play_method={method},media_type=video,state={state}"),
                n,
            ));
        }
    }
    let streams: Vec<(&str, f64)> = streams.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    expect(&t, "jellyfin_streams", &streams);
    expect(&t, "jellyfin_user_streams", &[("user=USER8", 2.0)]);
    // The playing transcode's output bitrate, 4,872,000 bit/s; the paused one counts 0.
    expect(
        &t,
        "jellyfin_bandwidth_bytes_per_second",
        &[("user=USER8", 609_000.0)],
    );
    // 10.9 does not say, and without the encoding configuration nothing else does.
    expect(
        &t,
        "jellyfin_transcode_active",
        &[("hw_accel=unknown,video_codec=h264", 2.0)],
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
    assert!(
        !t.contains_key("jellyfin_transcode_lead_seconds"),
        "10.9 reports no completion"
    );
    // With the configuration: VA-API decoding h264 only, software encoding.
    let vaapi = EncodingOptions {
        hardware_acceleration_type: Some("vaapi".into()),
        enable_hardware_encoding: Some(false),
        hardware_decoding_codecs: Some(vec!["h264".into(), "vc1".into()]),
    };
    let t = table(&snapshot::families(
        &capture("sessions.transcoding.10.9.6.json"),
        &privacy,
        Some(&vaapi),
    ));
    expect(
        &t,
        "jellyfin_transcode_active",
        &[
            ("hw_accel=none,video_codec=h264", 1.0),
            ("hw_accel=vaapi,video_codec=h264", 1.0),
        ],
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
    let (mut tracker, _) = tracker();
    poll(
        &mut tracker,
        &capture("sessions.transcoding.10.9.6.json"),
        Instant::now(),
        0,
        &privacy,
    );
    assert!(
        !table(&tracker.families(&privacy)).contains_key("jellyfin_user_watch_time_seconds_total")
    );
}

/// A session playing `item` (None: idle), paused or not, by `how`: directplay, remux or
/// transcode (video re-encoded).
fn session(id: &str, item: Option<(&str, &str, &str)>, paused: bool, how: &str) -> Session {
    let (method, info) = match how {
        "directplay" => ("DirectPlay", ""),
        "remux" => (
            "Transcode",
            r#","TranscodingInfo":{"VideoCodec":"copy","IsVideoDirect":true,"IsAudioDirect":true,"HardwareAccelerationType":"vaapi"}"#,
        ),
        _ => (
            "Transcode",
            r#","TranscodingInfo":{"VideoCodec":"h264","IsVideoDirect":false,"IsAudioDirect":false,"HardwareAccelerationType":"none"}"#,
        ),
    };
    let json = match item {
        None => format!(r#"{{"Id":"{id}","UserId":"u1","UserName":"alice","Client":"Web"}}"#),
        Some((item_id, kind, name)) => format!(
            r#"{{"Id":"{id}","UserId":"u1","UserName":"alice","Client":"Web",
                "NowPlayingItem":{{"Id":"{item_id}","Type":"{kind}","MediaType":"Video","Name":"{name}","SeriesName":"Show"}},
                "PlayState":{{"IsPaused":{paused},"PlayMethod":"{method}"}}
                {info}}}"#
        ),
    };
    serde_json::from_str(&json).unwrap()
}

#[test]
fn watch_time_spans_item_changes_and_transcode_starts_survive_a_vanishing_session() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let t0 = Instant::now();
    let (mut tracker, seen) = tracker();
    let film = Some(("m1", "Movie", "Film"));
    let pilot = Some(("e1", "Episode", "Pilot"));
    let polls: [(u64, Vec<Session>); 10] = [
        (0, vec![session("s1", None, false, "")]),
        (15, vec![session("s1", film, false, "remux")]), // a remux: no transcode
        (30, vec![session("s1", film, false, "remux")]), // +15 s
        (45, vec![session("s1", film, true, "remux")]),  // paused
        (60, vec![session("s1", film, false, "remux")]), // resumed
        (75, vec![session("s1", pilot, false, "transcode")]), // next item: +15 s, a transcode
        (90, vec![]),                                    // the session drops out
        (105, vec![session("s1", pilot, false, "transcode")]), // and returns: the same job
        (120, vec![session("s1", pilot, false, "transcode")]), // +15 s
        (135, vec![session("s1", None, false, "")]),     // stopped
    ];
    for (second, sessions) in &polls {
        poll(&mut tracker, sessions, t0, *second, &privacy);
    }
    let t = table(&tracker.families(&privacy));
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 45.0)],
    );
    // The server-wide setting says none: software, certainly.
    expect_transcodes(&t, "none", 1.0);
    // What the activity collector will classify the starts with.
    let remux = seen.find("u1", "m1", 14_000).unwrap();
    assert_eq!(
        (remux.play_method.as_str(), remux.first_ms, remux.last_ms),
        ("remux", 15_000, 60_000)
    );
    assert_eq!(remux.item, ("Film".to_string(), "movie".to_string()));
    let pilot = seen.find("u1", "e1", 74_000).unwrap();
    assert_eq!(
        (pilot.play_method.as_str(), pilot.last_ms),
        ("transcode", 120_000)
    );
    assert_eq!(pilot.item, ("Show".to_string(), "series".to_string()));
}

#[test]
fn a_restarted_agent_does_not_count_what_was_already_transcoding() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let playing = vec![session(
        "s1",
        Some(("m1", "Movie", "Film")),
        false,
        "transcode",
    )];
    let (mut tracker, _) = tracker();
    let t0 = Instant::now();
    poll(&mut tracker, &playing, t0, 0, &privacy);
    poll(&mut tracker, &playing, t0, 15, &privacy);
    let t = table(&tracker.families(&privacy));
    expect_transcodes(&t, "unknown", 0.0);
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 15.0)],
    );
}

#[test]
fn with_the_transcode_log_the_sessions_collector_does_not_count_transcodes() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let mut tracker = Tracker::new(PlaysSeen::new(1_000), false, true);
    let t0 = Instant::now();
    poll(&mut tracker, &[], t0, 0, &privacy);
    let playing = vec![session(
        "s1",
        Some(("m1", "Movie", "Film")),
        false,
        "transcode",
    )];
    poll(&mut tracker, &playing, t0, 15, &privacy);
    assert!(!table(&tracker.families(&privacy)).contains_key("jellyfin_transcode_total"));
}

#[test]
fn watch_time_between_polls_is_capped() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let t0 = Instant::now();
    let (mut tracker, _) = tracker();
    let s = vec![session(
        "s1",
        Some(("i3", "Movie", "C")),
        false,
        "directplay",
    )];
    poll(&mut tracker, &s, t0, 0, &privacy);
    poll(&mut tracker, &s, t0, 3600, &privacy);
    let t = table(&tracker.families(&privacy));
    expect(
        &t,
        "jellyfin_user_watch_time_seconds_total",
        &[("user=alice", 30.0)],
    );
}

#[test]
fn a_10_11_hardware_transcode_reports_acceleration_speed_lead_and_an_audio_direct_play() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let sessions = capture("sessions.transcoding.synthetic.10.11.json");
    let vaapi = EncodingOptions {
        hardware_acceleration_type: Some("vaapi".into()),
        enable_hardware_encoding: Some(true),
        hardware_decoding_codecs: Some(vec!["h264".into()]),
    };
    let t = table(&snapshot::families(&sessions, &privacy, Some(&vaapi)));
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
    // 12.5 % of 7,200 s done, the viewer at 120 s.
    expect(
        &t,
        "jellyfin_transcode_lead_seconds",
        &[("stat=min", 780.0)],
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
    let (mut tracker, _) = tracker();
    let t0 = Instant::now();
    poll(&mut tracker, &[], t0, 0, &privacy);
    tracker.observe(
        &sessions,
        (t0 + Duration::from_secs(15), 15_000),
        Duration::from_secs(30),
        &privacy,
        Some(&vaapi),
    );
    let t = table(&tracker.families(&privacy));
    expect_transcodes(&t, "vaapi", 1.0);
}

#[test]
fn with_the_playback_reporting_plugin_the_sessions_collector_sends_no_watch_time() {
    let privacy = Privacy::with_salt(UserLabel::Name, [0; 16]);
    let mut tracker = Tracker::new(PlaysSeen::new(1_000), true, false);
    let t0 = Instant::now();
    let playing = vec![session(
        "s1",
        Some(("m1", "Movie", "Film")),
        false,
        "directplay",
    )];
    poll(&mut tracker, &playing, t0, 0, &privacy);
    poll(&mut tracker, &playing, t0, 15, &privacy);
    assert!(
        !table(&tracker.families(&privacy)).contains_key("jellyfin_user_watch_time_seconds_total")
    );
}
