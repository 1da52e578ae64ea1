//! The disk buffer's share of a fast cycle (README, "Figures"): the steady-state life of one
//! block through the real queue, on a real disk folder, a few thousand times, with the CPU
//! time it costs the whole process (blocking-pool threads included) per block.
//!
//! In normal operation the reader keeps up: each block a collector produces is appended
//! (fsynced), taken by a sender, acknowledged, and the sender finds the queue empty. A fast
//! cycle is six such blocks (the system, sessions, transcode_log, process, host and pusher
//! collectors each send their own), and one save of the reader position a second later covers
//! them all (`Queue::save_due`; the bench does not wait that second).
//!
//! Two shapes are timed:
//! - `direct`: the queue's calls one after another on one thread (the queue's own cost);
//! - `agent`: the same calls made as the agent makes them, on a one-thread tokio runtime with
//!   the blocking work handed to the blocking pool (`spawn_blocking`) where the pipeline and the
//!   sender lanes hand it (`src/app/pipeline.rs`, `src/remote_write/worker.rs`), so that the
//!   thread hand-offs are counted too.
//!
//! - `grouped`: the pipeline's group commit (`src/app/pipeline.rs`): the six blocks of a tick
//!   appended in one trip to the pool with one fdatasync (`Queue::append_all`), taken by a
//!   lane in one take on the pool, acknowledged, the queue found empty.
//! - `fresh`: as the agent makes them now: as `grouped`, but the lane takes the tick's blocks
//!   from memory on the runtime's thread (`Queue::take_in_memory`), with no trip to the pool.
//!
//! - `fresh, new thread per trip` and `fresh, thread kept`: `fresh` with a pause between the
//!   cycles, on a runtime whose idle blocking-pool threads exit after 1 ms, so that each trip
//!   starts a thread, as at a 15 s interval with tokio's default 10 s keep-alive (and no
//!   other trip in between), against the same with the threads kept (`src/main.rs`).
//!
//! Then, off the disk: what merging a tick's blocks into one request costs (the sessions,
//! system, host, process and pusher blocks of a fast tick, encoded by the agent's encoder),
//! by decompressing and compressing again (`remote_write::merge`, as the sender did) and by
//! splicing the compressed blocks (`remote_write::splice`, as it does now).
//!
//! Run: `cargo bench --bench queue [-- <blocks per round>] [direct|agent|grouped|fresh|churn|merge]` (default 2,004 blocks,
//! three rounds per shape, both shapes). The folder is under the build's target directory, on the disk the build is on
//! (not a tmpfs). Syscalls per block: `strace -c -f` on the bench binary (README, "Figures").
//! It prints figures; it asserts nothing about speed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jellyfin_pusher::queue::{Block, Options, Queue, Take};
use jellyfin_pusher::stats::RemoteStats;

/// About one compressed block of a fast collector (the sessions collector's block for 50
/// sessions is a few KiB; the others' are smaller).
const BODY_LEN: usize = 3 * 1024;
const ROUNDS: usize = 3;
const BLOCKS_PER_FAST_CYCLE: f64 = 6.0;

/// CPU time of the whole process (every thread), from CLOCK_PROCESS_CPUTIME_ID.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Voluntary context switches of the process so far (a thread hand-off is one or two).
fn context_switches() -> i64 {
    // SAFETY: getrusage writes into the rusage we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_nvcsw + usage.ru_nivcsw
}

/// Incompressible bodies, as snappy bodies are; made before timing starts.
fn bodies() -> Vec<bytes::Bytes> {
    (1..=16u64)
        .map(|i| {
            let mut x = i.wrapping_mul(6_364_136_223_846_793_005) | 1;
            let data: Vec<u8> = (0..BODY_LEN)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            data.into()
        })
        .collect()
}

fn block(bodies: &[bytes::Bytes], i: u64, now_ms: i64) -> Block {
    Block {
        data: bodies[i as usize % bodies.len()].clone(),
        samples: 150,
        min_timestamp_ms: now_ms,
        max_timestamp_ms: now_ms,
    }
}

