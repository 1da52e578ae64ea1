//! The activity log end to end: a first start counts nothing of the history, new entries are
//! counted once by Type and severity, and a restart resumes from the saved cursor.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
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
    assert_eq!(
        requests[1].query.as_deref(),
        Some("startIndex=0&limit=100&minDate=2026-11-25T09:14:03.1234567Z")
    );
    let after_restart = &requests[n];
    assert_eq!(
        after_restart.query.as_deref(),
        Some("startIndex=0&limit=100&minDate=2026-11-25T09:20:01.0000000Z"),
        "the restarted agent resumes from the saved cursor"
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
