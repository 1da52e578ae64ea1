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
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/resident.rs"]
mod resident;

use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use cpu::cpu_ns;

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

/// What a process has used so far: CPU (every thread's, in ns), resident now (VmRSS), at most
/// (VmHWM).
struct Usage {
    cpu_s: f64,
    rss: f64,
    peak_rss: f64,
}

fn usage(pid: i32) -> Usage {
    let cpu_s = cpu_ns(pid) as f64 / 1e9;
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

/// Median, least and most of `v`, as "median (min-max)".
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:.3} ms ({:.3}-{:.3})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

/// Steady RSS: the median of one reading per second over the measured window.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Waits, a whole cycle at a time, until the agent is steady: past the drop of its start-up
/// code (src/resident.rs, `drop_after_start_up`, two intervals after it started) and one cycle
/// more, and until a cycle has passed without a major fault (the code still in use read back
/// from disk after the drop). Before, the first round held that read-back (about 50 major
/// faults), so "steady" figures were not steady. Returns just after a cycle's start, as the
/// rounds expect.
async fn settle(jellyfin: &FakeJellyfin, pid: i32, started: std::time::Instant) {
    const MOST_CYCLES: usize = 10;
    let dropped_by = Duration::from_secs(3 * INTERVAL_S);
    let mut majors = resident::faults(pid).major;
    for _ in 0..MOST_CYCLES {
        let cycles = jellyfin.requests_to("/System/Info").len();
        jellyfin.wait_for_requests("/System/Info", cycles + 1).await;
        // Where the rounds start: past the start of the cycle's requests.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = resident::faults(pid).major;
        if started.elapsed() >= dropped_by && now == majors {
            return;
        }
        majors = now;
    }
    println!("(the agent's major faults still moved after {MOST_CYCLES} cycles of settling)");
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
/// The measured window: rounds of whole cycles, each round's CPU per cycle one figure of the
/// spread.
const ROUNDS: usize = 5;
const CYCLES_PER_ROUND: usize = 8;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // COLLECT_PART=process: only the process collector's micro bench (for iterating).
        if std::env::var("COLLECT_PART").as_deref() == Ok("process") {
            println!("{}", process_cost().await);
            return;
        }
        // COLLECT_PART=decode: only the decoding of one /Sessions answer (for iterating).
        if std::env::var("COLLECT_PART").as_deref() == Ok("decode") {
            println!("{}", decode_cost(fifty_sessions().0.as_bytes()));
            return;
        }
        let jellyfin = FakeJellyfin::start("").await;
        let (sessions, what) = fifty_sessions();
        let decode = decode_cost(sessions.as_bytes());
        jellyfin.route("/Sessions", sessions);
        jellyfin.route("/Users", thousand_users());
        jellyfin.generate_items(FILMS, 100_000);
        let encoding = encode_cost(&jellyfin.url()).await;
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
        let agent_started = std::time::Instant::now();
        // Start-up runs every collector once, the 100k-item inventory walk included.
        jellyfin.wait_for_requests("/System/Info", 2).await;
        // The steady state starts once the walk is over: 200 pages of Films, one empty page
        // each for the two other libraries.
        jellyfin.wait_for_requests("/Items", 202).await;
        jellyfin.wait_for_requests("/System/Info", 3).await;
        // Let that cycle finish: the first round starts with the next.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let walk_peak = usage(agent.pid()).peak_rss;
        settle(&jellyfin, agent.pid(), agent_started).await;
        let theirs_pid = vmagent.child.id() as i32;
        // COLLECT_PERF=<file>: a perf profile of the agent over the measured window.
        let perf = std::env::var_os("COLLECT_PERF").map(|out| {
            std::process::Command::new("perf")
                .args(["record", "-q", "-F", "2000", "-g", "-o"])
                .arg(out)
                .arg("-p")
                .arg(agent.pid().to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("perf on PATH")
        });
        let before = jellyfin.requests().len();
        let cycles_before = jellyfin.requests_to("/System/Info").len();
        let faults_start = resident::faults(agent.pid());
        let (mut ours_rss, mut theirs_rss) = (Vec::new(), Vec::new());
        let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
        let mut steady = None;
        let mut target = cycles_before;
        let mut last_rss = std::time::Instant::now();
        for _ in 0..ROUNDS {
            // A round starts just after a cycle has started (its /System/Info asked) and ends
            // just after the cycle CYCLES_PER_ROUND later has: whole cycles in each.
            let ours_start = usage(agent.pid()).cpu_s;
            let theirs_start = usage(theirs_pid).cpu_s;
            let started = std::time::Instant::now();
            target += CYCLES_PER_ROUND;
            while jellyfin.requests_to("/System/Info").len() < target {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if last_rss.elapsed() >= Duration::from_secs(1) {
                    last_rss = std::time::Instant::now();
                    ours_rss.push(usage(agent.pid()).rss);
                    theirs_rss.push(usage(theirs_pid).rss);
                    // The breakdown once, well inside the steady state.
                    if ours_rss.len() == 10 {
                        steady = Some(resident::breakdown(agent.pid()));
                    }
                }
            }
            // Past the start of the last cycle's requests: let it finish.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ours_end = usage(agent.pid()).cpu_s;
            let theirs_end = usage(theirs_pid).cpu_s;
            ours_cpu.push((ours_end - ours_start) / CYCLES_PER_ROUND as f64 * 1000.0);
            let scrapes = started.elapsed().as_secs_f64() / INTERVAL_S as f64;
            theirs_cpu.push((theirs_end - theirs_start) / scrapes * 1000.0);
        }
        if let Some(mut perf) = perf {
            unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
            let _ = perf.wait();
        }
        let faults_end = resident::faults(agent.pid());
        let ours_end = usage(agent.pid());
        let theirs_end = usage(theirs_pid);
        let requests = jellyfin.requests();
        let cycles = requests.iter().filter(|r| r.path == "/System/Info").count() - cycles_before;
        let fast: Vec<_> = requests[before..].iter().collect();
        let bytes: usize = fast.iter().map(|r| r.bytes).sum();
        let ours_median = median(ours_cpu.clone());
        let mib = |b: f64| b / 1048576.0;
        println!("jellyfin: {what}, 1,000 users, 100,000 items; interval {INTERVAL_S} s, {ROUNDS} rounds of {CYCLES_PER_ROUND} cycles measured, release build");
        println!(
            "agent:   {cycles} cycles, CPU per cycle {} (median (least-most) of {ROUNDS} rounds; ns from schedstat) = {:.3} % of one core at a 15 s interval; steady RSS {:.1} MiB (median of {} readings); peak RSS {:.1} MiB (start-up inventory walk included)",
            spread(ours_cpu),
            ours_median / 1000.0 / 15.0 * 100.0,
            mib(median(ours_rss.clone())),
            ours_rss.len(),
            mib(walk_peak.max(ours_end.peak_rss)),
        );
        println!(
            "vmagent: scraping VictoriaMetrics' /metrics every {INTERVAL_S} s into the same VictoriaMetrics, CPU per scrape {} (same rounds); steady RSS {:.1} MiB; peak RSS {:.1} MiB",
            spread(theirs_cpu),
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
        println!("{encoding}");
        println!("{}", process_cost().await);
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
/// DTOs by the agent's own decoder (only the fields the DTOs read reach serde), whole and in
/// chunks as the client feeds it, by the same
/// decoder with every byte through serde (what it cost before the skim), and, for scale, a pass
/// that reads every value and keeps none (serde_json's floor for any decoding of every byte).
/// Each the median (least-most) of 5 rounds of 200 decodings.
fn decode_cost(body: &[u8]) -> String {
    use jellyfin_pusher::jellyfin::dto::Session;
    const ROUNDS: usize = 5;
    const DECODES: u32 = 200;
    let time = |decode: &dyn Fn()| {
        let rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let started = cpu_ns(std::process::id() as i32);
                for _ in 0..DECODES {
                    decode();
                }
                (cpu_ns(std::process::id() as i32) - started) as f64 / 1e6 / f64::from(DECODES)
            })
            .collect();
        spread(rounds)
    };
    let skimmed = time(&|| {
        let sessions: Vec<Session> =
            jellyfin_pusher::jellyfin::decode("/Sessions", "application/json", body, &[]).unwrap();
        std::hint::black_box(sessions);
    });
    // As the client decodes an answer: chunk by chunk as hyper hands them over (16 KiB here).
    let chunked = time(&|| {
        let mut incoming = jellyfin_pusher::jellyfin::Incoming::<Vec<Session>>::new(
            "/Sessions",
            "application/json",
            body.len(),
            &[],
        );
        for chunk in body.chunks(16 * 1024) {
            assert!(incoming.feed(chunk).unwrap());
        }
        std::hint::black_box(incoming.finish().unwrap());
    });
    let whole = time(&|| {
        let sessions: Vec<Session> =
            jellyfin_pusher::jellyfin::decode_whole("/Sessions", "application/json", body, &[])
                .unwrap();
        std::hint::black_box(sessions);
    });
    let skip = time(&|| {
        let text = std::str::from_utf8(body).unwrap();
        let all: serde::de::IgnoredAny = serde_json::from_str(text).unwrap();
        std::hint::black_box(all);
    });
    format!(
        "decoding one /Sessions answer ({:.0} KiB), CPU per decoding, median (least-most) of {ROUNDS} rounds of {DECODES}: {skimmed} into the agent's DTOs (skimmed); {chunked} skimmed in 16 KiB chunks as they arrive (jellyfin::Incoming, as the client decodes); {whole} with every byte through serde; {skip} to read every byte and keep nothing",
        body.len() as f64 / 1024.0
    )
}

/// One fast cycle's batches, made in this process by the agent's own fast collectors (system,
/// sessions, process, host, pusher; the runner's label bounds applied) against the fake
/// Jellyfin: the encoding of them into the five blocks the agent stores, as the agent encodes
/// them now and through prost's messages as it did before (`encode_via_prost`, plus the same
/// snappy compression), and the label bounds alone. Each the median (least-most) of 5 rounds
/// of 200.
async fn encode_cost(jellyfin_url: &str) -> String {
    use jellyfin_pusher::collectors::{Deps, plays_seen_for, registry, run_once};
    use jellyfin_pusher::remote_write::encode::{encode, encode_via_prost};
    const ROUNDS: usize = 5;
    const ENCODES: u32 = 200;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "bench-token").unwrap();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let toml = format!(
        "state_dir = \"{0}\"\n[jellyfin]\nurl = \"{jellyfin_url}\"\ntoken_file = \"{0}/token\"\n\
         [collectors.process]\nname = \"{1}\"\n",
        dir.path().display(),
        comm.trim_end()
    );
    let config = jellyfin_pusher::config::Config::from_toml(
        &toml,
        std::path::Path::new("bench.toml"),
        &|_| None,
    )
    .unwrap();
    let token =
        jellyfin_pusher::secret::read_secret_file(&dir.path().join("token"), "token").unwrap();
    let deps = Deps {
        jellyfin: jellyfin_pusher::jellyfin::Client::new(
            config.jellyfin.url.clone(),
            &token,
            config.jellyfin.timeout,
            config.jellyfin.max_response_size,
        )
        .unwrap(),
        stats: std::sync::Arc::new(jellyfin_pusher::stats::PusherStats::new(["tiger"])),
        privacy: jellyfin_pusher::privacy::Privacy::load(
            config.privacy.user_label,
            dir.path(),
            false,
        )
        .unwrap(),
        persist_state: false,
        plays_seen: plays_seen_for(&config),
    };
    let mut batches = Vec::new();
    for mut scheduled in registry(&config, &deps) {
        if scheduled.interval == config.collect.interval {
            batches.push(run_once(scheduled.collector.as_mut()).await.0);
        }
    }
    let samples: usize = batches.iter().map(|b| b.sample_count()).sum();
    let labels = config.labels.clone();
    let time = |work: &mut dyn FnMut()| {
        let rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let started = thread_cpu_ns();
                for _ in 0..ENCODES {
                    work();
                }
                (thread_cpu_ns() - started) as f64 / 1e6 / f64::from(ENCODES)
            })
            .collect();
        spread(rounds)
    };
    let now = time(&mut || {
        for batch in &batches {
            std::hint::black_box(encode(batch, &labels));
        }
    });
    let before = time(&mut || {
        for batch in &batches {
            let raw = encode_via_prost(batch, &labels);
            let data = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
            std::hint::black_box(data);
        }
    });
    let bound = time(&mut || {
        for batch in batches.iter_mut() {
            jellyfin_pusher::labels::bound(&mut batch.families);
        }
    });
    format!(
        "encoding one fast cycle's {} batches ({samples} samples), CPU per cycle, median (least-most) of {ROUNDS} rounds of {ENCODES}: {now} as the agent encodes; {before} through prost's messages (as before); the label bounds of the same families {bound}",
        batches.len()
    )
}

