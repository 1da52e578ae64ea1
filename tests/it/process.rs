//! The process and host collectors on this machine's real /proc: a stand-in "Jellyfin"
//! process with known properties is found by its pid file, and a missing one is reported
//! once, without numbers about the wrong process.

use crate::common;

use std::process::{Command, Stdio};

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::sample_value as value;

/// A process standing in for Jellyfin: bash running `script`.
fn stand_in(script: &str) -> std::process::Child {
    Command::new("bash")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// An agent config that finds "Jellyfin" as `pid` by a pid file.
fn agent_for(jellyfin: &FakeJellyfin, pid: u32) -> AgentDir {
    let dir = AgentDir::new(&jellyfin.url(), &[], "15s", "");
    let pid_file = dir.dir.path().join("jellyfin.pid");
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
    let text = std::fs::read_to_string(dir.config()).unwrap()
        + &format!(
            "[collectors.process]\npid_file = \"{}\"\n",
            pid_file.display()
        );
    std::fs::write(dir.config(), text).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_found_by_pid_file_is_measured_not_the_agent() {
    let jellyfin = FakeJellyfin::start("").await;
    // A stand-in with a known fd limit and one thread.
    let started = common::now_ms() as f64 / 1000.0;
    let mut stand_in = stand_in("ulimit -n 321; exec sleep 60");
    let dir = agent_for(&jellyfin, stand_in.id());
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
    // This machine's processes sit in no service cgroup: the process tree is summed.
    let tree = "{instance=\"test-dmz\",job=\"jellyfin\",source=\"process_tree\"}";
    assert!(value(&stdout, &format!("process_cpu_seconds_total{tree}")).unwrap() < 0.5);
    let rss = value(&stdout, &format!("process_resident_memory_bytes{tree}")).unwrap();
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

/// CPU time (user + system, own and of reaped children) of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = (11..=14).map(|i| f[i].parse::<f64>().unwrap()).sum();
    // SAFETY: sysconf reads a constant of the running system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_includes_the_ffmpeg_like_children_jellyfin_starts() {
    let jellyfin = FakeJellyfin::start("").await;
    // A quiet parent (standing in for Jellyfin) with a busy child (an ffmpeg job).
    let mut parent = stand_in("sh -c 'while :; do :; done' & wait");
    let pid = parent.id();
    let dir = agent_for(&jellyfin, pid);
    let child: u32 = common::wait_for("the busy child", std::time::Duration::from_secs(10), || {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        async move {
            children
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
        }
    })
    .await;
    // Let the child burn CPU, then measure it just before the agent looks.
    common::wait_for(
        "CPU burnt by the child",
        std::time::Duration::from_secs(30),
        || {
            let burnt = cpu_seconds(child);
            async move { (burnt >= 0.5).then_some(()) }
        },
    )
    .await;
    let child_before = cpu_seconds(child);
    let parent_own = cpu_seconds(pid);
    let out = tokio::task::block_in_place(|| dir.run(&["--once"]));
    let child_after = cpu_seconds(child);
    let _ = Command::new("kill").arg(child.to_string()).status();
    let _ = parent.kill();
    let _ = parent.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cpu = value(
        &stdout,
        "process_cpu_seconds_total{instance=\"test-dmz\",job=\"jellyfin\",source=\"process_tree\"}",
    )
    .unwrap_or_else(|| panic!("{stdout}"));
    eprintln!(
        "FIGURE parent {parent_own:.2} s + child {child_before:.2}..{child_after:.2} s; agent reports {cpu:.2} s"
    );
    assert!(parent_own < 0.2, "the parent is quiet: {parent_own}");
    assert!(
        cpu >= parent_own + child_before && cpu <= parent_own + child_after + 0.05,
        "Jellyfin's CPU includes its child: {cpu} vs parent {parent_own} + child {child_before}..{child_after}"
    );
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
