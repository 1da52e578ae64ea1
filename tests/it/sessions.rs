//! Counters across cycles, end to end: the fake Jellyfin's /Sessions answer changes from cycle
//! to cycle (idle, a transcode starts, pauses, the agent restarts, it resumes, it stops), the
//! server logs the start in its activity log as it does, and the test reads the counters back
//! from a real VictoriaMetrics.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, activity_entry, jellyfin_date};
use common::fixture;
use common::servers::{Series, VictoriaMetrics};

/// The 10.9 capture's first session (a user transcoding an episode), playing or paused.
fn one_transcode(paused: bool) -> String {
    let sessions: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("sessions.transcoding.10.9.6.json")).unwrap();
    let mut session = sessions[0].clone();
    session["PlayState"]["IsPaused"] = serde_json::Value::Bool(paused);
    serde_json::to_string(&[session]).unwrap()
}

async fn cycles(jellyfin: &FakeJellyfin, more: usize) {
    let target = jellyfin.requests_to("/Sessions").len() + more;
    jellyfin.wait_for_requests("/Sessions", target).await;
}

/// The counter's total increase over the run, counting a drop as a restart from 0.
fn increase(series: &[Series]) -> f64 {
    let mut points: Vec<(i64, f64)> = series
        .iter()
        .flat_map(|s| s.timestamps.iter().copied().zip(s.values.iter().copied()))
        .collect();
    points.sort_by_key(|p| p.0);
    points
        .windows(2)
        .map(|w| {
            if w[1].1 >= w[0].1 {
                w[1].1 - w[0].1
            } else {
                w[1].1
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_that_starts_pauses_survives_an_agent_restart_and_stops_is_counted_once() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(
        &jellyfin,
        &vm,
        "[privacy]\nuser_label = \"name\"\n[collectors.activity]\ninterval = \"1s\"\n",
    );
    jellyfin.route("/Sessions", fixture("sessions.idle.10.11.11.json"));
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    // The server's record of the start (PlaybackStartLogger), then the session shows it.
    jellyfin.log_activity(activity_entry(
        500,
        "VideoPlayback",
        &jellyfin_date(common::now_ms()),
        Some("c370b2b891d34460831b245cf98fd858"),
        Some("e8f4cce6e13e5923f89a33fe75d19474"),
    ));
    jellyfin.route("/Sessions", one_transcode(false));
    cycles(&jellyfin, 3).await;
    jellyfin.route("/Sessions", one_transcode(true));
    cycles(&jellyfin, 2).await;
    // Restart while it is paused: the new agent must not count it as a new start.
    assert!(agent.stop().success());
    let restarted_at = common::now_ms();
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    jellyfin.route("/Sessions", one_transcode(false));
    cycles(&jellyfin, 3).await;
    jellyfin.route("/Sessions", fixture("sessions.idle.10.11.11.json"));
    cycles(&jellyfin, 2).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let starts = vm
        .export("{__name__=\"jellyfin_playback_total\",type=\"transcode\",media_type=\"video\"}")
        .await;
    assert_eq!(increase(&starts), 1.0, "one start: {starts:?}");
    // After the restart the play was already going: the new agent's counter stays at 0 (a
    // counter that restarted and came back to 1 would look like no increase at all).
    let after_restart: Vec<f64> = starts
        .iter()
        .flat_map(|s| s.timestamps.iter().zip(&s.values))
        .filter(|(t, _)| **t > restarted_at)
        .map(|(_, v)| *v)
        .collect();
    assert!(
        !after_restart.is_empty() && after_restart.iter().all(|v| *v == 0.0),
        "{after_restart:?}"
    );
    let others = vm
        .export("{__name__=\"jellyfin_playback_total\",type!=\"transcode\"}")
        .await;
    assert_eq!(increase(&others), 0.0);
    let transcodes = vm
        .export("{__name__=\"jellyfin_transcode_total\",hw_accel=\"none\"}")
        .await;
    assert_eq!(increase(&transcodes), 1.0);
    let plays = vm.export("{__name__=\"jellyfin_item_plays_total\"}").await;
    assert_eq!(plays.len(), 1);
    assert_eq!(
        (plays[0].label("item"), plays[0].label("item_type")),
        (Some("Delicious in Dungeon"), Some("series"))
    );
    // Watch time: only between two unpaused polls, about one interval each; two such pairs
    // in each run (3 playing polls), none while paused or across the restart.
    let watch = vm
        .export("{__name__=\"jellyfin_user_watch_time_seconds_total\",user=\"USER8\"}")
        .await;
    let watched = increase(&watch);
    assert!(
        (1.5..=6.0).contains(&watched),
        "watched {watched} s (paused time would add 4 s or more)"
    );
    // While it played, the stream and its bandwidth were visible.
    let bandwidth = vm
        .export("{__name__=\"jellyfin_bandwidth_bytes_per_second\",user=\"USER8\"}")
        .await;
    assert!(
        bandwidth[0].values.contains(&609_000.0) && bandwidth[0].values.contains(&0.0),
        "{bandwidth:?}"
    );
}
