//! Playback starts, play methods and transcodes end to end, against a fake Jellyfin that
//! behaves as the server source says: the server logs one activity entry per playback start
//! (PlaybackStartLogger.cs) and nothing when a session drops out of GET /Sessions and returns,
//! when idle playback is stopped and resumed, when the server restarts, or when the agent
//! restarts; a 0.4 s play is in the activity log
//! but never in /Sessions; a remux, an audio-only transcode and a video transcode play side by
//! side (sessions.side-by-side.synthetic.10.11.json). The counters that arrive in a real
//! VictoriaMetrics must match the truth the fake knows, exactly.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, activity_entry, jellyfin_date, stop_playback};
use common::servers::{Series, VictoriaMetrics};
use common::{fixture, now_ms};

const REMUX: (&str, &str) = (
    "b1000000000000000000000000000001",
    "c1000000000000000000000000000001",
);
const AUDIO: (&str, &str) = (
    "b2000000000000000000000000000002",
    "c2000000000000000000000000000002",
);
const VIDEO: (&str, &str) = (
    "b3000000000000000000000000000003",
    "c3000000000000000000000000000003",
);
/// A 0.4 s play: in the activity log only.
const SHORT: (&str, &str) = (
    "b4000000000000000000000000000004",
    "c4000000000000000000000000000004",
);

/// The counter's total increase over the run, counting a drop as a restart from 0.
fn increase(series: &[Series]) -> f64 {
    series
        .iter()
        .map(|s| {
            s.values
                .windows(2)
                .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
                .sum::<f64>()
        })
        .sum()
}

async fn cycles(jellyfin: &FakeJellyfin, path: &str, more: usize) {
    let target = jellyfin.requests_to(path).len() + more;
    jellyfin.wait_for_requests(path, target).await;
}

/// The side-by-side sessions without the video transcode's session.
fn without_video_transcode() -> String {
    let mut sessions: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("sessions.side-by-side.synthetic.10.11.json")).unwrap();
    sessions.retain(|s| s["UserId"] != VIDEO.0);
    serde_json::to_string(&sessions).unwrap()
}

