//! Figures for the disk buffer (README, "Figures"): bytes on disk per buffered sample of a
//! 24-hour backlog at a 15 s interval, next to vmagent's persistent queue holding the same
//! samples; the bytes each sends per sample, one cycle per request (normal operation) and
//! while draining, counted by a relay in front of VictoriaMetrics (HTTP headers included) and
//! as request bodies (vmagent's own `vmagent_remotewrite_bytes_sent_total`); and how fast a
//! backlog of several days drains into a local VictoriaMetrics, the agent and vmagent in turn.
//!
//! The drain is timed in rounds, each sender from a fresh copy of its queue into a fresh
//! VictoriaMetrics, the order of the senders alternating from round to round. "Answered" is
//! when the receiver answered the sender's last request, seen by the relay to the microsecond;
//! VictoriaMetrics answers a remote write only once its rows are in storage (1.79,
//! `app/vminsert/promremotewrite`: `insertRows` then `FlushBufs`, before the answer), and the
//! bench then checks that every row is there: the count, the sum of a counter and the first
//! and last timestamps, queried after `/internal/force_flush`. `vm_rows_inserted_total` cannot
//! time it: VictoriaMetrics 1.79 serves `/metrics` from a copy refreshed at most once a second
//! (`lib/httpserver/metrics.go`), which made the previous measure move in steps of a second.
//!
//! Run: `cargo bench --bench drain [-- DAYS ROUNDS]` (default 4 days, 5 rounds; needs
//! victoria-metrics and vmagent on PATH, tests/run.sh installs them). It prints the figures; it
//! asserts nothing about speed, only that every sample arrived.

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/relay.rs"]
mod relay;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jellyfin_pusher::queue::Block;
use jellyfin_pusher::queue::{Options, Queue, segment};
use jellyfin_pusher::remote_write::{Outcome, Sender, encode};
use jellyfin_pusher::sample::{Batch, Family};
use jellyfin_pusher::stats::RemoteStats;
use procs::{Proc, free_port, metric, query_value, vmagent, wait_http};

/// Cycles a day at 15 s.
const DAY_CYCLES: i64 = 24 * 3600 / 15;
const SERIES_PER_CYCLE: usize = 100;
/// Cycles sent one per request for the normal-operation wire figures.
const LIVE_CYCLES: usize = 100;
/// How long no answer went back before a drain counts as finished (more than the second
/// VictoriaMetrics' and vmagent's `/metrics` may lag).
const QUIET: Duration = Duration::from_millis(1500);

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

