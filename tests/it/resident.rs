//! The running agent drops the code and constants it no longer runs (src/resident.rs): two
//! intervals after start its binary's mappings are marked for random access (`rr` in smaps'
//! VmFlags, set only by the drop) and its file-backed resident memory (RssFile) falls below
//! what start-up left, while cycles go on. Without the drop no mapping carries `rr` and
//! RssFile only grows, so this test fails.

use crate::common;

use std::time::{Duration, Instant};

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

/// Whether the agent's own binary is mapped with MADV_RANDOM, and its RssFile in KiB.
fn resident(pid: i32) -> (bool, u64) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut own = false;
    let mut random = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            own = line.ends_with(exe.to_str().unwrap());
        } else if own && line.starts_with("VmFlags:") {
            random |= line.split_whitespace().any(|flag| flag == "rr");
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let file_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (random, file_kib)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_code_leaves_the_resident_set() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    // The inventory walk drops too when it ends; off, the start-up drop is the only one.
    let dir = AgentDir::pushing(&jellyfin, &vm, "[collectors.inventory]\nenabled = false\n");
    let mut agent = dir.start();
    let pid = agent.pid();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = 0;
    loop {
        let (random, file_kib) = resident(pid);
        if random {
            break;
        }
        before = before.max(file_kib);
        assert!(
            Instant::now() < deadline,
            "no drop within 60 s:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two more cycles run their code again after the drop.
    let cycles = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", cycles + 2).await;
    let (_, after) = resident(pid);
    // Measured: 20.2 MiB before, 15.0 MiB after.
    assert!(
        after + 2048 <= before,
        "RssFile {before} KiB before the drop, {after} KiB two cycles after"
    );
    assert!(agent.is_running(), "log:\n{}", agent.log());
    eprintln!(
        "FIGURE RssFile {before} KiB before the start-up drop, {after} KiB two cycles after (debug build)"
    );
    assert!(agent.stop().success(), "log:\n{}", agent.log());
}
