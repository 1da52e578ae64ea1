//! Figures for the collectors (README, "Figures"): the agent's CPU time per cycle, its steady
//! and peak RSS against a Jellyfin with 50 sessions built from the real captures (playing,
//! paused, transcoding, idle), 1,000 users and a 100,000-item library, pushing into a local
//! VictoriaMetrics, with vmagent running beside it in the same run; and the requests and bytes
//! it fetches per fast cycle; the process collector watches this process (the fake Jellyfin).
//! The decoding of one /Sessions answer, against serde_json's floor for the same bytes. Then
//! the activity log: what counting a burst of 10,000 failed logins costs.
//!
//! Run: `cargo bench --bench collect` (needs victoria-metrics and vmagent; tests/run.sh
//! installs them).
//! It prints the figures; it asserts nothing about speed.

#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "support/resident.rs"]
mod resident;

use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;

const FILMS: &str = "f137a2dd21bbc1b99aa5c0f6bf02a805";

/// The session shapes of the real captures (tests/fixtures/jellyfin/SOURCES.md): from the
/// 10.9.6 capture a playing transcode, a paused transcode (both with their full NowPlayingItem,
/// NowPlayingQueue and Capabilities, 20-40 KB each) and an idle browser; from the 10.11 synthetic
/// capture a transcode and a direct play.
fn session_shapes() -> Vec<serde_json::Value> {
    let old: Vec<serde_json::Value> =
        serde_json::from_str(&common::fixture("sessions.transcoding.10.9.6.json")).unwrap();
    let new: Vec<serde_json::Value> = serde_json::from_str(&common::fixture(
        "sessions.transcoding.synthetic.10.11.json",
    ))
    .unwrap();
    let idle = old
        .iter()
        .find(|s| s.get("NowPlayingItem").is_none())
        .expect("an idle session in the 10.9.6 capture");
    let playing = old
        .iter()
        .find(|s| s["PlayState"]["IsPaused"] == false && s.get("NowPlayingItem").is_some())
        .expect("a playing session in the 10.9.6 capture");
    let paused = old
        .iter()
        .find(|s| s["PlayState"]["IsPaused"] == true)
        .expect("a paused session in the 10.9.6 capture");
    vec![
        playing.clone(),
        paused.clone(),
        new[0].clone(),
        new[1].clone(),
        idle.clone(),
    ]
}

/// 50 sessions, 10 of each real shape, each with its own session, user and device id; served
/// compact, as Jellyfin does.
fn fifty_sessions() -> (String, String) {
    let shapes = session_shapes();
    let all: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            let mut s = shapes[i % shapes.len()].clone();
            s["Id"] = format!("{i:032x}").into();
            s["UserId"] = format!("{:032x}", 1000 + i).into();
            s["UserName"] = format!("User {i}").into();
            s["DeviceId"] = format!("device-{i}").into();
            s
        })
        .collect();
    let playing = all
        .iter()
        .filter(|s| s.get("NowPlayingItem").is_some())
        .count();
    let paused = all
        .iter()
        .filter(|s| s["PlayState"]["IsPaused"] == true)
        .count();
    let transcoding = all
        .iter()
        .filter(|s| s.get("TranscodingInfo").is_some())
        .count();
    let body = serde_json::to_string(&all).unwrap();
    let what = format!(
        "50 sessions from the real captures ({playing} with a NowPlayingItem of which {paused} paused, {transcoding} transcoding; {:.0} KiB)",
        body.len() as f64 / 1024.0
    );
    (body, what)
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

/// What a process has used so far: CPU (utime + stime), resident now (VmRSS), at most (VmHWM).
struct Usage {
    cpu_s: f64,
    rss: f64,
    peak_rss: f64,
}

fn usage(pid: i32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_s = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap()
            * 1024.0
    };
    Usage {
        cpu_s,
        rss: kib("VmRSS:"),
        peak_rss: kib("VmHWM:"),
    }
}

