//! The disk buffer against a real VictoriaMetrics and real files: outages, SIGKILL at random
//! moments, damaged data files, a full disk, old and oversized backlogs, two agents.

use crate::common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{assert_one_sample_per_request, now_ms, up_timestamps, wait_for};
use jellyfin_pusher::queue::record::{self, HEADER_LEN};
use jellyfin_pusher::queue::{Options, Queue, segment};
use jellyfin_pusher::remote_write::{decode, encode};
use jellyfin_pusher::sample::{Batch, Family};
use jellyfin_pusher::stats::RemoteStats;

/// Waits until `n` cycles have asked Jellyfin.
async fn cycles(jellyfin: &FakeJellyfin, n: usize) {
    jellyfin.wait_for_requests("/System/Info", n).await;
}

/// Waits until VictoriaMetrics holds a sample for every cycle so far.
async fn caught_up(vm: &VictoriaMetrics, jellyfin: &FakeJellyfin) {
    wait_for("the backlog to drain", Duration::from_secs(90), || async {
        let wanted = jellyfin.requests_to("/System/Info").len();
        reqwest::get(format!("{}/internal/force_flush", vm.base_url()))
            .await
            .ok()?;
        (up_timestamps(vm).await.len() >= wanted).then_some(())
    })
    .await;
}

