//! Figures for the disk buffer (README, "Figures"): bytes on disk per buffered sample, and how
//! fast a 24-hour backlog at a 15 s interval drains into a local VictoriaMetrics, next to
//! vmagent draining the same samples from its own persistent queue into the same server. The
//! agent drains it twice, from two copies of the same queue: as `kind = "victoriametrics"`
//! (parallel requests, the default) and as `kind = "prometheus"` (one request at a time,
//! oldest first: the order Prometheus needs).
//!
//! Run: `cargo bench --bench drain` (needs victoria-metrics and vmagent on PATH; tests/run.sh
//! installs them). It prints the figures; it asserts nothing about speed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jellyfin_pusher::queue::Block;
use jellyfin_pusher::queue::{Options, Queue, segment};
use jellyfin_pusher::remote_write::encode;
use jellyfin_pusher::sample::{Batch, Family};
use jellyfin_pusher::stats::RemoteStats;

const CYCLES: i64 = 24 * 3600 / 15;
const SERIES_PER_CYCLE: usize = 100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One cycle as the agent produces it: ~100 series of a Jellyfin host (system, sessions,
/// tasks, self-metrics), counters rising, gauges moving.
fn cycle(i: i64, start_ms: i64) -> Block {
    let mut families = Vec::new();
    let mut up = Family::gauge("jellyfin_up", "");
    up.push(vec![], 1.0);
    families.push(up);
    let mut requests = Family::counter("jellyfin_api_requests_total", "");
    let mut seconds = Family::gauge("jellyfin_api_response_seconds", "");
    for endpoint in [
        "/System/Info",
        "/Sessions",
        "/Users",
        "/Items/Counts",
        "/ScheduledTasks",
        "/System/ActivityLog/Entries",
    ] {
        requests.push(
            vec![("endpoint", endpoint.into()), ("code", "200".into())],
            (i + 1) as f64,
        );
        seconds.push(
            vec![("endpoint", endpoint.into())],
            0.003 + (i % 7) as f64 * 0.0007,
        );
    }
    families.extend([requests, seconds]);
    let mut task = Family::gauge("jellyfin_scheduled_task_last_end_timestamp_seconds", "");
    let mut running = Family::gauge("jellyfin_scheduled_task_running", "");
    for t in 0..31 {
        task.push(
            vec![("task", format!("Task{t}Key"))],
            1.79e9 + (t * 3600) as f64,
        );
        running.push(
            vec![("task", format!("Task{t}Key"))],
            f64::from(i64::from(t) == i % 31),
        );
    }
    families.extend([task, running]);
    let mut streams = Family::gauge("jellyfin_user_streams", "");
    let mut watch = Family::counter("jellyfin_user_watch_time_seconds_total", "");
    for u in 0..12 {
        streams.push(
            vec![(
                "user",
                format!("{:08x}", u * 2_654_435_761u64 % 0xffff_ffff),
            )],
            ((i + u as i64) % 3) as f64,
        );
        watch.push(
            vec![(
                "user",
                format!("{:08x}", u * 2_654_435_761u64 % 0xffff_ffff),
            )],
            (i * 15 * (u as i64 % 3)) as f64,
        );
    }
    families.extend([streams, watch]);
    let mut own = Family::gauge("jellyfin_pusher_collector_duration_seconds", "");
    while families.iter().map(|f| f.samples.len()).sum::<usize>() + own.samples.len()
        < SERIES_PER_CYCLE
    {
        let n = own.samples.len();
        own.push(
            vec![("collector", format!("c{n}"))],
            0.001 * (i % 13) as f64,
        );
    }
    families.push(own);
    let labels = vec![
        ("instance".to_string(), "jellyfin-dmz".to_string()),
        ("job".to_string(), "jellyfin".to_string()),
    ];
    encode(
        &Batch {
            timestamp_ms: start_ms + i * 15_000,
            families,
        },
        &labels,
    )
}

/// Copies a folder tree (a queue's files) so that each drain starts from the same backlog.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Drains of each kind, alternating; the figure is the median (the machine is shared).
const ROUNDS: usize = 5;

fn median(runs: &mut [Duration]) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn wait_http(url: &str) {
    for _ in 0..300 {
        if reqwest_blocking(url).is_ok_and(|r| r.0 < 300) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer");
}

/// A tiny blocking GET over a dedicated runtime (the bench avoids a runtime of its own).
fn reqwest_blocking(url: &str) -> Result<(u16, String), reqwest::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    })
}