fn options() -> Options {
    Options {
        max_size: 1 << 30,
        max_age: Duration::from_secs(86400),
        segment_size: 8 << 20,
        memory_fallback_size: 16 << 20,
    }
}

fn open(dir: &Path) -> Arc<Queue> {
    let queue = Arc::new(Queue::open(dir, options(), Arc::new(RemoteStats::default())).unwrap());
    queue.pack_with(jellyfin_pusher::remote_write::pack::new_packer);
    queue
}

/// Takes the one block waiting, as a sender lane does (newest first: the default kind).
fn take_one(queue: &Queue) -> jellyfin_pusher::queue::Pending {
    let now = jellyfin_pusher::sample::now_ms();
    match queue.take(now, 64, 1 << 20, true).unwrap() {
        Take::Batch(mut batch) if batch.len() == 1 => batch.pop().unwrap(),
        other => panic!("expected one block, got {other:?}"),
    }
}

fn assert_empty(queue: &Queue, take: Option<Take>) {
    assert!(
        matches!(take, Some(Take::Empty)),
        "queue not empty: {take:?}"
    );
    assert_eq!(queue.gauges().blocks, 0);
}

/// One fast cycle, calls in a row: six blocks' lives (append, take, acknowledge, find it
/// empty), then the save that covers them.
fn direct(queue: &Queue, bodies: &[bytes::Bytes], cycle: u64) {
    for i in 0..BLOCKS_PER_FAST_CYCLE as u64 {
        let now = jellyfin_pusher::sample::now_ms();
        queue.append(block(bodies, cycle * 8 + i, now));
        let pending = take_one(queue);
        queue.ack(&pending);
        assert_empty(queue, queue.idle());
    }
    assert!(queue.save_due().is_some(), "the position moved");
    queue.sync();
}

/// One fast cycle as the agent lives it: for each block the pipeline appends on the blocking
/// pool, a lane takes there, acknowledges on the runtime's thread and finds the queue empty
/// without leaving it (`Queue::idle`); then the sender's saver saves the position on the pool.
async fn agent(queue: &Arc<Queue>, bodies: &[bytes::Bytes], cycle: u64) {
    for i in 0..BLOCKS_PER_FAST_CYCLE as u64 {
        let now = jellyfin_pusher::sample::now_ms();
        let b = block(bodies, cycle * 8 + i, now);
        let q = queue.clone();
        tokio::task::spawn_blocking(move || q.append(b))
            .await
            .unwrap();
        let q = queue.clone();
        let pending = tokio::task::spawn_blocking(move || take_one(&q))
            .await
            .unwrap();
        queue.ack(&pending);
        // The lane asks again; the queue answers without a trip to the pool (`Queue::idle`).
        assert_empty(queue, queue.idle());
    }
    assert!(queue.save_due().is_some(), "the position moved");
    let q = queue.clone();
    tokio::task::spawn_blocking(move || q.sync()).await.unwrap();
}

/// One fast cycle as the agent lives it with the pipeline's group commit: the tick's blocks
/// appended together on the blocking pool, taken by a lane in one take (it takes up to 64) on
/// the pool, or `in_memory` on the runtime's thread as the agent now does
/// (`Queue::take_in_memory`), acknowledged on the runtime's thread, the queue found empty;
/// then the position save.
async fn grouped(queue: &Arc<Queue>, bodies: &[bytes::Bytes], cycle: u64, in_memory: bool) {
    let now = jellyfin_pusher::sample::now_ms();
    let blocks: Vec<Block> = (0..BLOCKS_PER_FAST_CYCLE as u64)
        .map(|i| block(bodies, cycle * 8 + i, now))
        .collect();
    let q = queue.clone();
    tokio::task::spawn_blocking(move || q.append_all(&blocks))
        .await
        .unwrap();
    let take = move |q: &Queue| {
        let now = jellyfin_pusher::sample::now_ms();
        let took = match in_memory {
            true => q.take_in_memory(now, 64, 1 << 20, true).expect("in memory"),
            false => q.take(now, 64, 1 << 20, true),
        };
        match took.unwrap() {
            Take::Batch(batch) => batch,
            other => panic!("expected a batch, got {other:?}"),
        }
    };
    let batch = match in_memory {
        true => take(queue),
        false => {
            let q = queue.clone();
            tokio::task::spawn_blocking(move || take(&q)).await.unwrap()
        }
    };
    assert_eq!(batch.len(), BLOCKS_PER_FAST_CYCLE as usize);
    for pending in &batch {
        queue.ack(pending);
    }
    assert_empty(queue, queue.idle());
    assert!(queue.save_due().is_some(), "the position moved");
    let q = queue.clone();
    tokio::task::spawn_blocking(move || q.sync()).await.unwrap();
}