/// Bytes per sample, two decimals.
fn per_sample(bytes: u64, samples: u64) -> String {
    format!("{:.2}", bytes as f64 / samples as f64)
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn queue_options() -> Options {
    Options {
        max_size: 4 << 30,
        max_age: Duration::from_secs(30 * 86400),
        segment_size: 8 << 20,
        memory_fallback_size: 16 << 20,
    }
}

/// Appends `blocks` to a queue in `dir` exactly as the agent does (packing sealed segments
/// while they wait, if `packed`); returns how long that took.
fn fill_queue(dir: &Path, blocks: &[Block], packed: bool) -> Duration {
    let appended = Instant::now();
    let queue = Queue::open(dir, queue_options(), Arc::new(RemoteStats::default())).unwrap();
    if packed {
        queue.pack_with(jellyfin_pusher::remote_write::pack::new_packer);
    }
    for block in blocks {
        queue.append(block.clone());
    }
    drop(queue);
    appended.elapsed()
}

fn queue_bytes(dir: &Path) -> u64 {
    segment::list(dir).unwrap().iter().map(|s| s.len).sum()
}

/// Fills a vmagent persistent queue in `queue` with `blocks`, while nothing answers behind
/// `remote` (vmagent names its queue folder after the URL: it drains with the same URL).
fn fill_vmagent(rt: &tokio::runtime::Runtime, remote: &str, queue: &Path, blocks: &[Block]) {
    let port = free_port();
    let filling = vmagent(remote, port, queue, &[]);
    wait_http(&format!("http://127.0.0.1:{port}/health"));
    rt.block_on(async {
        let client = reqwest::Client::new();
        for block in blocks {
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
    // It took every sample (its /metrics may be a second old).
    std::thread::sleep(Duration::from_millis(1100));
    let samples: u64 = blocks.iter().map(|b| u64::from(b.samples)).sum();
    assert_eq!(metric(port, "vmagent_rows_inserted_total"), samples);
    drop(filling); // SIGTERM: vmagent moves what it holds in memory into its file queue
}

/// Who drains, and how.
#[derive(Clone, Copy)]
enum Contender {
    /// The agent with this `kind` and these settings of its remote (else the kind's
    /// default delivery order).
    Agent(&'static str, &'static str),
    Vmagent,
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Agent(kind, "") => format!("jellyfin-pusher, kind = \"{kind}\""),
            Contender::Agent(kind, settings) => {
                format!(
                    "jellyfin-pusher, kind = \"{kind}\", {}",
                    settings.replace('\n', ", ")
                )
            }
            Contender::Vmagent => "vmagent".into(),
        }
    }
}

/// One drain's figures.
struct Drained {
    /// Sender started to its last request answered.
    answered: Duration,
    /// First request byte to last answer byte.
    transfer: Duration,
    sender_cpu: Duration,
    vm_cpu: Duration,
    wire: u64,
    /// Request bodies, where the sender counts them (vmagent).
    bodies: Option<u64>,
    peak_kib: u64,
    /// Samples VictoriaMetrics got more than once.
    resent: u64,
    /// Samples of the backlog VictoriaMetrics never got.
    missing: u64,
}

/// What every drain round shares.
struct Bench {
    work: std::path::PathBuf,
    relay: relay::Relay,
    write_url: String,
    /// The agent's state folder holding the backlog (queue/bench).
    state: std::path::PathBuf,
    /// vmagent's queue folder holding the same backlog.
    vmagent_queue: std::path::PathBuf,
    samples: u64,
    cycles: i64,
    start_ms: i64,
    days: i64,
}

impl Bench {
    /// Drains the backlog once, from a fresh copy into a fresh VictoriaMetrics, and checks
    /// that every sample arrived.
    fn drain(&self, who: Contender) -> Drained {
        let vm_dir = self.work.join("vm-round");
        let vm_port = free_port();
        // Queries see each sample once (duplicates are counted from the rows inserted).
        let vm = procs::victoria_metrics(vm_port, &vm_dir, &["-dedup.minScrapeInterval=1ms"]);
        self.relay.set_target(vm_port);
        let copy = self.work.join("round-copy");
        let _ = std::fs::remove_dir_all(&copy);
        // A fresh copy of the sender's queue, then the sender started on it.
        let bin = env!("CARGO_BIN_EXE_jellyfin-pusher");
        let vmagent_port = matches!(who, Contender::Vmagent).then(free_port);
        let mut command = match who {
            Contender::Agent(kind, settings) => {
                copy_dir(&self.state, &copy.join("state"));
                let config = copy.join("config.toml");
                std::fs::write(
                    &config,
                    self.agent_config(&copy.join("state"), kind, settings),
                )
                .unwrap();
                let mut agent = std::process::Command::new(bin);
                agent.arg("--config").arg(&config).env("RUST_LOG", "warn");
                agent
            }
            Contender::Vmagent => {
                copy_dir(&self.vmagent_queue, &copy.join("vmagent"));
                let port = vmagent_port.unwrap_or_default();
                procs::vmagent_command(&self.write_url, port, &copy.join("vmagent"), &[])
            }
        };
        self.relay.reset_times();
        let (vm_cpu0, wire0) = (vm.cpu(), self.relay.sent());
        let started = Instant::now();
        let sender = Proc(command.stderr(std::process::Stdio::null()).spawn().unwrap());
        let answered = loop {
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{}: the drain took over 10 minutes",
                who.name()
            );
            let Some(last) = self.relay.last_answer() else {
                continue;
            };
            if last.elapsed() >= QUIET && metric(vm_port, "vm_rows_inserted_total") >= self.samples
            {
                break last;
            }
        };
        let first = self.relay.first_request().unwrap();
        let mut drained = Drained {
            answered: answered - started,
            transfer: answered - first,
            sender_cpu: sender.cpu(),
            vm_cpu: vm.cpu() - vm_cpu0,
            wire: self.relay.sent() - wire0,
            bodies: vmagent_port.map(|p| metric(p, "vmagent_remotewrite_bytes_sent_total")),
            peak_kib: sender.vm_hwm_kib(),
            resent: 0,
            missing: 0,
        };
        if let Some(port) = vmagent_port {
            for pending in [
                "vmagent_remotewrite_pending_data_bytes",
                "vm_persistentqueue_bytes_pending",
            ] {
                assert_eq!(metric(port, pending), 0, "vmagent: {pending}");
            }
        }
        // Before the agent stops: at shutdown it pushes staleness markers for its own series.
        let inserted = metric(vm_port, "vm_rows_inserted_total");
        drop(sender);
        (drained.missing, drained.resent) = self.check_arrived(vm_port, who, inserted);
        drop(vm);
        let _ = std::fs::remove_dir_all(&vm_dir);
        let _ = std::fs::remove_dir_all(&copy);
        drained
    }

    fn agent_config(&self, state: &Path, kind: &str, settings: &str) -> String {
        format!(
            "state_dir = \"{}\"\n[jellyfin]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n\
             [collect]\ninterval = \"1h\"\n[[remote_write]]\nname = \"bench\"\nurl = \"{}\"\nkind = \"{kind}\"\n{settings}\n",
            state.display(),
            self.work.join("token").display(),
            self.write_url,
        )
    }

    /// Whether every sample of the backlog is in VictoriaMetrics with its timestamp: the
    /// count, the sum of a counter (integers: exact) and the first and last timestamps (each
    /// check that fails is printed). Returns the samples missing and those inserted more than
    /// once (queries see them once).
    fn check_arrived(&self, vm_port: u16, who: Contender, inserted: u64) -> (u64, u64) {
        let window = format!("[{}d]", self.days + 1);
        let series = "{instance=\"jellyfin-dmz\"}";
        let n = self.cycles as f64;
        // Rows become searchable up to a second or two after they were inserted, even after
        // a forced flush: asked again until every one shows, for up to 5 s.
        let count = format!("sum(count_over_time({series}{window}))");
        let asked = Instant::now();
        let mut distinct = query_value(vm_port, &count);
        while distinct < self.samples as f64 && asked.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(200));
            distinct = query_value(vm_port, &count);
        }
        let checks = [
            (
                format!("sum(count_over_time({series}{window}))"),
                distinct,
                self.samples as f64,
            ),
            (
                format!("sum(sum_over_time(jellyfin_api_requests_total{series}{window}))"),
                query_value(
                    vm_port,
                    &format!("sum(sum_over_time(jellyfin_api_requests_total{series}{window}))"),
                ),
                6.0 * n * (n + 1.0) / 2.0,
            ),
            (
                format!("min(tfirst_over_time({series}{window}))"),
                query_value(vm_port, &format!("min(tfirst_over_time({series}{window}))")),
                self.start_ms as f64 / 1000.0,
            ),
            (
                format!("max(tlast_over_time({series}{window}))"),
                query_value(vm_port, &format!("max(tlast_over_time({series}{window}))")),
                (self.start_ms + (self.cycles - 1) * 15_000) as f64 / 1000.0,
            ),
        ];
        for (query, got, expected) in checks {
            if (got - expected).abs() >= 1e-3 {
                eprintln!("{}: {query} = {got}, expected {expected}", who.name());
            }
        }
        // The agent's own metrics of its one cycle (Jellyfin unreachable) are not the backlog.
        let own = procs::query_values(
            vm_port,
            &format!("sum(count_over_time({{instance!=\"jellyfin-dmz\"}}{window}))"),
        )
        .first()
        .copied()
        .unwrap_or(0.0) as u64;
        let distinct = distinct as u64;
        (
            self.samples.saturating_sub(distinct),
            inserted.saturating_sub(own + distinct),
        )
    }
}

