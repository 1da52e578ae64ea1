//! A transcode ends, end to end, on a real VictoriaMetrics and a real Prometheus fed by the
//! same agent: within one cycle, instant queries no longer return its speed and lead (the
//! agent sends Prometheus' staleness marker, collectors/ended.rs), the counts say 0 (the
//! explicit zeros), and the transcode counter goes on unchanged, never reset.
//!
//! The queries are evaluated at the ended cycle's own timestamp, one cycle after the last
//! measured value: without the marker both receivers would still answer the last speed there
//! (Prometheus for 5 minutes, VictoriaMetrics for its lookback window).
//!
//! The end is modelled on the server: when playback stops, SessionManager.OnPlaybackStopped
//! (RemoveNowPlayingItem) removes the session's NowPlayingItem and TranscodingInfo and the
//! session stays in GET /Sessions, playing nothing (common::fake_jellyfin::stop_playback).

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, stop_playback};
use common::fixture;
use common::servers::{Prometheus, Series, VictoriaMetrics, query_at};

/// The synthetic 10.11 capture: a video transcode (speed 2.0, lead 780 s) next to an audio
/// direct play.
const PLAYING: &str = "sessions.transcoding.synthetic.10.11.json";
/// Both series of `jellyfin_transcode_speed_ratio` and the one of `_lead_seconds`.
const ENDING: [&str; 2] = [
    "jellyfin_transcode_speed_ratio",
    "jellyfin_transcode_lead_seconds",
];

/// The same sessions after the transcode's playback stopped.
fn transcode_stopped() -> String {
    let mut sessions: Vec<serde_json::Value> = serde_json::from_str(&fixture(PLAYING)).unwrap();
    for s in sessions
        .iter_mut()
        .filter(|s| s.get("TranscodingInfo").is_some())
    {
        stop_playback(s);
    }
    serde_json::to_string(&sessions).unwrap()
}

async fn cycles(jellyfin: &FakeJellyfin, more: usize) {
    let target = jellyfin.requests_to("/Sessions").len() + more;
    jellyfin.wait_for_requests("/Sessions", target).await;
}

