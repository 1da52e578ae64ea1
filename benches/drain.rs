//! Figures for the disk buffer (README, "Figures"): bytes on disk per buffered sample, and how
//! fast a 24-hour backlog at a 15 s interval drains into a local VictoriaMetrics, next to
//! vmagent draining the same samples from its own persistent queue into the same server; and
//! the bytes each sends per sample, one cycle per request (normal operation) and while
//! draining, counted by a relay in front of VictoriaMetrics (HTTP headers included) and as
//! request bodies (vmagent's own `vmagent_remotewrite_bytes_sent_total`).
//!
//! Run: `cargo bench --bench drain` (needs victoria-metrics and vmagent on PATH; tests/run.sh
//! installs them). It prints the figures; it asserts nothing about speed.

#[path = "support/relay.rs"]
mod relay;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jellyfin_pusher::queue::Block;
use jellyfin_pusher::queue::{Options, Queue, segment};
use jellyfin_pusher::remote_write::{Outcome, Sender, encode};
use jellyfin_pusher::sample::{Batch, Family};
use jellyfin_pusher::stats::RemoteStats;

const CYCLES: i64 = 24 * 3600 / 15;
const SERIES_PER_CYCLE: usize = 100;
/// Cycles sent one per request for the normal-operation wire figures.
const LIVE_CYCLES: usize = 100;

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

/// The peak resident memory (VmHWM) of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
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

