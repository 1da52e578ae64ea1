//! The running agent against real receivers started on 127.0.0.1: VictoriaMetrics and
//! Prometheus (strict about the remote-write protocol). What arrived is read back and compared
//! with what the fake Jellyfin was asked, sample by sample.

use crate::common;

use std::time::Duration;

use common::agent::AgentDir;
use common::assert_one_sample_per_request;
use common::fake_jellyfin::{FakeJellyfin, Mode};
use common::servers::{Prometheus, Series, VictoriaMetrics};

async fn series_named(vm: &VictoriaMetrics, name: &str) -> Vec<Series> {
    vm.export(&format!("{{__name__=\"{name}\"}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cycle_arrives_in_victoriametrics_with_exact_values_and_timestamps() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 4).await;
    let status = agent.stop();
    assert!(
        status.success(),
        "clean exit on SIGTERM; log:\n{}",
        agent.log()
    );
    vm.settle().await;

    let up = series_named(&vm, "jellyfin_up").await;
    assert_eq!(up.len(), 1, "{up:?}");
    let labels: Vec<_> = up[0]
        .metric
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        labels,
        ["__name__=jellyfin_up", "instance=test-dmz", "job=jellyfin"]
    );
    assert!(up[0].values.iter().all(|v| *v == 1.0), "{up:?}");
    // Everything collected before SIGTERM was delivered before the agent exited.
    assert_one_sample_per_request(&up[0].timestamps, &jellyfin.requests_to("/System/Info"));

    let info = series_named(&vm, "jellyfin_info").await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].label("version"), Some("10.11.11"));
    assert_eq!(info[0].label("server_name"), Some("homelab"));
    assert_eq!(
        info[0].label("server_id"),
        Some("03b5e7fd4c8a4de8b4164d4d21b72608")
    );
    assert_eq!(
        info[0].timestamps, up[0].timestamps,
        "one timestamp per cycle for every series"
    );

    let requests = vm
        .export("{__name__=\"jellyfin_api_requests_total\",endpoint=\"/System/Info\"}")
        .await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].label("code"), Some("200"));
    let expected: Vec<f64> = (1..=up[0].values.len()).map(|n| n as f64).collect();
    assert_eq!(
        requests[0].values, expected,
        "the counter counts every request once"
    );

    // The slow collectors ran once at start-up, with the real captures' values.
    let users = series_named(&vm, "jellyfin_users").await;
    let mut by_state_role: Vec<(String, f64)> = users
        .iter()
        .map(|s| {
            (
                format!("{}/{}", s.label("state").unwrap(), s.label("role").unwrap()),
                s.values[0],
            )
        })
        .collect();
    by_state_role.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_state_role,
        [
            ("disabled/admin", 0.0),
            ("disabled/user", 0.0),
            ("enabled/admin", 1.0),
            ("enabled/user", 3.0)
        ]
        .map(|(k, v)| (k.to_string(), v))
    );
    assert!(
        users.iter().all(|s| s.timestamps.len() == 1),
        "users runs every 5 min: {users:?}"
    );
    let libraries = series_named(&vm, "jellyfin_library_info").await;
    assert_eq!(libraries.len(), 3);
    let free = vm
        .export("{__name__=\"jellyfin_storage_free_bytes\",kind=\"library\",location=\"Films\"}")
        .await;
    assert_eq!(free[0].values, [1.5e12]);
    let movies = vm
        .export("{__name__=\"jellyfin_library_items\",type=\"movie\"}")
        .await;
    assert_eq!(
        (movies[0].values.as_slice(), movies[0].timestamps.len()),
        (&[325.0][..], 1)
    );

    // Sessions of the 10.9 capture, every cycle, with one stable hashed user.
    let transcodes = vm.export("{__name__=\"jellyfin_transcode_active\"}").await;
    assert_eq!(transcodes.len(), 1);
    assert_eq!(
        (
            transcodes[0].label("hw_accel"),
            transcodes[0].label("video_codec")
        ),
        (Some("none"), Some("h264"))
    );
    assert!(transcodes[0].values.iter().all(|v| *v == 2.0));
    assert_eq!(
        transcodes[0].timestamps.len(),
        up[0].timestamps.len(),
        "sessions runs every cycle"
    );
    let user_streams = series_named(&vm, "jellyfin_user_streams").await;
    assert_eq!(
        user_streams.len(),
        1,
        "the salt keeps the user hash stable: {user_streams:?}"
    );
    assert!(dir.state().join("user-label-salt").is_file());
    let playbacks = series_named(&vm, "jellyfin_playback_total").await;
    assert!(
        playbacks.iter().all(|s| s.values.iter().all(|v| *v == 0.0)),
        "what played at start-up is not a start"
    );

    // Tasks by Key, the last scan's exact duration, and the results seen kept for restarts.
    let scan = series_named(&vm, "jellyfin_library_scan_duration_seconds").await;
    assert_eq!(scan[0].values[0], 12.3873808);
    let running = series_named(&vm, "jellyfin_scheduled_task_running").await;
    assert_eq!(running.len(), 31, "every task of the Dutch capture, by Key");
    assert!(
        running
            .iter()
            .any(|s| s.label("task") == Some("RefreshLibrary"))
    );
    assert!(dir.state().join("tasks.json").is_file());

    // The agent's own view: VictoriaMetrics answers 204, and every delivery is counted.
    let codes = series_named(&vm, "jellyfin_pusher_remote_write_requests_total").await;
    assert!(
        codes
            .iter()
            .any(|s| s.label("code") == Some("204") && s.label("remote") == Some("tiger")),
        "{codes:?}"
    );
    let dropped = series_named(&vm, "jellyfin_pusher_samples_dropped_total").await;
    assert_eq!(dropped.len(), 4, "one series per reason: {dropped:?}");
    assert!(
        dropped.iter().all(|s| s.values.iter().all(|v| *v == 0.0)),
        "{dropped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_accepts_the_remote_write_requests() {
    let jellyfin = FakeJellyfin::start("").await;
    let prometheus = Prometheus::start().await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("prom", &prometheus.write_url())],
        "1s",
        "",
    );
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 3).await;
    assert!(agent.stop().success(), "{}", agent.log());
    assert!(
        !agent.log().contains("rejected"),
        "Prometheus rejected a block:\n{}",
        agent.log()
    );

    let answer = prometheus.raw_samples("jellyfin_up", "5m").await;
    let result = &answer["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(result[0]["metric"]["instance"], "test-dmz");
    let timestamps: Vec<i64> = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            assert_eq!(pair[1], "1");
            (pair[0].as_f64().unwrap() * 1000.0).round() as i64
        })
        .collect();
    assert_one_sample_per_request(&timestamps, &jellyfin.requests_to("/System/Info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_running_through_every_jellyfin_failure() {
    let mut jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let mut agent = dir.start();
    let phase = Duration::from_millis(2500);
    for mode in [
        Mode::Normal,
        Mode::Html,
        Mode::Unauthorized,
        Mode::Hang,
        Mode::Normal,
    ] {
        jellyfin.set_mode(mode);
        tokio::time::sleep(phase).await;
        assert!(
            agent.is_running(),
            "the agent died in {mode:?}:\n{}",
            agent.log()
        );
    }
    jellyfin.down();
    tokio::time::sleep(phase).await;
    jellyfin.up().await;
    tokio::time::sleep(phase).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let up = series_named(&vm, "jellyfin_up").await;
    let values = &up[0].values;
    let transitions: Vec<f64> = values.iter().fold(Vec::new(), |mut acc, v| {
        if acc.last() != Some(v) {
            acc.push(*v);
        }
        acc
    });
    assert_eq!(
        transitions,
        [1.0, 0.0, 1.0, 0.0, 1.0],
        "up, broken, up, down, up: {values:?}"
    );
    // Each collector that talks to Jellyfin every cycle logs each incident once, and its end.
    let log = agent.log();
    for collector in ["system", "sessions"] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("collector=\"{collector}\"")))
            .collect();
        for expected in [
            "expected JSON but got text/html",
            "401 Unauthorized",
            "no answer within 1s",
            "Connection refused",
        ] {
            let count = lines.iter().filter(|l| l.contains(expected)).count();
            assert_eq!(
                count, 1,
                "{collector}: {expected:?} logged once per incident:\n{log}"
            );
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("collector recovered"))
                .count(),
            2,
            "{log}"
        );
    }
    let codes: Vec<_> = vm
        .export("{__name__=\"jellyfin_api_requests_total\",endpoint=\"/System/Info\"}")
        .await
        .iter()
        .filter_map(|s| s.label("code").map(str::to_string))
        .collect();
    assert_eq!(codes, ["200", "401", "error"]);
}