/// An instant query at `at_ms` (epoch ms): (labels without job/instance, value) per series.
async fn instant(base_url: &str, expr: &str, at_ms: i64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = query_at(base_url, expr, at_ms)
        .await
        .iter()
        .map(|r| {
            let mut labels: Vec<String> = r["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !["job", "instance"].contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            labels.sort();
            (
                labels.join(","),
                r["value"][1].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    out.sort();
    out
}

fn name_is(want: &str) -> impl Fn(&(String, String)) -> bool + '_ {
    move |(labels, _)| labels.contains(&format!("__name__={want}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_transcode_leaves_instant_queries_within_one_cycle_on_both_receivers() {
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.route(
        "/System/Configuration/encoding",
        fixture("encoding-options.synthetic.10.11.json"),
    );
    jellyfin.route("/Sessions", transcode_stopped());
    let vm = VictoriaMetrics::start().await;
    let prometheus = Prometheus::start().await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[
            ("tiger", &vm.write_url()),
            ("prom", &prometheus.write_url()),
        ],
        "1s",
        "",
    );
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    jellyfin.route("/Sessions", fixture(PLAYING));
    cycles(&jellyfin, 3).await;
    jellyfin.route("/Sessions", transcode_stopped());
    cycles(&jellyfin, 3).await;
    assert!(agent.stop().success(), "{}", agent.log());
    assert!(!agent.log().contains("rejected"), "{}", agent.log());
    vm.settle().await;

    // The transcode's last measured cycle, and the sessions cycle right after it.
    let speed_min = vm
        .export("{__name__=\"jellyfin_transcode_speed_ratio\",stat=\"min\"}")
        .await;
    let last_ms = speed_min
        .iter()
        .flat_map(|s| s.timestamps.iter().zip(&s.values))
        .filter(|(_, v)| !v.is_nan())
        .map(|(t, _)| *t)
        .max()
        .expect("the transcode's speed arrived");
    let ended_ms = vm
        .export("{__name__=\"jellyfin_pusher_collector_success\",collector=\"sessions\"}")
        .await
        .into_iter()
        .flat_map(|s| s.timestamps)
        .filter(|t| *t > last_ms)
        .min()
        .expect("a sessions cycle after the end");

    let expr = "{__name__=~\"jellyfin_transcode_(speed_ratio|lead_seconds|active|total)\"}";
    for (receiver, base_url) in [
        ("VictoriaMetrics", vm.base_url()),
        ("Prometheus", prometheus.base_url()),
    ] {
        // While the transcode ran: its speed, lead, count and start.
        let before = instant(&base_url, expr, last_ms).await;
        let measured: Vec<&(String, String)> = before
            .iter()
            .filter(|s| ENDING.iter().any(|n| name_is(n)(s)))
            .collect();
        assert_eq!(
            measured
                .iter()
                .map(|(l, v)| (
                    l.split(',').find(|p| p.starts_with("stat=")).unwrap_or(""),
                    v.as_str()
                ))
                .collect::<Vec<_>>(),
            [("stat=min", "780"), ("stat=avg", "2"), ("stat=min", "2")],
            "{receiver} before the end: {before:?}"
        );
        // One cycle later: speed and lead gone, the count 0, the counter unchanged.
        for at in [ended_ms, ended_ms + 2000] {
            let after = instant(&base_url, expr, at).await;
            assert!(
                !after.iter().any(|s| ENDING.iter().any(|n| name_is(n)(s))),
                "{receiver} at {at}: the ended transcode's speed or lead is still there: {after:?}"
            );
            let active: Vec<&str> = after
                .iter()
                .filter(|s| name_is("jellyfin_transcode_active")(s))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(active, ["0"], "{receiver} at {at}: {after:?}");
            let started: Vec<&str> = after
                .iter()
                .filter(|s| name_is("jellyfin_transcode_total")(s) && s.0.contains("hw_accel=none"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(started, ["1"], "{receiver} at {at}: {after:?}");
        }
    }

    // VictoriaMetrics stores a NaN only when it has the marker's exact bits (any other NaN is
    // skipped on insert) and exports it as null: one marker per series, its last sample, at
    // the first cycle after the end.
    let mut ending: Vec<Series> = Vec::new();
    for name in ENDING {
        ending.extend(vm.export(&format!("{{__name__=\"{name}\"}}")).await);
    }
    assert_eq!(ending.len(), 3, "speed min and avg, lead min: {ending:?}");
    for s in &ending {
        let markers: Vec<i64> = (0..s.values.len())
            .filter(|&i| s.is_marker(i))
            .map(|i| s.timestamps[i])
            .collect();
        assert_eq!(markers, [ended_ms], "{s:?}");
        assert_eq!(s.timestamps.last(), Some(&ended_ms), "{s:?}");
    }

    // Counters never get a marker or a drop: the software transcode's counter goes 0, then 1
    // from its start on, through the end and after it.
    let total = vm
        .export("{__name__=\"jellyfin_transcode_total\",hw_accel=\"none\"}")
        .await;
    assert_eq!(total.len(), 1, "{total:?}");
    let (values, timestamps) = (&total[0].values, &total[0].timestamps);
    assert!(
        values.iter().all(|v| *v == 0.0 || *v == 1.0)
            && values.windows(2).all(|w| w[0] <= w[1])
            && values[0] == 0.0,
        "{total:?}"
    );
    let after_end: Vec<f64> = (0..values.len())
        .filter(|&i| timestamps[i] >= ended_ms)
        .map(|i| values[i])
        .collect();
    assert!(
        after_end.len() >= 2 && after_end.iter().all(|v| *v == 1.0),
        "{total:?}"
    );
}