/// Steady RSS: the median of one reading per second over the measured window.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// vmagent beside the agent: scraping VictoriaMetrics' own /metrics at the agent's interval and
/// writing to the same VictoriaMetrics, so the two run on the same machine at the same time.
struct VmAgent {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl VmAgent {
    fn start(vm: &VictoriaMetrics, interval: &str) -> VmAgent {
        let dir = tempfile::tempdir().unwrap();
        let scrape = dir.path().join("scrape.yml");
        std::fs::write(
            &scrape,
            format!(
                "scrape_configs:\n- job_name: vm\n  scrape_interval: {interval}\n  static_configs:\n  - targets: ['127.0.0.1:{}']\n",
                vm.port
            ),
        )
        .unwrap();
        let child = std::process::Command::new(common::require_binary("vmagent"))
            .arg(format!("-httpListenAddr=127.0.0.1:{}", common::free_port()))
            .arg(format!("-promscrape.config={}", scrape.display()))
            .arg(format!("-remoteWrite.url={}", vm.write_url()))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("q").display()
            ))
            .arg("-loggerLevel=ERROR")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("vmagent on PATH");
        VmAgent { child, _dir: dir }
    }
}

impl Drop for VmAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const INTERVAL_S: u64 = 2;
const WINDOW_S: u64 = 40;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let jellyfin = FakeJellyfin::start("").await;
        let (sessions, what) = fifty_sessions();
        let decode = decode_cost(sessions.as_bytes());
        jellyfin.route("/Sessions", sessions);
        jellyfin.route("/Users", thousand_users());
        jellyfin.generate_items(FILMS, 100_000);
        let vm = VictoriaMetrics::start().await;
        let interval = format!("{INTERVAL_S}s");
        let vmagent = VmAgent::start(&vm, &interval);
        // The fake Jellyfin serves from this process: the process collector watches it, found
        // by name as a real one is found by its unit.
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let process = format!("[collectors.process]\nname = \"{}\"\n", comm.trim_end());
        let dir = AgentDir::new(
            &jellyfin.url(),
            &[("tiger", &vm.write_url())],
            &interval,
            &process,
        );
        resident::written_back(common::agent::BIN);
        let agent = dir.start();
        // Start-up runs every collector once, the 100k-item inventory walk included.
        jellyfin.wait_for_requests("/System/Info", 2).await;
        // The steady state starts once the walk is over: 200 pages of Films, one empty page
        // each for the two other libraries.
        jellyfin.wait_for_requests("/Items", 202).await;
        jellyfin.wait_for_requests("/System/Info", 3).await;
        let walk_peak = usage(agent.pid()).peak_rss;
        let ours_start = usage(agent.pid());
        let theirs_start = usage(vmagent.child.id() as i32);
        let before = jellyfin.requests().len();
        let cycles_before = jellyfin.requests_to("/System/Info").len();
        let faults_start = resident::faults(agent.pid());
        let (mut ours_rss, mut theirs_rss) = (Vec::new(), Vec::new());
        let mut steady = None;
        for second in 0..WINDOW_S {
            tokio::time::sleep(Duration::from_secs(1)).await;
            ours_rss.push(usage(agent.pid()).rss);
            theirs_rss.push(usage(vmagent.child.id() as i32).rss);
            if second == WINDOW_S / 2 {
                steady = Some(resident::breakdown(agent.pid()));
            }
        }
        let faults_end = resident::faults(agent.pid());
        let ours_end = usage(agent.pid());
        let theirs_end = usage(vmagent.child.id() as i32);
        let requests = jellyfin.requests();
        let cycles = requests.iter().filter(|r| r.path == "/System/Info").count() - cycles_before;
        let fast: Vec<_> = requests[before..].iter().collect();
        let bytes: usize = fast.iter().map(|r| r.bytes).sum();
        let ours_cpu = (ours_end.cpu_s - ours_start.cpu_s) / cycles as f64;
        let theirs_cycles = WINDOW_S as f64 / INTERVAL_S as f64;
        let theirs_cpu = (theirs_end.cpu_s - theirs_start.cpu_s) / theirs_cycles;
        let mib = |b: f64| b / 1048576.0;
        println!("jellyfin: {what}, 1,000 users, 100,000 items; interval {INTERVAL_S} s, {WINDOW_S} s measured, release build");
        println!(
            "agent:   {cycles} cycles, {:.2} ms CPU per cycle = {:.3} % of one core at a 15 s interval; steady RSS {:.1} MiB (median of {WINDOW_S} readings); peak RSS {:.1} MiB (start-up inventory walk included)",
            ours_cpu * 1000.0,
            ours_cpu / 15.0 * 100.0,
            mib(median(ours_rss)),
            mib(walk_peak.max(ours_end.peak_rss)),
        );
        println!(
            "vmagent: scraping VictoriaMetrics' /metrics every {INTERVAL_S} s into the same VictoriaMetrics, {:.2} ms CPU per scrape; steady RSS {:.1} MiB; peak RSS {:.1} MiB",
            theirs_cpu * 1000.0,
            mib(median(theirs_rss)),
            mib(theirs_end.peak_rss),
        );
        rss_breakdown(steady, &faults_start, &faults_end, cycles);
        println!(
            "requests per fast cycle: {:.1} ({:.1} KiB fetched per cycle)",
            fast.len() as f64 / cycles as f64,
            bytes as f64 / cycles as f64 / 1024.0
        );
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
        drop(vmagent);
        println!("{decode}");
        activity_burst(&vm).await;
    });
}

