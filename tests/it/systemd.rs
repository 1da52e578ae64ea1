//! The systemd side: the unit passes `systemd-analyze verify` and its `security` exposure is
//! at most 2.0, the agent speaks the sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING)
//! on a real notify socket, and it opens no listening socket.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::{AgentDir, BIN};
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{require_binary, wait_for};

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/jellyfin-pusher.service"
);

#[test]
fn the_unit_verifies_and_its_exposure_is_at_most_2() {
    let systemd_analyze = require_binary("systemd-analyze");
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("jellyfin-pusher.service");
    std::fs::write(
        &unit,
        std::fs::read_to_string(UNIT)
            .unwrap()
            .replace("/usr/bin/jellyfin-pusher", BIN),
    )
    .unwrap();
    let verify = Command::new(&systemd_analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stderr).to_string()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && report.trim().is_empty(),
        "systemd-analyze verify:\n{report}"
    );

    let exposure = exposure(std::path::Path::new(UNIT));
    eprintln!("systemd-analyze security --offline=yes: exposure {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0");
}

/// `systemd-analyze security --offline=yes` of a unit file: its overall exposure (0 to 10).
pub fn exposure(unit: &std::path::Path) -> f64 {
    let name = unit.file_name().unwrap().to_string_lossy();
    let security = Command::new(require_binary("systemd-analyze"))
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    text.lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {name}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure in:\n{text}"))
}

#[test]
fn the_unit_pins_egress_and_caps_memory_and_threads() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= is not set"))
            .to_string()
    };
    assert_eq!(value("IPAddressDeny"), "any");
    assert_eq!(value("IPAddressAllow"), "localhost");
    assert!(unit.contains("ADD the address of\n# every [[remote_write]] receiver"));
    assert_eq!(value("MemoryMax"), "256M");
    // main.rs: the main thread runs every task, plus at most 16 blocking threads, with room
    // to spare.
    let tasks: u32 = value("TasksMax").parse().unwrap();
    let main = include_str!("../../src/main.rs");
    assert!(
        main.contains("Builder::new_current_thread()")
            && main.contains(".max_blocking_threads(16)")
    );
    let threads = 1 + 16;
    assert!(tasks >= threads, "TasksMax={tasks}");
}

#[test]
fn the_unit_never_puts_a_secret_in_argv_or_the_environment() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert_eq!(
        exec,
        "ExecStart=/usr/bin/jellyfin-pusher --config /etc/jellyfin-pusher/config.toml"
    );
    assert!(
        !unit.lines().any(|l| l.starts_with("Environment")),
        "no Environment= lines"
    );
    assert!(unit.contains("\nLoadCredential=jellyfin-token:"));
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="));
}

/// Reads notify messages until `until` matches one or `timeout` passes.
fn read_until(socket: &UnixDatagram, until: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = message.lines().any(|l| l == until);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no {until} within {timeout:?}; got {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_speaks_sd_notify_ready_status_watchdog_and_stopping() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let path = dir.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut agent = dir.start_with_env(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);

    let first = read_until(&socket, "READY=1", Duration::from_secs(10));
    assert_eq!(first.len(), 1, "READY=1 is the first message: {first:?}");
    assert!(first[0].contains("STATUS=tiger: backlog"), "{first:?}");
    // Pings keep coming (every half WATCHDOG_USEC), and their STATUS follows the pushes.
    let mut pings = 0;
    loop {
        let ping = read_until(&socket, "WATCHDOG=1", Duration::from_secs(5));
        pings += 1;
        let status = ping.last().unwrap();
        assert!(status.contains("STATUS=tiger: backlog"), "{status}");
        if status.contains("last push") {
            break;
        }
        assert!(pings < 20, "STATUS never reported a push: {status}");
    }
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    read_until(&socket, "STOPPING=1", Duration::from_secs(10));
    assert!(agent.stop_status().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_opens_no_listening_socket() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let agent = dir.start();
    wait_for("a few cycles", Duration::from_secs(20), || {
        let n = jellyfin.requests_to("/System/Info").len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    // The agent's socket inodes, looked up in the kernel's socket tables.
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            Some(
                target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut tcp_states = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{}/net/{table}", agent.pid())).unwrap();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if inodes.iter().any(|i| i == fields[9]) {
                tcp_states.push((table, fields[3].to_string()));
            }
        }
    }
    assert!(
        !tcp_states.is_empty(),
        "the check sees the agent's connections: {inodes:?}"
    );
    for (table, state) in &tcp_states {
        assert!(table.starts_with("tcp"), "a {table} socket is open");
        assert_ne!(state, "0A", "a listening {table} socket");
        assert_eq!(state, "01", "only established connections (state {state})");
    }
}
