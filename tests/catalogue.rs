//! The metric catalogue (../shared/design/metrics.md) is the contract for dashboards and
//! alerts: with every collector on, every family it names must arrive in a real
//! VictoriaMetrics. The names are read from the catalogue itself; the few that cannot
//! appear in this run are listed with the reason.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

/// Families the catalogue names that this run cannot show, and why.
const NOT_IN_THIS_RUN: [(&str, &str); 3] = [
    (
        "jellyfin_transcode_queue_length",
        "the API has no transcode queue: never exported (the catalogue says so)",
    ),
    (
        "jellyfin_scheduled_task_progress_ratio",
        "only while a task runs; the captured tasks are all idle",
    ),
    (
        "jellyfin_pusher_buffer_oldest_sample_timestamp_seconds",
        "absent while the buffer is empty, as it is when pushes succeed",
    ),
];

/// Every metric family name the catalogue defines: the first column of its tables, and the
/// list of the agent's own metrics (written without their `jellyfin_pusher_` prefix).
fn catalogue() -> BTreeSet<String> {
    let path = std::env::var("METRIC_CATALOGUE")
        .unwrap_or_else(|_| format!("{}/../shared/design/metrics.md", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (set METRIC_CATALOGUE)"));
    let is_name = |n: &str| {
        !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && n.contains('_')
    };
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| name"))
    {
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first
            .split([',', '/'])
            .map(|n| n.split('{').next().unwrap_or("").trim())
            .filter(|n| is_name(n))
        {
            names.insert(name.to_string());
        }
    }
    let own = text
        .split("(prefix jellyfin_pusher_)")
        .nth(1)
        .unwrap_or_default();
    let own = own.split("`remote` is").next().unwrap_or_default();
    let mut depth = 0;
    let mut without_labels = String::new();
    for c in own.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if depth == 0 => without_labels.push(c),
            _ => {}
        }
    }
    for name in without_labels
        .split([',', '.', '\n', ':'])
        .map(str::trim)
        .filter(|n| is_name(n))
    {
        names.insert(format!("jellyfin_pusher_{name}"));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_of_the_catalogue_arrives_in_victoriametrics() {
    let expected = catalogue();
    assert!(expected.len() > 60, "the catalogue was read: {expected:?}");
    let jellyfin = FakeJellyfin::start("").await;
    jellyfin.route("/Sessions", common::fixture("sessions.idle.10.11.11.json"));
    jellyfin.generate_items("f137a2dd21bbc1b99aa5c0f6bf02a805", 1000);
    let vm = VictoriaMetrics::start().await;
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("log_20261125.log"), "").unwrap();
    let mut stand_in = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = logs.path().join("jellyfin.pid");
    std::fs::write(&pid_file, stand_in.id().to_string()).unwrap();
    let geoip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geoip/GeoLite2-Country-Test.mmdb"
    );
    let extra = format!(
        "[collectors.sessions]\ngeoip_database = \"{geoip}\"\n\
         [collectors.activity]\ninterval = \"1s\"\n\
         [collectors.transcode_log]\ndir = \"{}\"\n\
         [collectors.process]\npid_file = \"{}\"\n",
        logs.path().display(),
        pid_file.display()
    );
    let dir = AgentDir::pushing(&jellyfin, &vm, &extra);
    let mut agent = dir.start();
    // A cycle later, new activity and a play start give the event counters their series.
    jellyfin.wait_for_requests("/System/Info", 2).await;
    jellyfin.route(
        "/Sessions",
        common::fixture("sessions.transcoding.synthetic.10.11.json"),
    );
    let mut entries: serde_json::Value =
        serde_json::from_str(&common::fixture("activity-log.synthetic.json")).unwrap();
    let newer = serde_json::json!({ "Id": 200, "Name": "…", "Type": "UserLockedOut", "Date": "2026-11-25T10:00:00.0000000Z",
                                    "UserId": "00000000000000000000000000000000", "Severity": "Warning" });
    entries["Items"].as_array_mut().unwrap().insert(0, newer);
    jellyfin.route("/System/ActivityLog/Entries", entries.to_string());
    jellyfin
        .wait_for_requests("/System/ActivityLog/Entries", 2)
        .await;
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 2).await;
    assert!(agent.stop().success());
    let _ = stand_in.kill();
    let _ = stand_in.wait();
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
    // Nothing outside the catalogue, but the documented addition.
    let extra: Vec<&String> = stored
        .iter()
        .filter(|n| {
            !expected.contains(*n) && n.as_str() != "jellyfin_pusher_buffer_write_errors_total"
        })
        .collect();
    assert!(extra.is_empty(), "families not in the catalogue: {extra:?}");
    eprintln!(
        "{} catalogue families read back; not in this run: {NOT_IN_THIS_RUN:?}",
        expected.len() - excused.len()
    );
}