/// The agent's steady RSS taken apart (one reading in the middle of the window), and its minor
/// page faults per cycle: what dropping unused code (src/resident.rs) costs in faults.
fn rss_breakdown(
    steady: Option<resident::Breakdown>,
    start: &resident::Faults,
    end: &resident::Faults,
    cycles: usize,
) {
    if let Some(steady) = steady {
        println!("agent's steady {steady}");
    }
    println!(
        "agent's page faults: {:.1} minor and {:.1} major per cycle while steady; {} major since it started (start-up and the code dropped after the walk read back from disk)",
        (end.minor - start.minor) as f64 / cycles as f64,
        (end.major - start.major) as f64 / cycles as f64,
        end.major,
    );
}

/// The decoding of one /Sessions answer, in this process (release build): into the agent's
/// DTOs by the agent's own decoder, and, for scale, a pass that reads every value and keeps none (serde_json's floor for
/// any decoding of those bytes, what the fields the agent does not read would cost at best).
fn decode_cost(body: &[u8]) -> String {
    use jellyfin_pusher::jellyfin::dto::Session;
    const ROUNDS: u32 = 200;
    let time = |decode: &dyn Fn()| {
        let started = std::time::Instant::now();
        for _ in 0..ROUNDS {
            decode();
        }
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(ROUNDS)
    };
    let dtos = time(&|| {
        let sessions: Vec<Session> =
            jellyfin_pusher::jellyfin::decode("/Sessions", "application/json", body, &[]).unwrap();
        std::hint::black_box(sessions);
    });
    let skip = time(&|| {
        let text = std::str::from_utf8(body).unwrap();
        let all: serde::de::IgnoredAny = serde_json::from_str(text).unwrap();
        std::hint::black_box(all);
    });
    format!(
        "decoding one /Sessions answer ({:.0} KiB): {dtos:.2} ms into the agent's DTOs; {skip:.2} ms to read it and keep nothing (mean of {ROUNDS} rounds)",
        body.len() as f64 / 1024.0
    )
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
    let cpu_start = usage(agent.pid()).cpu_s;
    // Every walk re-reads the minute of overlap: 10 s of cycles, then the averages.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let Usage {
        cpu_s: cpu_end,
        peak_rss,
        ..
    } = usage(agent.pid());
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
