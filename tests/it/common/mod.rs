//! Test harness shared by the integration tests: a fake Jellyfin that serves real captured
//! answers, the real VictoriaMetrics and Prometheus servers started on 127.0.0.1, and the agent
//! binary run as a process with a config written for the test.
#![allow(dead_code)] // benches/collect.rs includes this harness too and uses only part of it

pub mod agent;
pub mod catalogue;
pub mod certs;
pub mod dashboards;
pub mod egress;
pub mod fake_jellyfin;
pub mod fault_proxy;
pub mod grafana_load;
pub mod grafana_time;
pub mod history;
pub mod host;
pub mod servers;
pub mod vmauth;

use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` every 100 ms until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails with a clear message when a binary the tests need is missing.
/// Runs a command to its end: whether it succeeded, and its stdout and stderr together.
pub fn run(command: &mut std::process::Command) -> (bool, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn require_binary(name: &str) -> std::path::PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = std::path::Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: run ./tests/run.sh, which installs the Debian packages the tests need"
    );
}

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/jellyfin/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Checks that `timestamps` (of `jellyfin_up`, one per cycle) and the /System/Info requests
/// the fake Jellyfin saw pair up one to one: a cycle's timestamp is taken just before its
/// request goes out.
pub fn assert_one_sample_per_request(timestamps: &[i64], requests: &[fake_jellyfin::Request]) {
    assert_eq!(
        timestamps.len(),
        requests.len(),
        "samples {timestamps:?} vs requests {requests:?}"
    );
    for (ts, request) in timestamps.iter().zip(requests) {
        let lag = request.at_ms - ts;
        assert!(
            (0..500).contains(&lag),
            "sample at {ts} ms but its request at {} ms",
            request.at_ms
        );
    }
}

/// The epoch-ms timestamps of every `jellyfin_up` sample in VictoriaMetrics, sorted.
pub async fn up_timestamps(vm: &servers::VictoriaMetrics) -> Vec<i64> {
    let mut all: Vec<i64> = vm
        .export("{__name__=\"jellyfin_up\"}")
        .await
        .into_iter()
        .flat_map(|s| s.timestamps)
        .collect();
    all.sort();
    all
}

/// Waits (at most 60 s) until VictoriaMetrics holds a `jellyfin_up` sample for every
/// /System/Info request the fake Jellyfin saw: a backlog has been delivered.
pub async fn wait_for_every_cycle(
    vm: &servers::VictoriaMetrics,
    jellyfin: &fake_jellyfin::FakeJellyfin,
) {
    wait_for("the backlog to arrive", Duration::from_secs(60), || async {
        reqwest::get(format!("{}/internal/force_flush", vm.base_url()))
            .await
            .ok()?;
        let stored = up_timestamps(vm).await.len();
        (stored >= jellyfin.requests_to("/System/Info").len()).then_some(())
    })
    .await;
}

/// VmHWM (peak resident set) of a running process, in KiB.
pub fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// The agent's own clock reading (ms since the epoch), for comparing with its timestamps.
pub use jellyfin_pusher::sample::now_ms;

/// The value of the first exposition line that starts with `series` (name and labels).
pub fn sample_value(stdout: &str, series: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.starts_with(series))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}
