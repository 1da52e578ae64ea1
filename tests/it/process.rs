//! The process and host collectors on this machine's real /proc: a stand-in "Jellyfin"
//! process with known properties is found by its pid file, and a missing one is reported
//! once, without numbers about the wrong process.

use crate::common;

use std::process::{Command, Stdio};

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::sample_value as value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_found_by_pid_file_is_measured_not_the_agent() {
    let jellyfin = FakeJellyfin::start("").await;
    // A stand-in with a known fd limit and one thread.
    let started = common::now_ms() as f64 / 1000.0;
    let mut stand_in = Command::new("bash")
        .args(["-c", "ulimit -n 321; exec sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let pid_file = dir.dir.path().join("jellyfin.pid");
    std::fs::write(&pid_file, format!("{}\n", stand_in.id())).unwrap();
    let text = std::fs::read_to_string(dir.config()).unwrap()
        + &format!(
            "[collectors.process]\npid_file = \"{}\"\n",
            pid_file.display()
        );
    std::fs::write(dir.config(), text).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200)); // let bash exec sleep

    // cargo's jobserver descriptors may be inherited too: count what the stand-in holds.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", stand_in.id()))
        .unwrap()
        .count() as f64;
    let out = tokio::task::block_in_place(|| dir.run(&["--once"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = stand_in.kill();
    let _ = stand_in.wait();
    let l = "{instance=\"test-dmz\",job=\"jellyfin\"}";
    assert_eq!(
        value(&stdout, &format!("process_max_fds{l}")),
        Some(321.0),
        "{stdout}"
    );
    assert_eq!(value(&stdout, &format!("process_threads{l}")), Some(1.0));
    assert_eq!(value(&stdout, &format!("process_open_fds{l}")), Some(fds));
    let start = value(&stdout, &format!("process_start_time_seconds{l}")).unwrap();
    assert!(
        (start - started).abs() < 2.0,
        "started {start} vs {started}"
    );
    assert!(value(&stdout, &format!("process_cpu_seconds_total{l}")).unwrap() < 0.5);
    let rss = value(&stdout, &format!("process_resident_memory_bytes{l}")).unwrap();
    assert!(
        rss > 0.0 && rss < 50e6,
        "a sleep's RSS, not the agent's: {rss}"
    );
    assert!(stdout.contains("process_io_read_bytes_total"));
    assert!(stdout.contains("jellyfin_pusher_collector_success{collector=\"process\",instance=\"test-dmz\",job=\"jellyfin\"} 1"));

    // Host figures, cross-checked with /proc/meminfo.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        value(&stdout, &format!("node_memory_MemTotal_bytes{l}")),
        Some(kib * 1024.0)
    );
    assert!(stdout.contains("node_network_receive_bytes_total{device=\"lo\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jellyfin_process_that_is_not_visible_is_reported_not_guessed() {
    let jellyfin = FakeJellyfin::start("").await;
    let extra =
        "[collectors.process]\nunit = \"no-such-jellyfin.service\"\nname = \"no-such-jellyfin\"\n";
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", extra);
    let out = tokio::task::block_in_place(|| dir.run(&["--once"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "only Jellyfin being down fails --once: {stderr}"
    );
    assert!(!stdout.contains("process_cpu_seconds_total"), "{stdout}");
    assert!(stdout.contains("jellyfin_pusher_collector_success{collector=\"process\",instance=\"test-dmz\",job=\"jellyfin\"} 0"));
    assert!(
        stderr.contains("Jellyfin's process is not visible here"),
        "{stderr}"
    );
}