/// The side-by-side sessions with the video transcode's session idle: the server stopped its
/// playback after 5 min without a check-in (SessionManager.CheckForIdlePlayback) and the
/// session stays, playing nothing.
fn video_transcode_idle() -> String {
    let mut sessions: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("sessions.side-by-side.synthetic.10.11.json")).unwrap();
    for s in sessions.iter_mut().filter(|s| s["UserId"] == VIDEO.0) {
        stop_playback(s);
    }
    serde_json::to_string(&sessions).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_are_counted_once_each_with_the_play_method_seen_and_transcodes_are_real_ones() {
    let mut jellyfin = FakeJellyfin::start("").await;
    jellyfin.route("/Sessions", "[]".into());
    // The GPU encodes (VA-API), as EncodingHelper decides for an h264 target.
    let mut encoding: serde_json::Value =
        serde_json::from_str(&fixture("encoding-options.synthetic.10.11.json")).unwrap();
    encoding["HardwareAccelerationType"] = "vaapi".into();
    jellyfin.route("/System/Configuration/encoding", encoding.to_string());
    jellyfin.items_by_id(&[serde_json::json!({
        "Name": "A Short Film", "Id": SHORT.1, "Type": "Movie", "MediaType": "Video"
    })]);
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(
        &jellyfin,
        &vm,
        "[privacy]\nuser_label = \"name\"\n[collectors.activity]\ninterval = \"1s\"\n",
    );
    let mut agent = dir.start();
    cycles(&jellyfin, "/System/ActivityLog/Entries", 2).await;

    // Three plays start side by side, and a 0.4 s play that no poll sees.
    let mut id = 1000;
    let mut log = |kind: &str, (user, item): (&str, &str), at_ms: i64| {
        id += 1;
        jellyfin.log_activity(activity_entry(
            id,
            kind,
            &jellyfin_date(at_ms),
            Some(user),
            Some(item),
        ));
    };
    let t = now_ms();
    log("VideoPlayback", REMUX, t);
    log("AudioPlayback", AUDIO, t + 1);
    log("VideoPlayback", VIDEO, t + 2);
    log("VideoPlayback", SHORT, t + 3);
    log("VideoPlaybackStopped", SHORT, t + 403);
    jellyfin.route(
        "/Sessions",
        fixture("sessions.side-by-side.synthetic.10.11.json"),
    );
    cycles(&jellyfin, "/Sessions", 3).await;

    // The video transcode's session drops out of the list for a while and returns.
    jellyfin.route("/Sessions", without_video_transcode());
    cycles(&jellyfin, "/Sessions", 3).await;
    jellyfin.route(
        "/Sessions",
        fixture("sessions.side-by-side.synthetic.10.11.json"),
    );
    cycles(&jellyfin, "/Sessions", 2).await;

    // Idle-stop, then the client's next progress report brings the item back: no new start.
    jellyfin.route("/Sessions", video_transcode_idle());
    cycles(&jellyfin, "/Sessions", 2).await;
    jellyfin.route(
        "/Sessions",
        fixture("sessions.side-by-side.synthetic.10.11.json"),
    );
    cycles(&jellyfin, "/Sessions", 2).await;

    // Jellyfin restarts: down, then an empty list, then the clients come back.
    jellyfin.down();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    jellyfin.route("/Sessions", "[]".into());
    jellyfin.up().await;
    cycles(&jellyfin, "/Sessions", 2).await;
    jellyfin.route(
        "/Sessions",
        fixture("sessions.side-by-side.synthetic.10.11.json"),
    );
    // Past the match window (2 intervals + 5 s): the short play is settled as unknown.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    cycles(&jellyfin, "/System/ActivityLog/Entries", 2).await;

    // The agent restarts while everything plays.
    assert!(agent.stop().success());
    let mut agent = dir.start();
    cycles(&jellyfin, "/Sessions", 3).await;
    cycles(&jellyfin, "/System/ActivityLog/Entries", 2).await;
    assert!(agent.stop().success());
    vm.settle().await;

    // The truth the fake knows: one start per playback entry it logged.
    let logged = |kind: &str| {
        jellyfin
            .activity_entries()
            .iter()
            .filter(|e| e["Type"] == kind && e["Id"].as_i64().unwrap_or(0) > 1000)
            .count() as f64
    };
    assert_eq!(
        (logged("VideoPlayback"), logged("AudioPlayback")),
        (3.0, 1.0)
    );
    let starts = |method: &str, media: &str| {
        let selector = format!(
            "{{__name__=\"jellyfin_playback_total\",type=\"{method}\",media_type=\"{media}\"}}"
        );
        let vm = &vm;
        async move { increase(&vm.export(&selector).await) }
    };
    assert_eq!(starts("remux", "video").await, 1.0, "the remux");
    assert_eq!(
        starts("transcode", "audio").await,
        1.0,
        "the audio transcode"
    );
    assert_eq!(
        starts("transcode", "video").await,
        1.0,
        "the video transcode"
    );
    assert_eq!(starts("unknown", "video").await, 1.0, "the 0.4 s play");
    let all = increase(&vm.export("{__name__=\"jellyfin_playback_total\"}").await);
    assert_eq!(all, logged("VideoPlayback") + logged("AudioPlayback"));

    // Item plays from the same starts; the short play is named by GET /Items?ids=.
    let plays = vm.export("{__name__=\"jellyfin_item_plays_total\"}").await;
    let mut by_item: Vec<(String, String, f64)> = plays
        .iter()
        .map(|s| {
            let item = s.label("item").unwrap_or("").to_string();
            let kind = s.label("item_type").unwrap_or("").to_string();
            (item, kind, increase(std::slice::from_ref(s)) + s.values[0])
        })
        .collect();
    by_item.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [
        ("A Remuxed Film", "movie"),
        ("A Series", "series"),
        ("A Short Film", "movie"),
        ("Another Album", "album"),
    ];
    assert_eq!(
        by_item,
        want.map(|(i, k)| (i.to_string(), k.to_string(), 1.0)),
        "{plays:?}"
    );

    // Transcodes: only the video one, on the GPU; started once despite the vanishing session,
    // the server restart and the agent restart.
    let transcodes = vm.export("{__name__=\"jellyfin_transcode_total\"}").await;
    let vaapi: Vec<Series> = transcodes
        .iter()
        .filter(|s| s.label("hw_accel") == Some("vaapi"))
        .cloned()
        .collect();
    assert_eq!(increase(&vaapi), 1.0, "{transcodes:?}");
    assert_eq!(increase(&transcodes), 1.0, "{transcodes:?}");
    let active = vm.export("{__name__=\"jellyfin_transcode_active\"}").await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(
        (active[0].label("hw_accel"), active[0].label("video_codec")),
        (Some("vaapi"), Some("h264"))
    );
    // 1 while /Sessions lists the transcode; a cycle in which the session is missing from the
    // list says 0 (collectors/ended.rs: a series whose subject is gone gets one zero), never
    // anything else.
    let values = &active[0].values;
    assert!(values.iter().all(|v| *v == 1.0 || *v == 0.0), "{active:?}");
    assert!(
        values.iter().filter(|v| **v == 1.0).count() > values.len() / 2
            && values[values.len() - 1] == 1.0,
        "{active:?}"
    );
    let reasons = vm.export("{__name__=\"jellyfin_transcode_reasons\"}").await;
    let mut reasons: Vec<&str> = reasons.iter().filter_map(|s| s.label("reason")).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["audiocodecnotsupported", "videocodecnotsupported"]
    );

    // The play methods as Jellyfin's dashboard shows them.
    let streams = vm
        .export("{__name__=\"jellyfin_streams\",state=\"playing\"}")
        .await;
    let peak = |method: &str, media: &str| {
        streams
            .iter()
            .filter(|s| {
                s.label("play_method") == Some(method) && s.label("media_type") == Some(media)
            })
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max)
    };
    assert_eq!(
        [
            peak("remux", "video"),
            peak("transcode", "audio"),
            peak("transcode", "video"),
            peak("directplay", "video")
        ],
        [1.0, 1.0, 1.0, 0.0]
    );

    // The transcoder's lead (20 % of 3,600 s done, the viewer at 600 s) and its speed (36 fps
    // for a 24 fps source; the remux's 412 fps is not a transcode).
    let lead = vm
        .export("{__name__=\"jellyfin_transcode_lead_seconds\"}")
        .await;
    assert_eq!(lead.len(), 1);
    assert!(lead[0].measured().iter().all(|v| *v == 120.0), "{lead:?}");
    let speed = vm
        .export("{__name__=\"jellyfin_transcode_speed_ratio\"}")
        .await;
    assert_eq!(speed.len(), 2);
    assert!(
        speed.iter().all(|s| s.measured().iter().all(|v| *v == 1.5)),
        "{speed:?}"
    );
    // Each time the transcode left the list (vanished, idle-stopped, server restart) its
    // speed and lead ended with a staleness marker (collectors/ended.rs), and came back.
    for s in lead.iter().chain(&speed) {
        let markers = (0..s.values.len()).filter(|&i| s.is_marker(i)).count();
        assert!(markers >= 3 && !s.is_marker(s.values.len() - 1), "{s:?}");
    }

    // The activity log itself: every entry once.
    let events = vm
        .export("{__name__=\"jellyfin_activity_events_total\"}")
        .await;
    let counted = |kind: &str| {
        increase(
            &events
                .iter()
                .filter(|s| s.label("type") == Some(kind))
                .cloned()
                .collect::<Vec<_>>(),
        ) + events
            .iter()
            .filter(|s| s.label("type") == Some(kind))
            .map(|s| s.values[0])
            .sum::<f64>()
    };
    for kind in ["VideoPlayback", "AudioPlayback", "VideoPlaybackStopped"] {
        assert_eq!(counted(kind), logged(kind), "{kind}");
    }
}
