//! Figures for the collectors (README, "Figures"): the agent's CPU time per cycle and its
//! peak RSS against a Jellyfin with 50 playing sessions, 1,000 users and a 100,000-item
//! library, pushing into a local VictoriaMetrics; and the requests and bytes it fetches per
//! fast cycle. Then the activity log: what counting a burst of 10,000 failed logins costs.
//!
//! Run: `cargo bench --bench collect` (needs victoria-metrics; tests/run.sh installs it).
//! It prints the figures; it asserts nothing about speed.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

const FILMS: &str = "f137a2dd21bbc1b99aa5c0f6bf02a805";

/// 50 sessions: the two 10.11 fixture sessions, 25 times over with their own ids and users.
fn fifty_sessions() -> String {
    let two: Vec<serde_json::Value> = serde_json::from_str(&common::fixture(
        "sessions.transcoding.synthetic.10.11.json",
    ))
    .unwrap();
    let mut all = Vec::new();
    for i in 0..25 {
        for (j, session) in two.iter().enumerate() {
            let mut s = session.clone();
            s["Id"] = format!("{:032x}", i * 2 + j).into();
            s["UserId"] = format!("{:032x}", 1000 + i * 2 + j).into();
            s["UserName"] = format!("User {}", i * 2 + j).into();
            all.push(s);
        }
    }
    serde_json::to_string(&all).unwrap()
}

fn thousand_users() -> String {
    let one: Vec<serde_json::Value> =
        serde_json::from_str(&common::fixture("users.10.11.11.json")).unwrap();
    let users: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let mut u = one[i % one.len()].clone();
            u["Id"] = format!("{i:032x}").into();
            u["Name"] = format!("User {i}").into();
            u
        })
        .collect();
    serde_json::to_string(&users).unwrap()
}

/// (utime + stime seconds, VmHWM bytes) of a process.
fn usage(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (cpu, hwm_kib * 1024.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let jellyfin = FakeJellyfin::start("").await;
        jellyfin.route("/Sessions", fifty_sessions());
        jellyfin.route("/Users", thousand_users());
        jellyfin.generate_items(FILMS, 100_000);
        let vm = VictoriaMetrics::start().await;
        let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &vm.write_url())], "1s", "");
        let agent = dir.start();
        // Start-up runs every collector once, the 100k-item inventory walk included.
        jellyfin.wait_for_requests("/System/Info", 3).await;
        // The steady state starts once the walk is over: 200 pages of Films, one empty page
        // each for the two other libraries.
        jellyfin.wait_for_requests("/Items", 202).await;
        let (cpu_start, _) = usage(agent.pid());
        let before = jellyfin.requests().len();
        let cycles_before = jellyfin.requests_to("/System/Info").len();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (cpu_end, peak_rss) = usage(agent.pid());
        let requests = jellyfin.requests();
        let cycles = requests.iter().filter(|r| r.path == "/System/Info").count() - cycles_before;
        let fast: Vec<_> = requests[before..].iter().collect();
        let bytes: usize = fast.iter().map(|r| r.bytes).sum();
        let cpu_per_cycle = (cpu_end - cpu_start) / cycles as f64;
        println!("jellyfin: 50 sessions (2 transcoding kinds), 1,000 users, 100,000 items; agent interval 1 s, release build");
        println!(
            "steady state: {cycles} cycles in 30 s, {:.2} ms CPU per cycle = {:.3} % of one core at a 15 s interval",
            cpu_per_cycle * 1000.0,
            cpu_per_cycle / 15.0 * 100.0
        );
        println!(
            "requests per fast cycle: {:.1} ({:.1} KiB fetched per cycle)",
            fast.len() as f64 / cycles as f64,
            bytes as f64 / cycles as f64 / 1024.0
        );
        println!("peak RSS (VmHWM) including the start-up inventory walk: {:.1} MiB", peak_rss / 1048576.0);
        // The walk is the start-up's only run of the hourly inventory: its first and last page.
        let pages = jellyfin.requests_to("/Items");
        if let (Some(first), Some(last)) = (pages.first(), pages.last()) {
            println!(
                "start-up inventory walk of 100,000 items: {} requests, {:.1} MiB, {:.2} s from the first page asked to the last",
                pages.len(),
                pages.iter().map(|r| r.bytes).sum::<usize>() as f64 / 1048576.0,
                (last.at_ms - first.at_ms) as f64 / 1000.0
            );
        }
        drop(agent);
        activity_burst(&vm).await;
    });
}

/// 10,000 failed logins between two cycles of an agent that runs only the activity collector:
/// the requests, bytes and CPU time of the walks that count them, and the saved state's size.
async fn activity_burst(vm: &VictoriaMetrics) {
    const ENTRIES: &str = "/System/ActivityLog/Entries";
    let jellyfin = FakeJellyfin::start("").await;
    let off = [
        "system",
        "sessions",
        "users",
        "library",
        "inventory",
        "tasks",
        "host",
        "process",
    ]
    .map(|c| format!("[collectors.{c}]\nenabled = false\n"))
    .concat();
    let extra = format!("{off}[collectors.activity]\ninterval = \"1s\"\n");
    let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &vm.write_url())], "1s", &extra);
    let agent = dir.start();
    jellyfin.wait_for_requests(ENTRIES, 3).await;
    let now = common::now_ms();
    for i in 0..10_000 {
        jellyfin.log_activity(common::fake_jellyfin::activity_entry(
            1_000 + i,
            "AuthenticationFailed",
            &common::fake_jellyfin::jellyfin_date(now - 10_000 + i),
            None,
            None,
        ));
    }
    let before = jellyfin.requests_to(ENTRIES).len();
    let (cpu_start, _) = usage(agent.pid());
    // Every walk re-reads the minute of overlap: 10 s of cycles, then the averages.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu_end, peak_rss) = usage(agent.pid());
    let requests = &jellyfin.requests_to(ENTRIES)[before..];
    let walks = requests
        .iter()
        .filter(|r| {
            r.query
                .as_deref()
                .is_some_and(|q| q.starts_with("startIndex=0&"))
        })
        .count();
    let bytes: usize = requests.iter().map(|r| r.bytes).sum();
    let state = std::fs::metadata(dir.state().join("activity.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "activity burst of 10,000 entries within the minute of overlap: {walks} walks in 10 s, {:.1} requests and {:.0} KiB per walk, {:.1} ms CPU per walk, state file {:.0} KiB, peak RSS {:.1} MiB",
        requests.len() as f64 / walks as f64,
        bytes as f64 / walks as f64 / 1024.0,
        (cpu_end - cpu_start) / walks as f64 * 1000.0,
        state as f64 / 1024.0,
        peak_rss / 1048576.0
    );
    drop(agent);
}