/// A fast tick's blocks as the agent encodes them: 50 sessions' series (the sessions
/// collector's block is the largest), and four smaller collectors' blocks.
fn tick_blocks() -> Vec<Block> {
    use jellyfin_pusher::sample::{Batch, Family};
    let labels = vec![
        ("instance".to_string(), "dmz-host".to_string()),
        ("job".to_string(), "jellyfin".to_string()),
    ];
    let now = jellyfin_pusher::sample::now_ms();
    let series = |name: &'static str, n: usize| {
        let mut family = Family::gauge(name, "A gauge.");
        for i in 0..n {
            family = family.with(
                vec![
                    ("client", format!("Client {}", i % 7)),
                    ("device", format!("device-{i}")),
                    ("user", format!("{:016x}", i * 7919)),
                ],
                (i * 31 % 1000) as f64,
            );
        }
        family
    };
    [(50, 4), (3, 3), (20, 2), (10, 2), (30, 2)]
        .iter()
        .map(|&(n, families)| {
            let names = [
                "jellyfin_sessions",
                "jellyfin_session_bitrate_bits",
                "jellyfin_session_progress_ratio",
                "jellyfin_session_paused",
            ];
            let batch = Batch {
                timestamp_ms: now,
                families: names[..families].iter().map(|f| series(f, n)).collect(),
            };
            jellyfin_pusher::remote_write::encode(&batch, &labels)
        })
        .collect()
}

/// CPU per merge of a tick's blocks, both ways, three rounds each.
fn merge_cost() {
    use jellyfin_pusher::remote_write::{merge, splice::splice};
    const MERGES: u32 = 2_000;
    let blocks = tick_blocks();
    let compressed: usize = blocks.iter().map(|b| b.data.len()).sum();
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&splice(&blocks).unwrap())
        .unwrap()
        .len();
    assert_eq!(
        jellyfin_pusher::remote_write::decode(&merge(&blocks).unwrap()).unwrap(),
        jellyfin_pusher::remote_write::decode(&splice(&blocks).unwrap()).unwrap(),
        "both ways make the same request"
    );
    let time = |f: &dyn Fn()| {
        let rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let cpu = process_cpu();
                for _ in 0..MERGES {
                    f();
                }
                (process_cpu() - cpu).as_secs_f64() * 1e6 / f64::from(MERGES)
            })
            .collect();
        let (median, least, most) = spread(rounds);
        format!("{median:.1} us (range {least:.1} to {most:.1})")
    };
    let merged = time(&|| {
        std::hint::black_box(merge(std::hint::black_box(&blocks)).unwrap());
    });
    let spliced = time(&|| {
        std::hint::black_box(splice(std::hint::black_box(&blocks)).unwrap());
    });
    println!(
        "merging a tick's {} blocks ({compressed} bytes compressed, {raw} decompressed) into one request, CPU per merge, median of {ROUNDS} rounds of {MERGES}: decompressed and compressed again {merged}; spliced {spliced}",
        blocks.len()
    );
}

struct Round {
    cpu_per_block: Duration,
    wall_per_block: Duration,
    switches_per_block: f64,
}