/// Median, lowest and highest.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn print_drains(who: Contender, drains: &[Drained], samples: u64) {
    let secs =
        |f: fn(&Drained) -> Duration| spread(drains.iter().map(|d| f(d).as_secs_f64()).collect());
    let (answered, a_lo, a_hi) = secs(|d| d.answered);
    let (transfer, t_lo, t_hi) = secs(|d| d.transfer);
    let (cpu, c_lo, c_hi) = secs(|d| d.sender_cpu);
    let (vm_cpu, v_lo, v_hi) = secs(|d| d.vm_cpu);
    let (peak, p_lo, p_hi) = spread(drains.iter().map(|d| d.peak_kib as f64 / 1024.0).collect());
    let rate = |s: f64| samples as f64 / s;
    println!("{}:", who.name());
    println!(
        "  answered after {answered:.3} s (median; {a_lo:.3} to {a_hi:.3}) from its start = {:.0} samples/s ({:.0} to {:.0})",
        rate(answered),
        rate(a_hi),
        rate(a_lo)
    );
    println!(
        "  first request to last answer {transfer:.3} s ({t_lo:.3} to {t_hi:.3}) = {:.0} samples/s",
        rate(transfer)
    );
    println!(
        "  CPU: the sender {cpu:.3} s ({c_lo:.3} to {c_hi:.3}), VictoriaMetrics {vm_cpu:.3} s ({v_lo:.3} to {v_hi:.3}); peak RSS {peak:.1} MiB ({p_lo:.1} to {p_hi:.1})"
    );
    let wire = drains[0].wire;
    match drains[0].bodies {
        Some(bodies) => println!(
            "  wire {} bytes/sample ({} in bodies)",
            per_sample(wire, samples),
            per_sample(bodies, samples)
        ),
        None => println!("  wire {} bytes/sample", per_sample(wire, samples)),
    }
    let resent: Vec<u64> = drains.iter().map(|d| d.resent).collect();
    let missing: Vec<u64> = drains.iter().map(|d| d.missing).collect();
    println!("  samples VictoriaMetrics got twice, per round: {resent:?}; never got: {missing:?}");
}

