//! The metric catalogue (../shared/design/metrics.md) is the contract for dashboards and
//! alerts: with every collector on, every family it names must arrive in a real
//! VictoriaMetrics. The names are read from the catalogue itself; the few that cannot
//! appear in this run are listed with the reason.

use crate::common;

use std::collections::BTreeSet;

use common::agent::AgentDir;
use common::catalogue::{NEVER_EXPORTED, catalogue};
use common::fake_jellyfin::{FakeJellyfin, activity_entry, jellyfin_date};
use common::host::{JellyfinHost, activity_with};
use common::servers::VictoriaMetrics;

/// Families the catalogue names that this run cannot show, and why.
const NOT_IN_THIS_RUN: [(&str, &str); 2] = [
    (
        NEVER_EXPORTED,
        "the API has no transcode queue: never exported (the catalogue says so)",
    ),
    (
        "jellyfin_scheduled_task_progress_ratio",
        "only while a task runs; the captured tasks are all idle",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_of_the_catalogue_arrives_in_victoriametrics() {
    let expected = catalogue();
    assert!(expected.len() > 60, "the catalogue was read: {expected:?}");
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.route("/Sessions", common::fixture("sessions.idle.10.11.11.json"));
    jellyfin.generate_items("f137a2dd21bbc1b99aa5c0f6bf02a805", 1000);
    let vm = VictoriaMetrics::start().await;
    let host = JellyfinHost::new();
    let extra = host.collectors_toml();
    let dir = AgentDir::pushing(&jellyfin, &vm, &extra);
    let mut agent = dir.start();
    // A cycle later, new activity and a play start give the event counters their series.
    jellyfin.wait_for_requests("/System/Info", 2).await;
    jellyfin.route(
        "/Sessions",
        common::fixture("sessions.transcoding.synthetic.10.11.json"),
    );
    // Watch time is credited on the second unpaused poll of the playing session; the poll
    // under way at the switch may still have read the idle list.
    let sessions_polled = jellyfin.requests_to("/Sessions").len();
    jellyfin.route(
        "/System/ActivityLog/Entries",
        activity_with(&[(200, "UserLockedOut", "Warning")]),
    );
    // The server's record of the play that just started (PlaybackStartLogger).
    jellyfin.log_activity(activity_entry(
        201,
        "VideoPlayback",
        &jellyfin_date(common::now_ms()),
        Some("1b3c5d7e9f0a4b2c8d6e0f1a2b3c4d5e"),
        Some("0aa1bb2cc3dd4ee5ff6a7b8c9d0e1f2a"),
    ));
    jellyfin
        .wait_for_requests("/System/ActivityLog/Entries", 2)
        .await;
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 2).await;
    // Request n+3 starts only after poll n+2 (the second on the new list) has finished.
    jellyfin
        .wait_for_requests("/Sessions", sessions_polled + 3)
        .await;
    assert!(agent.stop().success());
    vm.settle().await;

    let stored: BTreeSet<String> = vm
        .export("{__name__=~\".+\"}")
        .await
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let excused: BTreeSet<&str> = NOT_IN_THIS_RUN.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|n| !stored.contains(*n) && !excused.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "catalogue families that did not arrive: {missing:?}"
    );
    // Nothing outside the catalogue, but the documented additions (README's metric table).
    let additions = [
        "jellyfin_pusher_buffer_write_errors_total",
        "jellyfin_pusher_buffer_max_bytes",
        "jellyfin_pusher_task_restarts_total",
    ];
    let extra: Vec<&String> = stored
        .iter()
        .filter(|n| !expected.contains(*n) && !additions.contains(&n.as_str()))
        .collect();
    assert!(extra.is_empty(), "families not in the catalogue: {extra:?}");
    eprintln!(
        "{} catalogue families read back; not in this run: {NOT_IN_THIS_RUN:?}",
        expected.len() - excused.len()
    );
}
