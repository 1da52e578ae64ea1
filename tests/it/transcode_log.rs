//! The transcode-log collector end to end: failures appended to Jellyfin's server log (and to
//! the next day's file after rotation) are counted once and arrive in VictoriaMetrics; the
//! history present at the first start is not counted.

use crate::common;

use std::io::Write;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

const FAILED: &str = "[2026-11-25 09:14:03.123 +00:00] [ERR] [42] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code 1\n";
const OK: &str = "[2026-11-25 09:15:00.000 +00:00] [INF] [43] MediaBrowser.MediaEncoding.Transcoding.TranscodeManager: FFmpeg exited with code 0\n";

fn append(dir: &std::path::Path, name: &str, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_logged_after_start_are_counted_once_across_rotation() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let logs = tempfile::tempdir().unwrap();
    append(logs.path(), "log_20261124.log", &FAILED.repeat(7)); // history
    let extra = format!(
        "[collectors.transcode_log]\ndir = \"{}\"\ninterval = \"1s\"\n",
        logs.path().display()
    );
    let dir = AgentDir::pushing(&jellyfin, &vm, &extra);
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 2).await;
    append(
        logs.path(),
        "log_20261124.log",
        &format!("{FAILED}{OK}{FAILED}"),
    );
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 2).await;
    append(logs.path(), "log_20261125.log", &format!("{OK}{FAILED}"));
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 3).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let series = vm
        .export("{__name__=\"jellyfin_transcode_failures_total\"}")
        .await;
    let mut points: Vec<(i64, f64)> = series[0]
        .timestamps
        .iter()
        .copied()
        .zip(series[0].values.iter().copied())
        .collect();
    points.sort_by_key(|p| p.0);
    assert_eq!(
        points.first().map(|p| p.1),
        Some(0.0),
        "history is not counted"
    );
    assert_eq!(points.last().map(|p| p.1), Some(3.0), "{points:?}");
    assert!(
        points.windows(2).all(|w| w[0].1 <= w[1].1),
        "a counter: {points:?}"
    );
    assert!(dir.state().join("transcode-log.json").is_file());
}
