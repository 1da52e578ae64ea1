//! The activity log end to end: a first start counts nothing of the history, new entries are
//! counted once by Type and severity, and a restart resumes from the saved cursor.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, activity_entry, jellyfin_date};
use common::fixture;
use common::servers::VictoriaMetrics;

const ENTRIES: &str = "/System/ActivityLog/Entries";

/// The synthetic log with two newer entries on top (newest first, as the server serves it).
fn with_new_entries() -> String {
    let mut page: serde_json::Value =
        serde_json::from_str(&fixture("activity-log.synthetic.json")).unwrap();
    let items = page["Items"].as_array_mut().unwrap();
    let entry = |id: i64, kind: &str, date: &str, severity: &str| {
        serde_json::json!({ "Id": id, "Name": "…", "Type": kind, "Date": date,
                            "UserId": "00000000000000000000000000000000", "Severity": severity })
    };
    items.insert(
        0,
        entry(
            107,
            "AuthenticationFailed",
            "2026-11-25T09:20:00.0000000Z",
            "Error",
        ),
    );
    items.insert(
        0,
        entry(
            108,
            "UserLockedOut",
            "2026-11-25T09:20:01.0000000Z",
            "Warning",
        ),
    );
    page["TotalRecordCount"] = serde_json::json!(8);
    page.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_not_counted_new_entries_are_counted_once_across_a_restart() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "[collectors.activity]\ninterval = \"1s\"\n");
    let mut agent = dir.start();
    jellyfin.wait_for_requests(ENTRIES, 2).await;
    jellyfin.route(ENTRIES, with_new_entries());
    let n = jellyfin.requests_to(ENTRIES).len();
    jellyfin.wait_for_requests(ENTRIES, n + 2).await;
    assert!(agent.stop().success());
    let mut agent = dir.start();
    let n = jellyfin.requests_to(ENTRIES).len();
    jellyfin.wait_for_requests(ENTRIES, n + 2).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let requests = jellyfin.requests_to(ENTRIES);
    assert_eq!(
        requests[0].query.as_deref(),
        Some("startIndex=0&limit=1"),
        "a first start only finds the newest entry"
    );
    // Then the minute before it: what is there is history, remembered by id, not counted.
    assert_eq!(
        requests[1].query.as_deref(),
        Some("startIndex=0&limit=500&minDate=2026-11-25T09%3A13%3A03.1230000Z")
    );
    let after_restart = &requests[n];
    assert_eq!(
        after_restart.query.as_deref(),
        Some("startIndex=0&limit=500&minDate=2026-11-25T09%3A19%3A01.0000000Z"),
        "the restarted agent resumes from the saved cursor (a minute of overlap)"
    );
    assert!(dir.state().join("activity.json").is_file());

    let series = vm
        .export("{__name__=\"jellyfin_activity_events_total\"}")
        .await;
    let mut counted: Vec<(String, String, f64)> = series
        .iter()
        .map(|s| {
            let max = s.values.iter().copied().fold(0.0, f64::max);
            (
                s.label("type").unwrap().to_string(),
                s.label("severity").unwrap().to_string(),
                max,
            )
        })
        .collect();
    counted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        counted,
        [
            ("AuthenticationFailed".to_string(), "error".to_string(), 1.0),
            ("UserLockedOut".to_string(), "warning".to_string(), 1.0)
        ],
        "only the two new entries, once each (history and the restart add nothing)"
    );
}

/// A password-guessing burst: 10,000 failed logins between two polls, more arriving while the
/// agent pages through them (newest first, so every page shifts), and an entry inserted late
/// with an earlier date. Each is counted exactly once, across an agent restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_entries_with_more_arriving_while_paging_is_counted_exactly() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "[collectors.activity]\ninterval = \"1s\"\n");
    let mut agent = dir.start();
    jellyfin.wait_for_requests(ENTRIES, 2).await;

    // 10,000 entries over the last 5 s, then 600 more, 7 after each page the agent reads.
    let now = common::now_ms();
    for i in 0..10_000 {
        jellyfin.log_activity(activity_entry(
            1_000 + i,
            "AuthenticationFailed",
            &jellyfin_date(now - 5_000 + i / 2),
            None,
            None,
        ));
    }
    jellyfin.activity_burst("AuthenticationFailed", 600, 20_000, 7);
    common::wait_for(
        "the burst to end",
        std::time::Duration::from_secs(120),
        || {
            let left = jellyfin.burst_left();
            async move { (left == 0).then_some(()) }
        },
    )
    .await;
    // Two more walks of the whole overlap (about 22 pages each) after the last arrival.
    let n = jellyfin.requests_to(ENTRIES).len();
    jellyfin.wait_for_requests(ENTRIES, n + 50).await;
    // Inserted after the walk, dated 20 s before the newest entry (DateCreated is set before
    // the insert): within the overlap, counted once.
    jellyfin.log_activity(activity_entry(
        30_000,
        "UserLockedOut",
        &jellyfin_date(common::now_ms() - 20_000),
        None,
        None,
    ));
    let n = jellyfin.requests_to(ENTRIES).len();
    jellyfin.wait_for_requests(ENTRIES, n + 50).await;
    assert!(agent.stop().success());
    let mut agent = dir.start();
    let n = jellyfin.requests_to(ENTRIES).len();
    jellyfin.wait_for_requests(ENTRIES, n + 50).await;
    assert!(agent.stop().success());
    vm.settle().await;

    // The truth: every entry the fake holds beyond the history the first start found.
    let entries = jellyfin.activity_entries();
    let written = |kind: &str| {
        entries
            .iter()
            .filter(|e| e["Type"] == kind && e["Id"].as_i64().unwrap_or(0) >= 1_000)
            .count() as f64
    };
    assert_eq!(
        written("AuthenticationFailed"),
        10_600.0,
        "the whole burst arrived"
    );
    let series = vm
        .export("{__name__=\"jellyfin_activity_events_total\"}")
        .await;
    // Counted over both runs: the first run's last value plus whatever the second added.
    let total = |kind: &str| {
        series
            .iter()
            .filter(|s| s.label("type") == Some(kind))
            .map(|s| {
                let mut sum = s.values[0];
                for w in s.values.windows(2) {
                    sum += if w[1] >= w[0] { w[1] - w[0] } else { w[1] };
                }
                sum
            })
            .sum::<f64>()
    };
    assert_eq!(
        total("AuthenticationFailed"),
        written("AuthenticationFailed"),
        "{series:?}"
    );
    assert_eq!(total("UserLockedOut"), written("UserLockedOut"));
    let pages = jellyfin.requests_to(ENTRIES).len();
    eprintln!("{pages} activity-log requests in all");
}
