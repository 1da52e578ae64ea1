//! The collectors end to end over mutated Jellyfin answers: the running agent (every collector
//! every second) polls a fake Jellyfin whose every endpoint serves a freshly mutated real
//! capture each round (src/fuzz/json_mutation.rs: fields dropped, schema-typed edge values,
//! types changed). Across rounds the stateful collectors (session tracker, activity cursor,
//! task results) see the values change under them. No task may panic (supervision would log a
//! restart), and every collector failure must name the endpoint.

use crate::common;

use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;

#[path = "../../src/fuzz/json_mutation.rs"]
mod json_mutation;

const ROUNDS: usize = 10;

const ENDPOINTS: [(&str, &str); 9] = [
    ("/System/Info", "system-info.10.11.11.json"),
    ("/Users", "users.10.11.11.json"),
    ("/Items/Counts", "items-counts.10.9.6.json"),
    ("/Sessions", "sessions.transcoding.synthetic.10.11.json"),
    ("/ScheduledTasks", "scheduled-tasks.10.11.11.json"),
    ("/System/ActivityLog/Entries", "activity-log.synthetic.json"),
    ("/Library/VirtualFolders", "virtual-folders.synthetic.json"),
    ("/System/Info/Storage", "system-storage.synthetic.json"),
    ("/Items", "items.library.10.11.11.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_answers_never_panic_a_collector_and_failures_name_the_endpoint() {
    let jellyfin = FakeJellyfin::start("").await;
    let config = [
        "users",
        "library",
        "inventory",
        "tasks",
        "activity",
        "sessions",
    ]
    .iter()
    .map(|c| format!("[collectors.{c}]\ninterval = \"1s\"\n"))
    .collect::<String>()
        // Not Jellyfin's answers: these read /proc, and Jellyfin's process is not here.
        + "[collectors.process]\nenabled = false\n[collectors.host]\nenabled = false\n";
    // Nothing listens on the remote: the samples wait in the buffer, which is not the subject.
    let remote = format!("http://127.0.0.1:{}/api/v1/write", common::free_port());
    let dir = AgentDir::new(&jellyfin.url(), &[("nowhere", &remote)], "1s", &config);
    let mut agent = dir.start();
    let mut runner = TestRunner::default();
    let mut applied = Vec::new();
    for round in 0..ROUNDS {
        for (endpoint, fixture) in ENDPOINTS {
            let mutations = json_mutation::mutations()
                .new_tree(&mut runner)
                .expect("a value")
                .current();
            let mut value: Value = serde_json::from_str(&common::fixture(fixture)).unwrap();
            json_mutation::mutate(&mut value, &mutations);
            if endpoint == "/Items" {
                cap_total(&mut value);
            }
            applied.push(format!("round {round} {endpoint}: {mutations:?}"));
            jellyfin.route(endpoint, value.to_string());
        }
        let n = jellyfin.requests_to("/System/Info").len();
        jellyfin.wait_for_requests("/System/Info", n + 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(agent.is_running(), "the agent died; log:\n{}", agent.log());
    assert!(agent.stop().success(), "log:\n{}", agent.log());
    let log = agent.log();
    let context = || format!("mutations:\n{}\nlog:\n{log}", applied.join("\n"));
    assert!(
        !log.contains("panicked") && !log.contains("restarting it"),
        "a task panicked; {}",
        context()
    );
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("collector failed"))
        .collect();
    assert!(
        !failures.is_empty(),
        "mutations this rough make some collector fail; {}",
        context()
    );
    for line in failures {
        assert!(
            ENDPOINTS
                .iter()
                .any(|(endpoint, _)| line.contains(&format!("GET {endpoint}"))),
            "the failure does not name its endpoint: {line}\n{}",
            context()
        );
    }
}

/// A huge TotalRecordCount makes the inventory walk every page up to its limit (10,000): real,
/// bounded, and too slow for this test, so the count is kept small.
fn cap_total(value: &mut Value) {
    if let Some(total) = value.get_mut("TotalRecordCount")
        && total.as_f64().is_some_and(|t| t > 300.0)
    {
        *total = Value::from(300);
    }
}