/// The sum of a metric's series on a /metrics page.
fn metric(port: u16, name: &str) -> u64 {
    let (_, text) = reqwest_blocking(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn rows_inserted(vm: u16) -> u64 {
    metric(vm, "vm_rows_inserted_total")
}

/// Bytes per sample, and the same per request body where known.
fn per_sample(bytes: u64, samples: u64) -> String {
    format!("{:.2}", bytes as f64 / samples as f64)
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
        queue.pack_with(jellyfin_pusher::remote_write::pack::new_packer);
        for block in &blocks {
            queue.append(block.clone());
        }
    }
    let append_time = appended.elapsed();
    // The same backlog unpacked (every cycle stored as sent), for reference.
    let unpacked_dir = work.path().join("unpacked");
    {
        let queue = Queue::open(&unpacked_dir, options, Arc::new(RemoteStats::default())).unwrap();
        for block in &blocks {
            queue.append(block.clone());
        }
    }
    let unpacked_bytes: u64 = segment::list(&unpacked_dir)
        .unwrap()
        .iter()
        .map(|s| s.len)
        .sum();
    let _ = std::fs::remove_dir_all(&unpacked_dir);
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
    // Every sender reaches VictoriaMetrics through the counting relay.
    let relay = relay::Relay::start(vm_port);
    let write_url = format!("http://127.0.0.1:{}/api/v1/write", relay.port);
    // vmagent: fill its persistent queue with the same samples while VictoriaMetrics is not
    // up yet (vmagent names its queue folder after the URL, so the URL must not change).
    let tmp = work.path().join("vmagent-queue");
    let vmagent = |remote: &str, port: u16, queue: &Path, extra: &[&str]| {
        Proc(
            Command::new("vmagent")
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-remoteWrite.url={remote}"))
                .arg(format!("-remoteWrite.tmpDataPath={}", queue.display()))
                .arg("-loggerLevel=ERROR")
                .args(extra)
                .stderr(Stdio::null())
                .spawn()
                .expect("vmagent on PATH"),
        )
    };
    let port = free_port();
    let filling = vmagent(&write_url, port, &tmp, &[]);
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

    // Normal operation, one cycle per request. The agent: its own sender (same client, same
    // headers), so that the bytes are what it puts on the wire.
    std::fs::write(work.path().join("token"), "bench").unwrap();
    let config_path = work.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"{}\"\n[jellyfin]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n\
             [collect]\ninterval = \"1h\"\n[[remote_write]]\nname = \"bench\"\nurl = \"{write_url}\"\n",
            state.display(),
            work.path().join("token").display()
        ),
    )
    .unwrap();
    let live = &blocks[..LIVE_CYCLES];
    let live_samples: u64 = live.iter().map(|b| u64::from(b.samples)).sum();
    let live_bodies: u64 = live.iter().map(|b| b.data.len() as u64).sum();
    let config = jellyfin_pusher::config::Config::load(&config_path).unwrap();
    let sender = Sender::new(&config.remote_write[0], Arc::new(RemoteStats::default())).unwrap();
    let before = relay.sent();
    rt.block_on(async {
        for block in live {
            let outcome = sender.send_once(block.data.clone()).await;
            assert!(matches!(outcome, Outcome::Delivered), "{outcome:?}");
        }
    });
    let ours_live_wire = relay.sent() - before;
    // vmagent: a fresh instance (its own queue) flushing every 50 ms; each cycle is pushed
    // once the previous one has gone out, so each request carries one cycle.
    let port = free_port();
    let live_agent = vmagent(
        &write_url,
        port,
        &work.path().join("vmagent-live"),
        &["-remoteWrite.flushInterval=50ms"],
    );
    wait_http(&format!("http://127.0.0.1:{port}/health"));
    let before = relay.sent();
    let requests = |port| metric(port, "vmagent_remotewrite_requests_total");
    let client = reqwest::Client::new();
    for block in live {
        let sent = requests(port);
        rt.block_on(
            client
                .post(format!("http://127.0.0.1:{port}/api/v1/write"))
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(block.data.clone())
                .send(),
        )
        .unwrap();
        while requests(port) == sent {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let theirs_live_wire = relay.sent() - before;
    let theirs_live_bodies = metric(port, "vmagent_remotewrite_bytes_sent_total");
    let theirs_live_requests = requests(port);
    drop(live_agent);

    // jellyfin-pusher draining its backlog (Jellyfin itself is unreachable: only the backlog
    // and the agent's own metrics flow).
    let bin = env!("CARGO_BIN_EXE_jellyfin-pusher");
    let before = rows_inserted(vm_port);
    let wire_before = relay.sent();
    let started = Instant::now();
    let agent = Proc(
        Command::new(bin)
            .arg("--config")
            .arg(work.path().join("config.toml"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ours = time_until(vm_port, before, samples, started);
    let drain_peak_kib = vm_hwm_kib(agent.0.id());
    drop(agent);
    let ours_drain_wire = relay.sent() - wire_before;

    let before = rows_inserted(vm_port);
    let wire_before = relay.sent();
    let started = Instant::now();
    let port = free_port();
    // Same URL as while filling, so it finds its queue.
    let draining = vmagent(&write_url, port, &tmp, &[]);
    let theirs = time_until(vm_port, before, samples, started);
    let theirs_drain_bodies = metric(port, "vmagent_remotewrite_bytes_sent_total");
    drop(draining);
    let theirs_drain_wire = relay.sent() - wire_before;
    drop(vm);

    let rate = |d: Duration| samples as f64 / d.as_secs_f64();
    println!(
        "backlog: {CYCLES} cycles x {SERIES_PER_CYCLE} series = {samples} samples (24 h at 15 s)"
    );
    println!(
        "jellyfin-pusher: {:.1} bytes/sample on disk ({ours_bytes} bytes; unpacked {:.1}, {unpacked_bytes} bytes), appended in {:.2?}, drained in {:.2?} = {:.0} samples/s",
        ours_bytes as f64 / samples as f64,
        unpacked_bytes as f64 / samples as f64,
        append_time,
        ours,
        rate(ours)
    );
    println!(
        "jellyfin-pusher: peak RSS (VmHWM) {:.1} MiB while draining that backlog",
        drain_peak_kib as f64 / 1024.0
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
    println!(
        "wire, one cycle per request ({LIVE_CYCLES} cycles, {live_samples} samples): jellyfin-pusher {} bytes/sample ({} in bodies); vmagent {} bytes/sample ({} in bodies, {theirs_live_requests} requests)",
        per_sample(ours_live_wire, live_samples),
        per_sample(live_bodies, live_samples),
        per_sample(theirs_live_wire, live_samples),
        per_sample(theirs_live_bodies, live_samples),
    );
    println!(
        "wire, draining the backlog: jellyfin-pusher {} bytes/sample; vmagent {} bytes/sample ({} in bodies)",
        per_sample(ours_drain_wire, samples),
        per_sample(theirs_drain_wire, samples),
        per_sample(theirs_drain_bodies, samples),
    );
}