fn rows_inserted(vm: u16) -> u64 {
    let (_, text) = reqwest_blocking(&format!("http://127.0.0.1:{vm}/metrics")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("vm_rows_inserted_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until VictoriaMetrics has ingested `rows` more rows than `before`; returns the time.
fn time_until(vm: u16, before: u64, rows: u64, started: Instant) -> Duration {
    loop {
        if rows_inserted(vm) >= before + rows {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain took over 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the agent has every block of the queue in `dir` acknowledged: it saves its reader
/// position at the end of the data as soon as the queue runs empty.
fn queue_empty(dir: &Path) -> bool {
    let end = segment::list(dir)
        .ok()
        .and_then(|s| s.last().map(|s| s.end()));
    let saved = std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|m| m["read_offset"].as_u64());
    end.is_some() && end == saved
}

/// Polls every 2 ms until the agent's queue is empty (every request answered 2xx).
fn time_until_empty(dir: &Path, started: Instant) -> Duration {
    while !queue_empty(dir) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain took over 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let start_ms = jellyfin_pusher::sample::now_ms() - CYCLES * 15_000 - 60_000;
    let blocks: Vec<Block> = (0..CYCLES).map(|i| cycle(i, start_ms)).collect();
    let samples: u64 = blocks.iter().map(|b| u64::from(b.samples)).sum();

    // Our queue, exactly as the agent writes it.
    let state = work.path().join("state");
    let queue_dir = state.join("queue/bench");
    let options = Options {
        max_size: 4 << 30,
        max_age: Duration::from_secs(30 * 86400),
        segment_size: 8 << 20,
        memory_fallback_size: 16 << 20,
    };
    let appended = Instant::now();
    {
        let queue = Queue::open(&queue_dir, options, Arc::new(RemoteStats::default())).unwrap();
        for block in &blocks {
            queue.append(block.clone());
        }
    }
    let append_time = appended.elapsed();
    // What `status` does on every call: read the backlog from the files, without the queue.
    let scanned = Instant::now();
    let backlog = jellyfin_pusher::queue::inspect::backlog(&queue_dir).unwrap();
    let status_scan = scanned.elapsed();
    assert_eq!(backlog.samples, samples);
    let ours_bytes: u64 = segment::list(&queue_dir)
        .unwrap()
        .iter()
        .map(|s| s.len)
        .sum();

    let vm_port = free_port();
    let write_url = format!("http://127.0.0.1:{vm_port}/api/v1/write");
    // vmagent: fill its persistent queue with the same samples while VictoriaMetrics is not
    // up yet (vmagent names its queue folder after the URL, so the URL must not change).
    let tmp = work.path().join("vmagent-queue");
    let vmagent = |queue: &Path, port: u16| {
        Proc(
            Command::new("vmagent")
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-remoteWrite.url={write_url}"))
                .arg(format!("-remoteWrite.tmpDataPath={}", queue.display()))
                .arg("-loggerLevel=ERROR")
                .stderr(Stdio::null())
                .spawn()
                .expect("vmagent on PATH"),
        )
    };
    let port = free_port();
    let filling = vmagent(&tmp, port);
    wait_http(&format!("http://127.0.0.1:{port}/health"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        for block in &blocks {
            let r = client
                .post(format!("http://127.0.0.1:{port}/api/v1/write"))
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(block.data.clone())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    });
    drop(filling); // SIGTERM: vmagent moves what it holds in memory into its file queue
    let vmagent_bytes = dir_bytes(&tmp);
    let vm = Proc(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
            .arg(format!(
                "-storageDataPath={}",
                work.path().join("vm").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics on PATH"),
    );
    wait_http(&format!("http://127.0.0.1:{vm_port}/health"));

    // Each drain starts from a fresh copy of its queue's files; the same samples go into the
    // same VictoriaMetrics again and again (stored as duplicates, counted as inserted rows).
    std::fs::write(work.path().join("token"), "bench").unwrap();
    let copies = std::cell::Cell::new(0);
    let fresh_copy = |from: &Path| {
        copies.set(copies.get() + 1);
        let to = work.path().join(format!("copy-{}", copies.get()));
        copy_dir(from, &to);
        to
    };
    // jellyfin-pusher draining its backlog (Jellyfin itself is unreachable: only the backlog
    // and the agent's own metrics flow).
    let ours = |kind: &str| {
        let state = fresh_copy(&state);
        let config = state.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n[jellyfin]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n\
                 [collect]\ninterval = \"1h\"\n[[remote_write]]\nname = \"bench\"\nurl = \"{write_url}\"\n\
                 kind = \"{kind}\"\n",
                state.display(),
                work.path().join("token").display()
            ),
        )
        .unwrap();
        let before = rows_inserted(vm_port);
        let started = Instant::now();
        let agent = Proc(
            Command::new(env!("CARGO_BIN_EXE_jellyfin-pusher"))
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let acknowledged = time_until_empty(&state.join("queue/bench"), started);
        let took = time_until(vm_port, before, samples, started);
        drop(agent);
        let _ = std::fs::remove_dir_all(&state);
        (took, acknowledged)
    };
    let theirs = || {
        let queue = fresh_copy(&tmp);
        let before = rows_inserted(vm_port);
        let started = Instant::now();
        let draining = vmagent(&queue, free_port());
        let took = time_until(vm_port, before, samples, started);
        drop(draining);
        let _ = std::fs::remove_dir_all(&queue);
        took
    };
    // A first drain into the empty VictoriaMetrics creates its series and parts; not counted.
    ours("prometheus");
    let mut parallel = Vec::new();
    let mut ordered_runs = Vec::new();
    let mut vmagent_runs = Vec::new();
    let (mut parallel_acked, mut ordered_acked) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (took, acked) = ours("victoriametrics");
        parallel.push(took);
        parallel_acked.push(acked);
        let (took, acked) = ours("prometheus");
        ordered_runs.push(took);
        ordered_acked.push(acked);
        vmagent_runs.push(theirs());
    }
    drop(vm);
    let (ours, ordered, theirs) = (
        median(&mut parallel),
        median(&mut ordered_runs),
        median(&mut vmagent_runs),
    );

    let rate = |d: Duration| samples as f64 / d.as_secs_f64();
    let all = |runs: &[Duration]| {
        runs.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "drains in s, {ROUNDS} rounds taken in turn, sorted (medians below): kind = \"victoriametrics\" {} | kind = \"prometheus\" {} | vmagent {}",
        all(&parallel),
        all(&ordered_runs),
        all(&vmagent_runs)
    );
    println!(
        "backlog: {CYCLES} cycles x {SERIES_PER_CYCLE} series = {samples} samples (24 h at 15 s)"
    );
    println!(
        "jellyfin-pusher: {:.1} bytes/sample on disk ({ours_bytes} bytes), appended in {:.2?}; kind = \"victoriametrics\" (4 parallel requests, newest first) drained in {:.2?} = {:.0} samples/s",
        ours_bytes as f64 / samples as f64,
        append_time,
        ours,
        rate(ours)
    );
    println!(
        "jellyfin-pusher, kind = \"prometheus\" (one request at a time, oldest first): drained in {:.2?} = {:.0} samples/s",
        ordered,
        rate(ordered)
    );
    println!(
        "jellyfin-pusher, every block acknowledged (queue empty, polled every 2 ms), medians: kind = \"victoriametrics\" {:.2?} = {:.0} samples/s ({}), kind = \"prometheus\" {:.2?} = {:.0} samples/s ({})",
        median(&mut parallel_acked),
        rate(median(&mut parallel_acked)),
        all(&parallel_acked),
        median(&mut ordered_acked),
        rate(median(&mut ordered_acked)),
        all(&ordered_acked),
    );
    println!(
        "status: reads that backlog ({} blocks, {} bytes) from the files in {status_scan:.2?}",
        backlog.blocks, backlog.bytes
    );
    println!(
        "vmagent:         {:.1} bytes/sample on disk ({vmagent_bytes} bytes incl. metadata), drained in {:.2?} = {:.0} samples/s",
        vmagent_bytes as f64 / samples as f64,
        theirs,
        rate(theirs)
    );
}