fn measure(cycles: u64, mut run: impl FnMut(u64)) -> Round {
    let (cpu, wall, switches) = (process_cpu(), Instant::now(), context_switches());
    for i in 0..cycles {
        run(i);
    }
    let blocks = cycles * BLOCKS_PER_FAST_CYCLE as u64;
    let n = blocks as u32;
    Round {
        cpu_per_block: (process_cpu() - cpu) / n,
        wall_per_block: wall.elapsed() / n,
        switches_per_block: (context_switches() - switches) as f64 / blocks as f64,
    }
}

fn report(shape: &str, rounds: &[Round]) {
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "{shape} round {}: CPU {:.1} us per block ({:.2} ms per fast cycle of {BLOCKS_PER_FAST_CYCLE} blocks), wall {:.2} ms per block, {:.1} context switches per block",
            i + 1,
            r.cpu_per_block.as_secs_f64() * 1e6,
            r.cpu_per_block.as_secs_f64() * 1e3 * BLOCKS_PER_FAST_CYCLE,
            r.wall_per_block.as_secs_f64() * 1e3,
            r.switches_per_block,
        );
    }
    let (median, least, most) = spread(
        rounds
            .iter()
            .map(|r| r.cpu_per_block.as_secs_f64() * 1e6)
            .collect(),
    );
    println!(
        "{shape}: CPU per block median {median:.1} us (range {least:.1} to {most:.1}), per fast cycle {:.2} ms",
        median * BLOCKS_PER_FAST_CYCLE / 1e3,
    );
}

/// Median, least and most of `v`.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let blocks: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2_004);
    let cycles = blocks / BLOCKS_PER_FAST_CYCLE as u64;
    // `direct` or `agent` alone (for `strace -c -f`, which counts the whole process).
    let only = args.iter().find(|a| a.parse::<u64>().is_err()).cloned();
    let runs = |shape: &str| only.as_deref().is_none_or(|o| o == shape);
    // Under target/, on the build's disk: a tmpfs would make every fsync free.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    println!(
        "queue bench: {cycles} fast cycles of {BLOCKS_PER_FAST_CYCLE} blocks of {BODY_LEN} bytes per round, folder {}",
        work.path().display()
    );

    let bodies = bodies();
    if runs("direct") {
        let queue = open(&work.path().join("direct"));
        direct(&queue, &bodies, 0); // warm-up: files created, position file in place
        let rounds: Vec<Round> = (0..ROUNDS)
            .map(|_| measure(cycles, |i| direct(&queue, &bodies, i)))
            .collect();
        report("direct", &rounds);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for shape in ["agent", "grouped", "fresh"] {
        if !runs(shape) {
            continue;
        }
        let queue = open(&work.path().join(shape));
        let cycle = |i| {
            runtime.block_on(async {
                match shape {
                    "agent" => agent(&queue, &bodies, i).await,
                    shape => grouped(&queue, &bodies, i, shape == "fresh").await,
                }
            })
        };
        cycle(0); // warm-up
        let rounds: Vec<Round> = (0..ROUNDS).map(|_| measure(cycles, cycle)).collect();
        report(shape, &rounds);
    }
    if runs("churn") {
        // Pauses longer than the short keep-alive: every append and save starts a thread.
        let pause = Duration::from_millis(3);
        for (shape, keep_alive) in [
            ("fresh, new thread per trip", Duration::from_millis(1)),
            ("fresh, thread kept", Duration::from_secs(600)),
        ] {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .thread_keep_alive(keep_alive)
                .enable_all()
                .build()
                .unwrap();
            let queue = open(&work.path().join(shape.replace([' ', ','], "-")));
            let cycle = |i| {
                std::thread::sleep(pause);
                runtime.block_on(grouped(&queue, &bodies, i, true));
            };
            cycle(0);
            let rounds: Vec<Round> = (0..ROUNDS).map(|_| measure(cycles, cycle)).collect();
            report(shape, &rounds);
        }
    }
    if runs("merge") {
        merge_cost();
    }
}
