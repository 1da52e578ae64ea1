//! The history generator (common/history.rs) gives what the agent would have sent: every
//! collector at its default interval, counters rising and never resetting (watch time by the
//! clock), and the history arrives in a real VictoriaMetrics through its import API with the
//! exact timestamps.

use crate::common;

use std::collections::BTreeMap;

use common::history::{self, Recording};
use common::servers::VictoriaMetrics;

const HOUR_MS: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hours_of_history_arrive_at_the_default_intervals_with_rising_counters() {
    let recording = Recording::busy_host().await;
    let intervals: Vec<(&str, u64)> = recording
        .intervals()
        .into_iter()
        .map(|(name, every)| (name, every.as_secs()))
        .collect();
    // The COLLECTORS table's defaults (playback_reporting is off unless enabled).
    assert_eq!(
        intervals,
        [
            ("system", 15),
            ("sessions", 15),
            ("users", 300),
            ("library", 300),
            ("inventory", 3600),
            ("tasks", 60),
            ("activity", 60),
            ("transcode_log", 15),
            ("process", 15),
            ("host", 15),
            ("pusher", 15),
        ]
    );

    // A whole number of hours, aligned, ending before now.
    let end = common::now_ms() / HOUR_MS * HOUR_MS;
    let start = end - 2 * HOUR_MS;
    let mut runs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut last = i64::MIN;
    for batch in recording.batches(start, end) {
        assert!(batch.timestamp_ms >= last, "batches out of time order");
        last = batch.timestamp_ms;
        let success = batch
            .families
            .iter()
            .find(|f| f.name == "jellyfin_pusher_collector_success")
            .expect("every run reports its success");
        let collector = success.samples[0].labels[0].1.clone();
        assert_eq!(success.samples[0].value, 1.0, "{collector}");
        runs.entry(collector).or_default().push(batch.timestamp_ms);
    }
    for (name, every) in &intervals {
        let expected: Vec<i64> = (0..)
            .map(|k| start + k * *every as i64 * 1000)
            .take_while(|t| *t < end)
            .collect();
        assert_eq!(runs[*name], expected, "{name}'s cycles");
    }

    let vm = VictoriaMetrics::start().await;
    let mut body = Vec::new();
    let written = history::write_vm_import(
        recording.batches(start, end),
        &history::host_labels("dmz-a"),
        HOUR_MS / 4,
        &mut body,
    )
    .expect("import body");
    vm.import(body).await;
    vm.settle().await;

    // The fast tier every 15 s, the hourly inventory twice, the minute tasks 120 times, the
    // 5-minute library and users 24 times.
    for (selector, every) in [
        ("jellyfin_up", 15),
        ("jellyfin_library_inventory_items", 3600),
        ("jellyfin_library_items", 300),
        ("jellyfin_scheduled_task_running", 60),
        ("jellyfin_users", 300),
    ] {
        let series = vm
            .export(&format!("{{__name__=\"{selector}\",instance=\"dmz-a\"}}"))
            .await;
        assert!(!series.is_empty(), "{selector} did not arrive");
        for s in &series {
            let expected: Vec<i64> = (start..end).step_by(every * 1000).collect();
            assert_eq!(s.timestamps, expected, "{selector} {:?}", s.metric);
        }
    }
    let all = vm.export("{instance=\"dmz-a\"}").await;
    let stored: usize = all.iter().map(|s| s.values.len()).sum();
    assert_eq!(stored as u64, written, "samples written and stored");

    // Every counter rises or stays, and the ones that moved in the real runs keep moving.
    let counters: Vec<_> = all
        .iter()
        .filter(|s| s.name().ends_with("_total"))
        .collect();
    for s in &counters {
        assert!(
            s.values.windows(2).all(|w| w[1] >= w[0]),
            "{:?} went down",
            s.metric
        );
    }
    let rising = |name: &str| {
        counters
            .iter()
            .any(|s| s.name() == name && s.values.last() > s.values.first())
    };
    for name in [
        "jellyfin_api_requests_total",
        "jellyfin_playback_total",
        "jellyfin_item_plays_total",
        "jellyfin_user_watch_time_seconds_total",
        "jellyfin_activity_events_total",
        "jellyfin_transcode_failures_total",
        "jellyfin_pusher_remote_write_samples_sent_total",
    ] {
        assert!(rising(name), "{name} never rises in the history");
    }

    // Watch time accrues by the clock: about 15 s per 15-s cycle per user watching.
    let watched: Vec<_> = counters
        .iter()
        .filter(|s| s.name() == "jellyfin_user_watch_time_seconds_total")
        .map(|s| {
            (
                s.label("user").unwrap_or("").to_string(),
                s.values[1] - s.values[0],
            )
        })
        .collect();
    assert_eq!(watched.len(), 2, "two users watching: {watched:?}");
    for (user, per_cycle) in &watched {
        assert!(
            (13.5..=15.5).contains(per_cycle),
            "user {user} watches {per_cycle} s per 15-s cycle"
        );
    }

    // The last push follows the clock: a few seconds behind each cycle, never frozen.
    let pushes = vm
        .export("{__name__=\"jellyfin_pusher_last_push_success_timestamp_seconds\"}")
        .await;
    assert_eq!(pushes.len(), 1);
    for (value, at_ms) in pushes[0].values.iter().zip(&pushes[0].timestamps) {
        let behind = *at_ms as f64 / 1000.0 - value;
        assert!((-5.0..5.0).contains(&behind), "last push {behind} s behind");
    }
}