/// CPU time of this thread, in ns (the process collector runs on it, without a wait).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The process collector alone, in this process, as the agent runs it in the bench: watching
/// this process by name, with no systemd cgroup visible (a container), so summing its process
/// tree over every /proc/<pid>/stat of the host each cycle.
async fn process_cost() -> String {
    use jellyfin_pusher::collectors::{Collector, Process};
    const ROUNDS: usize = 5;
    const COLLECTS: u32 = 200;
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let config = jellyfin_pusher::config::ProcessConfig {
        name: comm.trim_end().to_string(),
        ..Default::default()
    };
    let mut collector = Process::new(config, "/proc".into(), "/sys/fs/cgroup".into());
    let mut out = Vec::new();
    collector.collect(&mut out).await.unwrap();
    let source = out
        .iter()
        .find(|f| f.name == "process_cpu_seconds_total")
        .map(|f| format!("{:?}", f.samples[0].labels))
        .unwrap_or_default();
    let processes = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let started = thread_cpu_ns();
        for _ in 0..COLLECTS {
            out.clear();
            collector.collect(&mut out).await.unwrap();
        }
        rounds.push((thread_cpu_ns() - started) as f64 / 1e6 / f64::from(COLLECTS));
    }
    format!(
        "process collector alone ({processes} processes on the host, {source}): CPU per collection {} (median (least-most) of {ROUNDS} rounds of {COLLECTS})",
        spread(rounds)
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
