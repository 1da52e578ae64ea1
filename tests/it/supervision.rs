//! No task ends silently: a real panic in a collector, the pipeline and a sender (injected
//! through the debug-build-only `JELLYFIN_PUSHER_TEST_PANIC`, see src/app/fault.rs) is logged
//! at error level, the task is restarted, `jellyfin_pusher_task_restarts_total{task}` counts
//! it in a real VictoriaMetrics, and every cycle before and after still arrives. Without
//! supervision the sender's panic would end all delivery, and the system collector's would end
//! `jellyfin_up`, so this test fails.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{up_timestamps, wait_for};

const PLAN: &str = "collector:system=3,pipeline=6,sender:tiger=4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_the_pipeline_and_a_sender_recover_from_a_panic() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIP: the panic seam exists only in debug builds (this is a release test run)");
        return;
    }
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let mut agent = dir.start_with_env(&[("JELLYFIN_PUSHER_TEST_PANIC", PLAN)]);
    // Enough cycles for all three panics and their restarts (1-2 s each), and some after.
    wait_for("three restarts", Duration::from_secs(60), || {
        let log = agent.log();
        async move { (log.matches("restarting it").count() >= 3).then_some(()) }
    })
    .await;
    let n = jellyfin.requests_to("/System/Info").len();
    jellyfin.wait_for_requests("/System/Info", n + 4).await;
    assert!(agent.stop().success(), "log:\n{}", agent.log());
    vm.settle().await;

    let log = agent.log();
    for task in ["collector:system", "pipeline", "sender:tiger"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("injected panic in {task} ")) && l.contains("restarting"))
            .unwrap_or_else(|| panic!("no restart logged for {task}:\n{log}"));
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains(&format!("task={task}")), "{line}");
    }

    // The self-metric, read back from VictoriaMetrics: 1 for each, 0 (born) for the others.
    let restarts = vm
        .export("{__name__=\"jellyfin_pusher_task_restarts_total\"}")
        .await;
    let last = |task: &str| {
        restarts
            .iter()
            .find(|s| s.label("task") == Some(task))
            .and_then(|s| s.values.last().copied())
            .unwrap_or_else(|| panic!("no series for {task}: {restarts:?}"))
    };
    assert_eq!(last("collector:system"), 1.0);
    assert_eq!(last("pipeline"), 1.0);
    assert_eq!(last("sender:tiger"), 1.0);
    assert_eq!(last("collector:sessions"), 0.0);
    assert_eq!(last("collector:pusher"), 0.0);

    // Every cycle arrived, including those after the restarts, but the one batch the pipeline
    // was storing when it panicked (if that was a system batch).
    let requests = jellyfin.requests_to("/System/Info");
    let up = up_timestamps(&vm).await;
    let paired = requests
        .iter()
        .filter(|r| up.iter().any(|ts| (0..500).contains(&(r.at_ms - ts))))
        .count();
    assert!(
        paired + 1 >= requests.len() && paired == up.len(),
        "{} requests, {} samples, {paired} paired",
        requests.len(),
        up.len()
    );
    let newest = requests.last().unwrap().at_ms;
    assert!(
        up.iter().any(|ts| (0..500).contains(&(newest - ts))),
        "the newest cycle, after every restart, arrived"
    );
}

/// A sender that keeps dying is stuck: the watchdog is no longer fed, so systemd restarts the
/// whole agent. Here the sender dies at its first delivery and at the first after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_sender_stops_the_watchdog_pings() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIP: the panic seam exists only in debug builds (this is a release test run)");
        return;
    }
    let jellyfin = FakeJellyfin::start("").await;
    // Nothing listens here: the sender is still alive (retrying), never delivering.
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[(
            "tiger",
            &format!("http://127.0.0.1:{}/api/v1/write", common::free_port()),
        )],
        "1s",
        "",
    );
    let path = dir.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut agent = dir.start_with_env(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
        ("JELLYFIN_PUSHER_TEST_PANIC", "sender:tiger=1"),
    ]);
    // The sender panics at its first delivery; while it waits for its restart (~1 s) no ping.
    let mut pings = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(6) {
        if let Ok(n) = socket.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "WATCHDOG=1")
        {
            pings.push(started.elapsed());
        }
    }
    agent.stop();
    let log = agent.log();
    let withheld = log
        .lines()
        .find(|l| l.contains("sender of remote tiger is stuck: its task is not running"))
        .unwrap_or_else(|| panic!("no withheld ping logged:\n{log}"));
    assert!(withheld.contains("ERROR"), "{withheld}");
    // Pings every 100 ms, with a gap while the sender was dead, and again after its restart.
    let gap = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(gap >= Duration::from_millis(700), "pings {pings:?}");
    assert!(
        pings.last().is_some_and(|t| *t > Duration::from_secs(4)),
        "pings resumed after the restart: {pings:?}"
    );
}