fn samples_of(series: &[common::servers::Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.timestamps.iter().zip(&s.values))
        .max_by_key(|(t, _)| **t)
        .map_or(0.0, |(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_every_sample_keeps_its_timestamp() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    vm.down();
    let before = jellyfin.requests_to("/System/Info").len();
    cycles(&jellyfin, before + 8).await;
    vm.up().await;
    caught_up(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    vm.settle().await;

    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );
    let blocks = vm
        .export("{__name__=\"jellyfin_pusher_buffer_blocks\"}")
        .await;
    let peak = blocks[0].values.iter().copied().fold(0.0, f64::max);
    assert!(
        peak >= 10.0,
        "the backlog was visible in the agent's own metrics: {peak}"
    );
    let log = agent.log();
    // One line per reason of the incident: requests out together when the receiver went
    // away may fail "connection reset" and the next ones "connection refused", but never
    // one line per retry (eight cycles were retried here, over several lanes).
    let reasons: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("remote write failed"))
        .map(|l| {
            l.split(" reason=")
                .nth(1)
                .unwrap_or_else(|| panic!("no reason field in: {l}"))
        })
        .map(|r| r.split(" retry_in=").next().unwrap_or(r))
        .collect();
    let distinct: std::collections::BTreeSet<&str> = reasons.iter().copied().collect();
    assert!(
        !reasons.is_empty() && reasons.len() == distinct.len() && reasons.len() <= 3,
        "each reason of the incident logged once:\n{log}"
    );
    assert_eq!(
        log.matches("remote write delivering again").count(),
        1,
        "one line when the incident ends:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_while_the_receiver_flaps_loses_no_stored_cycle() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let mut seed = now_ms() as u64 | 1;
    eprintln!("seed {seed}");
    let mut random = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut kills = Vec::new();
    let mut round = 0;
    while jellyfin.requests_to("/System/Info").len() < 50 {
        round += 1;
        let mut agent = dir.start();
        tokio::time::sleep(Duration::from_millis(200 + random(2300))).await;
        kills.push(now_ms());
        agent.kill9();
        if round % 4 == 0 {
            vm.down();
        } else if round % 4 == 2 {
            vm.up().await;
        }
    }
    vm.down();
    vm.up().await;
    let mut agent = dir.start();
    // A cycle is stored once its block is appended, a few ms after Jellyfin answered; only a
    // kill inside that window may lose it. Every other cycle must arrive.
    let killed_right_after = |at: i64| kills.iter().any(|k| (0..300).contains(&(k - at)));
    let has_sample =
        |stored: &[i64], at: i64| stored.iter().any(|ts| (0..500).contains(&(at - ts)));
    wait_for(
        "every stored cycle to arrive",
        Duration::from_secs(90),
        || async {
            reqwest::get(format!("{}/internal/force_flush", vm.base_url()))
                .await
                .ok()?;
            let stored = up_timestamps(&vm).await;
            let cutoff = now_ms() - 3000;
            let requests = jellyfin.requests_to("/System/Info");
            let all = requests
                .iter()
                .filter(|r| r.at_ms < cutoff && !killed_right_after(r.at_ms));
            all.clone()
                .all(|r| has_sample(&stored, r.at_ms))
                .then_some(())
        },
    )
    .await;
    let status = agent.stop();
    assert!(status.success(), "{status}; log:\n{}", agent.log());
    vm.settle().await;

    let stored = up_timestamps(&vm).await;
    let mut unique = stored.clone();
    unique.dedup();
    let mut in_flight = 0;
    for request in jellyfin.requests_to("/System/Info") {
        if !has_sample(&unique, request.at_ms) {
            assert!(
                killed_right_after(request.at_ms),
                "the cycle of the request at {} ms is missing",
                request.at_ms
            );
            in_flight += 1;
        }
    }
    eprintln!(
        "{} cycles over {} kills: {} delivered, {} duplicates, {} lost in flight at a kill",
        jellyfin.requests_to("/System/Info").len(),
        kills.len(),
        unique.len(),
        stored.len() - unique.len(),
        in_flight
    );
    assert!(kills.len() >= 15, "enough kills to mean something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_skipped_and_counted_and_a_torn_tail_cut_off() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    vm.down();
    let mut agent = dir.start();
    cycles(&jellyfin, 5).await;
    assert!(agent.stop().success());

    // Read the records back with the queue's own framing.
    let queue_dir = dir.state().join("queue/tiger");
    let seg = segment::list(&queue_dir).unwrap()[0];
    let path = segment::path(&queue_dir, seg.start);
    let bytes = std::fs::read(&path).unwrap();
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some(header) = record::parse_header(&bytes[pos..]) {
        records.push((pos, header));
        pos += header.record_len() as usize;
    }
    assert_eq!(pos, bytes.len());
    assert!(records.len() >= 8, "{} records", records.len());
    let body = |(at, h): (usize, record::Header)| {
        &bytes[at + HEADER_LEN..at + HEADER_LEN + h.len as usize]
    };
    let up_in = |(at, h)| -> Vec<i64> {
        decode(body((at, h)))
            .unwrap()
            .timeseries
            .into_iter()
            .filter(|t| t.labels.iter().any(|l| l.value == "jellyfin_up"))
            .map(|t| t.samples[0].timestamp)
            .collect()
    };
    // Damage a system-collector record in the middle, and cut the last record short.
    let damaged = *records[2..]
        .iter()
        .find(|r| !up_in(**r).is_empty())
        .unwrap();
    let torn = *records.last().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let middle = (damaged.0 + HEADER_LEN + damaged.1.len as usize / 2) as u64;
    file.write_all_at(&[bytes[middle as usize] ^ 0x5a], middle)
        .unwrap();
    file.set_len((torn.0 + HEADER_LEN + 3) as u64).unwrap();

    vm.up().await;
    let mut agent = dir.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let stored = up_timestamps(&vm).await;
    for r in &records[..records.len() - 1] {
        for ts in up_in(*r) {
            assert_eq!(
                stored.contains(&ts),
                *r != damaged,
                "record at {} (damaged: {})",
                r.0,
                *r == damaged
            );
        }
    }
    let corrupt = vm
        .export("{__name__=\"jellyfin_pusher_samples_dropped_total\",reason=\"corrupt\"}")
        .await;
    assert_eq!(samples_of(&corrupt), f64::from(damaged.1.samples));
    let log = agent.log();
    assert!(
        log.contains("failed its checksum") && log.contains("truncating a torn record"),
        "{log}"
    );
}

/// Fills a small tmpfs so that the buffer cannot write, then frees it.
struct SmallDisk {
    mount: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &std::path::Path) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the tests run as root in CI)"
        );
        SmallDisk {
            mount: at.to_path_buf(),
        }
    }

    fn fill(&self) {
        let filler = self.mount.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.mount.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_survived_and_writing_resumes_when_space_returns() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "");
    let disk = SmallDisk::mount(&dir.state());
    disk.fill();
    let mut agent = dir.start();
    // The disk is full and the receiver goes away: blocks wait in memory.
    cycles(&jellyfin, 2).await;
    vm.down();
    let n = jellyfin.requests_to("/System/Info").len();
    cycles(&jellyfin, n + 4).await;
    vm.up().await;
    caught_up(&vm, &jellyfin).await;
    // Space returns; another outage is now buffered on disk.
    disk.free();
    let n = jellyfin.requests_to("/System/Info").len();
    cycles(&jellyfin, n + 2).await;
    vm.down();
    cycles(&jellyfin, n + 6).await;
    vm.up().await;
    caught_up(&vm, &jellyfin).await;
    assert!(agent.is_running(), "the agent survived a full disk");
    assert!(agent.stop().success());
    vm.settle().await;

    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );
    let log = agent.log();
    assert_eq!(
        log.matches("cannot write to the buffer").count(),
        1,
        "logged once per incident:\n{log}"
    );
    assert_eq!(log.matches("buffer writes work again").count(), 1, "{log}");
    let errors = vm
        .export("{__name__=\"jellyfin_pusher_buffer_write_errors_total\"}")
        .await;
    assert!(samples_of(&errors) >= 4.0, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_state_dir_refuses_to_start() {
    let jellyfin = FakeJellyfin::start("").await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", "http://127.0.0.1:9/api/v1/write")],
        "1s",
        "",
    );
    let mut first = dir.start();
    cycles(&jellyfin, 1).await;
    let second = dir.run(&[]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    let expected = format!(
        "is in use by another jellyfin-pusher (pid {}); each agent needs its own state_dir",
        first.pid()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(first.is_running());
}

/// Writes blocks into the agent's queue before it starts, as a long outage would have.
fn prefill(dir: &AgentDir, timestamps: impl Iterator<Item = i64>) -> u64 {
    let stats = Arc::new(RemoteStats::default());
    let options = Options {
        max_size: 64 << 20,
        max_age: Duration::from_secs(3650 * 86400),
        segment_size: 1 << 20,
        memory_fallback_size: 1 << 20,
    };
    let queue = Queue::open(&dir.state().join("queue/tiger"), options, stats).unwrap();
    let mut samples = 0;
    for ts in timestamps {
        let family = Family::gauge("jellyfin_up", "Up.").with(vec![], 1.0);
        let padding = Family::gauge("test_padding", "Makes blocks big.")
            .with(vec![("pad", format!("{ts:0>60}"))], 0.0);
        let block = encode(
            &Batch {
                timestamp_ms: ts,
                families: vec![family, padding],
            },
            &[],
        );
        samples += u64::from(block.samples);
        queue.append(block);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_past_max_age_are_dropped_unsent_and_counted() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "[buffer]\nmax_age = \"1h\"\n");
    let hour = 3_600_000;
    let old = prefill(&dir, [now_ms() - 3 * hour, now_ms() - 2 * hour].into_iter());
    prefill(&dir, [now_ms() - hour / 2].into_iter());
    let mut agent = dir.start();
    cycles(&jellyfin, 3).await;
    assert!(agent.stop().success());
    vm.settle().await;
    let too_old = vm
        .export("{__name__=\"jellyfin_pusher_samples_dropped_total\",reason=\"too_old\"}")
        .await;
    assert_eq!(samples_of(&too_old), old as f64);
    let stored = up_timestamps(&vm).await;
    assert_eq!(
        stored.iter().filter(|ts| **ts < now_ms() - hour).count(),
        0,
        "nothing older than max_age"
    );
    assert_eq!(
        stored.len(),
        jellyfin.requests_to("/System/Info").len() + 1,
        "the 30-minute-old block arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_blocks_and_counts_them() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(
        &jellyfin,
        &vm,
        "[buffer]\nmax_size = \"1MiB\"\nsegment_size = \"64KiB\"\n",
    );
    // About 2 MiB of backlog, one block a second over the last hours.
    let start = now_ms() - 20_000_000 - 600_000;
    let prefilled: Vec<i64> = (0..20_000).map(|i| start + i * 1000).collect();
    let total_samples = prefill(&dir, prefilled.iter().copied());
    let queue_bytes: u64 = segment::list(&dir.state().join("queue/tiger"))
        .unwrap()
        .iter()
        .map(|s| s.len)
        .sum();
    assert!(queue_bytes > 2 << 20, "prefilled {queue_bytes} bytes");
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    caught_up_with_prefill(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    vm.settle().await;

    let stored = up_timestamps(&vm).await;
    let last_prefilled = *prefilled.last().unwrap();
    let kept: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|ts| *ts <= last_prefilled)
        .collect();
    assert!(
        !kept.is_empty() && kept.len() < prefilled.len() / 2,
        "kept {} of {}",
        kept.len(),
        prefilled.len()
    );
    // The open drops the oldest down to max_size; while the backlog drains the buffer stays
    // full, so each fresh append pushes out a few more of the oldest: what arrives is an
    // ordered subset of the backlog that ends with its newest block.
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(kept.iter().all(|ts| prefilled.binary_search(ts).is_ok()));
    assert_eq!(kept.last(), Some(&last_prefilled));
    let full = vm
        .export("{__name__=\"jellyfin_pusher_samples_dropped_total\",reason=\"buffer_full\"}")
        .await;
    assert_eq!(
        samples_of(&full),
        ((prefilled.len() - kept.len()) * 2) as f64,
        "2 samples per dropped block"
    );
    assert!(total_samples > 0);
}

async fn caught_up_with_prefill(vm: &VictoriaMetrics, jellyfin: &FakeJellyfin) {
    wait_for("the buffer to drain", Duration::from_secs(60), || async {
        reqwest::get(format!("{}/internal/force_flush", vm.base_url()))
            .await
            .ok()?;
        let blocks = vm
            .export("{__name__=\"jellyfin_pusher_buffer_blocks\"}")
            .await;
        let latest = samples_of(&blocks);
        let up = up_timestamps(vm).await;
        let recent = up.iter().filter(|ts| **ts > now_ms() - 60_000).count();
        (latest <= 2.0 && recent >= jellyfin.requests_to("/System/Info").len()).then_some(())
    })
    .await;
}

/// In normal operation the reader position is saved a second after deliveries (one save for
/// a cycle's blocks), not when the next cycle comes: with a 30 s interval, `status` (which
/// reads the saved position) shows an empty backlog within seconds of the first cycle's
/// delivery, and an agent killed then and started again sends none of it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_position_is_saved_a_second_after_deliveries_so_a_kill_then_resends_nothing() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &vm.write_url())], "30s", "");
    let queue_dir = dir.state().join("queue/tiger");
    let mut agent = dir.start();
    cycles(&jellyfin, 1).await;
    let saved_at = std::time::Instant::now();
    wait_for(
        "the saved position to pass every delivered block",
        Duration::from_secs(20),
        || async {
            let backlog = jellyfin_pusher::queue::inspect::backlog(&queue_dir).ok()?;
            (backlog.blocks == 0 && queue_dir.join("position").exists()).then_some(())
        },
    )
    .await;
    eprintln!(
        "position saved {:?} after the first cycle began",
        saved_at.elapsed()
    );
    agent.kill9();
    let mut agent = dir.start();
    cycles(&jellyfin, 2).await;
    caught_up(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    vm.settle().await;
    let stored = up_timestamps(&vm).await;
    let mut unique = stored.clone();
    unique.dedup();
    assert_eq!(stored, unique, "a block was sent again after the restart");
    assert_eq!(unique.len(), 2);
}
