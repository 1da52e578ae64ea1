//! Meanings proven in a real VictoriaMetrics against what the fake Jellyfin knows: a library
//! scan Aborted by a server restart is not a failure (the Failed one after it is, exactly
//! once), folders the server cannot measure (-1) are left out, and an empty ProductName is
//! not sent as an empty label.

use crate::common;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

/// GET /ScheduledTasks with only the library scan, its last result as ScheduledTaskWorker
/// writes it (`OnTaskCompleted`: Completed, Failed, Cancelled, or Aborted from `Dispose`).
fn scan_result(status: &str, end: &str) -> String {
    format!(
        r#"[{{"Name":"Mediabibliotheek scannen","State":"Idle","Id":"7738148ffcd07979c7ceb148e06b3aed","Key":"RefreshLibrary","Category":"Mediabibliotheek","IsHidden":false,"Triggers":[],"LastExecutionResult":{{"StartTimeUtc":"2026-11-25T09:00:00.0000000Z","EndTimeUtc":"{end}","Status":"{status}","Name":"Mediabibliotheek scannen","Key":"RefreshLibrary","Id":"7738148ffcd07979c7ceb148e06b3aed"}}}}]"#
    )
}

async fn cycles(jellyfin: &FakeJellyfin, path: &str, n: usize) {
    let seen = jellyfin.requests_to(path).len();
    jellyfin.wait_for_requests(path, seen + n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_is_no_failure_unmeasurable_storage_and_empty_labels_are_left_out() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    jellyfin.route(
        "/ScheduledTasks",
        scan_result("Completed", "2026-11-25T09:10:00.0000000Z"),
    );
    jellyfin.route(
        "/System/Info/Storage",
        common::fixture("system-storage.unmeasurable.synthetic.json"),
    );
    let info = common::fixture("system-info.10.11.11.json").replace(
        "\"ProductName\": \"Jellyfin Server\"",
        "\"ProductName\": \"\"",
    );
    assert!(
        info.contains("\"ProductName\": \"\""),
        "the capture changed"
    );
    jellyfin.route("/System/Info", info);
    let extra = "[collectors.tasks]\ninterval = \"1s\"\n[collectors.library]\ninterval = \"1s\"\n";
    let dir = AgentDir::pushing(&jellyfin, &vm, extra);
    let mut agent = dir.start();
    cycles(&jellyfin, "/ScheduledTasks", 2).await;
    // Jellyfin restarts during a scan: Aborted.
    jellyfin.route(
        "/ScheduledTasks",
        scan_result("Aborted", "2026-11-25T10:10:00.0000000Z"),
    );
    cycles(&jellyfin, "/ScheduledTasks", 3).await;
    // The next scan fails: counted once, however often it is polled.
    jellyfin.route(
        "/ScheduledTasks",
        scan_result("Failed", "2026-11-25T11:10:00.0000000Z"),
    );
    cycles(&jellyfin, "/ScheduledTasks", 3).await;
    assert!(agent.stop().success());
    vm.settle().await;

    // The truth the fake knows: one Failed result after the first start, no other.
    let points = |series: &[common::servers::Series]| -> Vec<f64> {
        let mut p: Vec<(i64, f64)> = series[0]
            .timestamps
            .iter()
            .copied()
            .zip(series[0].values.iter().copied())
            .collect();
        p.sort_by_key(|p| p.0);
        p.into_iter().map(|p| p.1).collect()
    };
    let scan = points(
        &vm.export("{__name__=\"jellyfin_library_scan_failures_total\"}")
            .await,
    );
    let aborted_at = scan.iter().position(|v| *v != 0.0).unwrap_or(scan.len());
    assert!(aborted_at >= 5, "the Aborted polls stay at 0: {scan:?}");
    assert_eq!(scan.last(), Some(&1.0), "{scan:?}");
    assert!(scan.iter().all(|v| *v == 0.0 || *v == 1.0), "{scan:?}");
    let task = points(
        &vm.export("{__name__=\"jellyfin_scheduled_task_failures_total\",task=\"RefreshLibrary\"}")
            .await,
    );
    assert_eq!(task, scan);
    let aborted = points(
        &vm.export(
            "{__name__=\"jellyfin_scheduled_task_last_status\",task=\"RefreshLibrary\",status=\"aborted\"}",
        )
        .await,
    );
    assert!(aborted.contains(&1.0), "Aborted stays visible: {aborted:?}");
    assert_eq!(aborted.last(), Some(&0.0));

    // Storage: nothing negative, the unreachable share and the -1 log folder left out.
    for name in ["jellyfin_storage_free_bytes", "jellyfin_storage_used_bytes"] {
        let series = vm.export(&format!("{{__name__=\"{name}\"}}")).await;
        let mut locations: Vec<String> = series
            .iter()
            .map(|s| s.metric["location"].clone())
            .collect();
        locations.sort();
        assert_eq!(
            locations,
            ["Films", "Series", "cache", "data", "metadata", "transcode"],
            "{name}"
        );
        assert!(series.iter().all(|s| s.values.iter().all(|v| *v >= 0.0)));
    }
    let series_free = vm
        .export("{__name__=\"jellyfin_storage_free_bytes\",location=\"Series\"}")
        .await;
    assert!(series_free[0].values.iter().all(|v| *v == 1.5e12));

    // jellyfin_info: no product_name label at all.
    let info = vm.export("{__name__=\"jellyfin_info\"}").await;
    assert_eq!(info.len(), 1);
    assert!(
        !info[0].metric.contains_key("product_name"),
        "{:?}",
        info[0].metric
    );
    assert_eq!(info[0].metric["version"], "10.11.11");
}
