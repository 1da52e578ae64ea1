//! `jellyfin-pusher status` against a real agent and a real VictoriaMetrics: healthy while
//! delivering, unhealthy (exit 1) once the receiver has been gone for 5 intervals or a
//! collector keeps failing, and readable after the agent stopped, with the backlog it left.

use crate::common;

use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::{FakeJellyfin, Mode};
use common::servers::VictoriaMetrics;
use common::{now_ms, wait_for};
use serde_json::Value;

/// Runs `status --format json`: (exit code, report).
fn status(dir: &AgentDir) -> (i32, Value) {
    let out = dir.run(&["status", "--format", "json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_delivery_and_collectors_with_or_without_the_agent() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    // No Jellyfin process on a test machine: the process collector would fail throughout.
    let dir = AgentDir::pushing(&jellyfin, &vm, "[collectors.process]\nenabled = false\n");

    let (code, report) = status(&dir);
    assert_eq!(code, 1, "no status file yet: {report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("no status.json"),
        "{report}"
    );

    let mut agent = dir.start();
    let report = wait_for("a healthy status", Duration::from_secs(20), || async {
        let (code, report) = status(&dir);
        (code == 0 && !report["remotes"][0]["last_success_ms"].is_null()).then_some(report)
    })
    .await;
    assert_eq!(report["agent_running"], true);
    assert_eq!(
        report["stale_after_seconds"], 5,
        "5 × collect.interval (1s)"
    );
    assert_eq!(report["remotes"][0]["name"], "tiger");
    assert!(report["remotes"][0]["samples_sent"].as_u64().unwrap() > 0);
    let collectors: Vec<&str> = report["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        collectors.contains(&"system") && collectors.contains(&"pusher"),
        "{collectors:?}"
    );

    // The receiver goes away: the backlog grows, the error is shown, and 5 s later status fails.
    vm.down();
    let down_ms = now_ms();
    let report = wait_for("an unhealthy status", Duration::from_secs(30), || async {
        let (code, report) = status(&dir);
        (code == 1 && !report["remotes"][0]["last_error"].is_null()).then_some(report)
    })
    .await;
    let problem = report["problems"][0].as_str().unwrap();
    assert!(
        problem.starts_with("remote \"tiger\" has not delivered for")
            && problem.contains("last error:"),
        "{report}"
    );
    let remote = &report["remotes"][0];
    assert_eq!(remote["healthy"], false);
    assert!(
        remote["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("error sending request"),
        "{remote}"
    );
    assert!(
        remote["backlog"]["blocks"].as_u64().unwrap() > 0,
        "{remote}"
    );

    // Jellyfin refuses the token: the collectors that ask it fail, three runs in a row.
    jellyfin.set_mode(Mode::Unauthorized);
    let report = wait_for("a failing collector", Duration::from_secs(30), || async {
        let (_, report) = status(&dir);
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| {
                p.as_str()
                    .unwrap()
                    .starts_with("collector \"system\" failed its last")
            })
            .then_some(report)
    })
    .await;
    let system = report["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "system")
        .unwrap();
    assert_eq!(system["healthy"], false);
    assert!(system["failures_in_a_row"].as_u64().unwrap() >= 3);
    assert!(
        system["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{system}"
    );
    assert!(!report.to_string().contains(common::fake_jellyfin::TOKEN));

    // Stopped: status still reads the state dir, and shows the backlog left on disk.
    assert!(agent.stop().success(), "{}", agent.log());
    let (code, report) = status(&dir);
    assert_eq!(code, 1);
    assert_eq!(report["agent_running"], false);
    let backlog = &report["remotes"][0]["backlog"];
    assert!(backlog["samples"].as_u64().unwrap() > 0, "{backlog}");
    assert!(backlog["bytes"].as_u64().unwrap() > 0, "{backlog}");
    let oldest = backlog["oldest_sample_ms"].as_i64().unwrap();
    let age = report["remotes"][0]["oldest_sample_age_seconds"]
        .as_i64()
        .unwrap();
    assert_eq!(age, (report["now_ms"].as_i64().unwrap() - oldest) / 1000);
    assert!(
        oldest >= down_ms - 2000 && oldest <= now_ms(),
        "the oldest buffered sample was collected around when VictoriaMetrics went down: {oldest} vs {down_ms}"
    );
    let text = dir.run(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("agent: not running;"), "{text}");
    assert!(text.contains("remote tiger: NOT DELIVERING"), "{text}");
    assert!(text.contains("collector system: FAILING"), "{text}");

    // Everything back: the next agent drains what the last one left, says so in one line
    // with the outage's totals, and status is healthy again with an empty backlog.
    let left = report["remotes"][0]["backlog"]["samples"].as_u64().unwrap();
    jellyfin.set_mode(Mode::Normal);
    vm.up().await;
    let mut agent = dir.start();
    wait_for(
        "the outage's totals in the log",
        Duration::from_secs(30),
        || async {
            agent
                .log()
                .contains("backlog delivered: the outage lasted")
                .then_some(())
        },
    )
    .await;
    let line = agent
        .log()
        .lines()
        .find(|l| l.contains("backlog delivered"))
        .unwrap()
        .to_string();
    let sent: u64 = line
        .split("; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sample count in {line}"));
    assert!(
        sent >= left,
        "{sent} samples drained, {left} were buffered: {line}"
    );
    // Blocks come and go every second; the backlog is empty at some point.
    wait_for(
        "healthy again with an empty backlog",
        Duration::from_secs(20),
        || async {
            let (code, report) = status(&dir);
            (code == 0 && report["remotes"][0]["backlog"]["oldest_sample_ms"] == Value::Null)
                .then_some(())
        },
    )
    .await;
    assert!(agent.stop().success());
}

/// Run by hand beside the plain unit, status and check find its folders by themselves.
#[test]
fn by_hand_status_uses_the_units_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[jellyfin]\nurl = \"http://127.0.0.1:8096\"\n").unwrap();
    let out = std::process::Command::new(common::agent::BIN)
        .arg("--config")
        .arg(&config)
        .arg("status")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no status.json in /var/lib/jellyfin-pusher:"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