fn main() {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let days = args.first().copied().unwrap_or(4).max(1);
    let rounds = args.get(1).copied().unwrap_or(5).max(1);
    let work = tempfile::tempdir().unwrap();
    let drain_cycles = days * DAY_CYCLES;
    let start_ms = jellyfin_pusher::sample::now_ms() - drain_cycles * 15_000 - 60_000;
    // The 24 h backlog of the disk and wire figures: the newest day of the drain's.
    let all: Vec<Block> = (0..drain_cycles).map(|i| cycle(i, start_ms)).collect();
    let day = &all[all.len() - DAY_CYCLES as usize..];
    let day_samples: u64 = day.iter().map(|b| u64::from(b.samples)).sum();

    // Our queue, exactly as the agent writes it.
    let state = work.path().join("state");
    let queue_dir = state.join("queue/bench");
    let append_time = fill_queue(&queue_dir, day, true);
    let ours_bytes = queue_bytes(&queue_dir);
    // The same backlog unpacked (every cycle stored as sent), for reference.
    let unpacked_dir = work.path().join("unpacked");
    fill_queue(&unpacked_dir, day, false);
    let unpacked_bytes = queue_bytes(&unpacked_dir);
    let _ = std::fs::remove_dir_all(&unpacked_dir);
    // What `status` does on every call: read the backlog from the files, without the queue.
    let scanned = Instant::now();
    let backlog = jellyfin_pusher::queue::inspect::backlog(&queue_dir).unwrap();
    let status_scan = scanned.elapsed();
    assert_eq!(backlog.samples, day_samples);

    // Every sender reaches VictoriaMetrics through the counting relay; nothing listens behind
    // it while vmagent's queue fills.
    let relay = relay::Relay::start(free_port());
    let write_url = format!("http://127.0.0.1:{}/api/v1/write", relay.port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = work.path().join("vmagent-queue");
    fill_vmagent(&rt, &write_url, &tmp, day);
    let vmagent_bytes = dir_bytes(&tmp);

    // Normal operation, one cycle per request. The agent: its own sender (same client, same
    // headers), so that the bytes are what it puts on the wire.
    let vm_port = free_port();
    let vm = procs::victoria_metrics(vm_port, &work.path().join("vm"), &[]);
    relay.set_target(vm_port);
    std::fs::write(work.path().join("token"), "bench").unwrap();
    let config_path = work.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = \"{}\"\n[jellyfin]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"{}\"\n\
             [collect]\ninterval = \"1h\"\n[[remote_write]]\nname = \"bench\"\nurl = \"{write_url}\"\n",
            work.path().join("live-state").display(),
            work.path().join("token").display()
        ),
    )
    .unwrap();
    let live = &day[..LIVE_CYCLES];
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
    drop(vm);
    let _ = std::fs::remove_dir_all(work.path().join("vm"));

    println!(
        "backlog: {DAY_CYCLES} cycles x {SERIES_PER_CYCLE} series = {day_samples} samples (24 h at 15 s)"
    );
    println!(
        "jellyfin-pusher: {:.1} bytes/sample on disk ({ours_bytes} bytes; unpacked {:.1}, {unpacked_bytes} bytes), appended in {append_time:.2?}",
        ours_bytes as f64 / day_samples as f64,
        unpacked_bytes as f64 / day_samples as f64,
    );
    println!(
        "status: reads that backlog ({} blocks, {} bytes) from the files in {status_scan:.2?}",
        backlog.blocks, backlog.bytes
    );
    println!(
        "vmagent:         {:.1} bytes/sample on disk ({vmagent_bytes} bytes incl. metadata)",
        vmagent_bytes as f64 / day_samples as f64,
    );
    println!(
        "wire, one cycle per request ({LIVE_CYCLES} cycles, {live_samples} samples): jellyfin-pusher {} bytes/sample ({} in bodies); vmagent {} bytes/sample ({} in bodies, {theirs_live_requests} requests)",
        per_sample(ours_live_wire, live_samples),
        per_sample(live_bodies, live_samples),
        per_sample(theirs_live_wire, live_samples),
        per_sample(theirs_live_bodies, live_samples),
    );

    // The drain's backlog: `days` days, unless that is the day above.
    if days > 1 {
        let _ = std::fs::remove_dir_all(&state);
        let _ = std::fs::remove_dir_all(&tmp);
        fill_queue(&queue_dir, &all, true);
        fill_vmagent(&rt, &write_url, &tmp, &all);
    }
    let samples: u64 = all.iter().map(|b| u64::from(b.samples)).sum();
    let bench = Bench {
        work: work.path().to_path_buf(),
        relay,
        write_url,
        state,
        vmagent_queue: tmp,
        samples,
        cycles: drain_cycles,
        start_ms,
        days,
    };
    let contenders = [
        Contender::Agent("victoriametrics", ""),
        Contender::Vmagent,
        Contender::Agent("prometheus", ""),
        Contender::Agent("victoriametrics", "newest_first = false"),
    ];
    let mut drains: Vec<Vec<Drained>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // Each round in turn, the order reversed every other round so that neither sender
        // always runs first on a machine whose load drifts.
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let d = bench.drain(contenders[i]);
            eprintln!(
                "round {round}: {}: answered after {:.3} s, transfer {:.3} s, CPU {:.3} s (VictoriaMetrics {:.3} s), {} samples twice, {} missing",
                contenders[i].name(),
                d.answered.as_secs_f64(),
                d.transfer.as_secs_f64(),
                d.sender_cpu.as_secs_f64(),
                d.vm_cpu.as_secs_f64(),
                d.resent,
                d.missing
            );
            drains[i].push(d);
        }
    }
    println!(
        "drain of {days} d at 15 s ({drain_cycles} cycles x {SERIES_PER_CYCLE} series = {samples} samples) into a fresh local VictoriaMetrics, {rounds} rounds, each from a fresh copy; \"answered\": its last request answered, all rows then checked in VictoriaMetrics"
    );
    for (who, drains) in contenders.iter().zip(&drains) {
        print_drains(*who, drains, samples);
    }
}
