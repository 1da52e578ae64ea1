//! An outage's backlog packed on disk (queue::compact, remote_write::pack) against a real
//! VictoriaMetrics: every sample arrives once with its timestamp, and a rejected pack is sent
//! again cycle by cycle, so a 400 drops only the cycle it was about. Against a real
//! Prometheus, which needs each series' samples in order: a packed backlog (one series'
//! samples after another's within a request) is taken without a single rejection.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::fault_proxy::FaultProxy;
use common::servers::{Prometheus, VictoriaMetrics};
use common::{now_ms, up_timestamps, wait_for};
use jellyfin_pusher::queue::{Options, Queue, segment};
use jellyfin_pusher::remote_write::{decode, encode, pack};
use jellyfin_pusher::sample::{Batch, Family};
use jellyfin_pusher::stats::RemoteStats;

const SEGMENT: u64 = 64 * 1024;

/// A cycle of `jellyfin_up` and `extra` padding series whose values do not compress.
fn cycle(ts: i64, extra: usize) -> jellyfin_pusher::queue::Block {
    let up = Family::gauge("jellyfin_up", "Up.").with(vec![], 1.0);
    let mut padding = Family::gauge("test_padding", "Makes blocks big.");
    let mut x = ts as u64 | 1;
    for i in 0..extra.max(1) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        padding.push(
            vec![("pad", format!("{i}-{x:016x}{:016x}", x.rotate_left(29)))],
            0.0,
        );
    }
    encode(
        &Batch {
            timestamp_ms: ts,
            families: vec![up, padding],
        },
        &[],
    )
}

/// Opens the agent's queue for `dir` with 64 KiB segments and packing, as the agent does.
fn packing_queue(dir: &AgentDir) -> Queue {
    let options = Options {
        max_size: 64 << 20,
        max_age: Duration::from_secs(86400),
        segment_size: SEGMENT,
        memory_fallback_size: 1 << 20,
    };
    let stats = Arc::new(RemoteStats::default());
    let queue = Queue::open(&dir.state().join("queue/tiger"), options, stats).unwrap();
    queue.pack_with(pack::new_packer);
    queue
}

/// Waits until VictoriaMetrics holds at least `expected` jellyfin_up samples up to `last`
/// (the prefilled backlog); returns their timestamps, sorted.
async fn backlog_arrived(vm: &VictoriaMetrics, last: i64, expected: usize) -> Vec<i64> {
    wait_for(
        "the backlog to arrive",
        Duration::from_secs(60),
        || async move {
            vm.settle().await;
            let stored: Vec<i64> = up_timestamps(vm)
                .await
                .into_iter()
                .filter(|t| *t <= last)
                .collect();
            (stored.len() >= expected).then_some(stored)
        },
    )
    .await
}

/// Timestamps of every sample in a request body.
fn timestamps(body: &[u8]) -> BTreeSet<i64> {
    decode(body)
        .unwrap()
        .timeseries
        .iter()
        .flat_map(|ts| ts.samples.iter().map(|s| s.timestamp))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packed_backlog_arrives_whole_and_a_rejected_pack_loses_one_cycle() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let fail = Some((400, None));
    // The first backlog request (everything merged) is rejected, then sent block by block:
    // the big first block goes through, the first pack is rejected and sent cycle by cycle,
    // and its first cycle is rejected too.
    let proxy = FaultProxy::start(&vm.write_url(), vec![fail, None, fail, fail]).await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &proxy.write_url())],
        "1s",
        // One request at a time, oldest first, so that the script meets the requests in order.
        "concurrency = 1\nnewest_first = false\n[buffer]\nsegment_size = \"64KiB\"\n",
    );

    // The outage, as the agent would have stored it: a first block that fills the segment the
    // reader stays in, then 1,500 small cycles, packed segment by segment as they fill.
    let queue_dir = dir.state().join("queue/tiger");
    let start = now_ms() - 1_500_000 - 600_000;
    let prefilled: Vec<i64> = (0..=1500).map(|i| start + i * 1000).collect();
    let unpacked: u64 = prefilled[1..]
        .iter()
        .map(|ts| cycle(*ts, 1).data.len() as u64 + 36)
        .sum();
    {
        let queue = packing_queue(&dir);
        queue.append(cycle(prefilled[0], 4000));
        for ts in &prefilled[1..] {
            queue.append(cycle(*ts, 1));
        }
    }
    let segments = segment::list(&queue_dir).unwrap();
    assert!(segments[0].len > SEGMENT, "the big block alone");
    let stored: u64 = segments[1..].iter().map(|s| s.len).sum();
    assert!(
        stored * 2 < unpacked,
        "{stored} bytes packed, {unpacked} unpacked"
    );
    let packs: Vec<segment::Scan> = segments[1..segments.len() - 1]
        .iter()
        .map(|s| {
            let file = std::fs::File::open(segment::path(&queue_dir, s.start)).unwrap();
            segment::scan(&file, s.len, 0).unwrap()
        })
        .collect();
    assert!(packs.len() >= 2, "{} packed segments", packs.len());
    assert!(
        packs.iter().all(|p| p.records == 1 && p.samples > 100),
        "{packs:?}"
    );

    let mut agent = dir.start();
    let last = *prefilled.last().unwrap();
    backlog_arrived(&vm, last, prefilled.len() - 1).await;
    wait_for(
        "the dropped cycle to be counted",
        Duration::from_secs(30),
        || {
            let vm = &vm;
            async move {
                vm.settle().await;
                let dropped = vm
                    .export(
                        "{__name__=\"jellyfin_pusher_samples_dropped_total\",reason=\"rejected\"}",
                    )
                    .await;
                (dropped.first()?.values.last() == Some(&2.0)).then_some(())
            }
        },
    )
    .await;
    assert!(agent.stop().success());

    let seen = proxy.seen();
    let answered: Vec<u16> = seen.iter().take(5).map(|s| s.answered).collect();
    assert_eq!(answered, [400, 204, 400, 400, 204]);
    assert_eq!(timestamps(&seen[1].body), BTreeSet::from([prefilled[0]]));
    let pack = timestamps(&seen[2].body);
    assert!(pack.len() > 100, "the pack holds {} cycles", pack.len());
    let dropped = *pack.first().unwrap();
    assert_eq!(timestamps(&seen[3].body), BTreeSet::from([dropped]));
    assert_eq!(
        timestamps(&seen[4].body),
        BTreeSet::from([*pack.iter().nth(1).unwrap()]),
        "the rest of the pack follows one cycle per request"
    );

    // VictoriaMetrics holds every prefilled cycle but the rejected one, each once.
    let stored = backlog_arrived(&vm, last, 0).await;
    let want: Vec<i64> = prefilled
        .iter()
        .copied()
        .filter(|t| *t != dropped)
        .collect();
    assert_eq!(stored, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_takes_a_packed_backlog_without_a_rejection() {
    let jellyfin = FakeJellyfin::start("").await;
    let prometheus = Prometheus::start().await;
    let proxy = FaultProxy::start(&prometheus.write_url(), vec![]).await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &proxy.write_url())],
        "1s",
        "kind = \"prometheus\"\n",
    );
    // 2.5 hours of 10 s cycles of 3 series: a 64 KiB segment holds well over an hour of them.
    let start = now_ms() - 9_000_000 - 60_000;
    let prefilled: Vec<i64> = (0..900).map(|i| start + i * 10_000).collect();
    {
        let queue = packing_queue(&dir);
        for ts in &prefilled {
            let families = vec![
                Family::gauge("jellyfin_up", "Up.").with(vec![], 1.0),
                Family::gauge("jellyfin_active_users", "Users.").with(vec![], 2.0),
                Family::gauge("jellyfin_pending_restart", "Restart.").with(vec![], 0.0),
            ];
            queue.append(encode(
                &Batch {
                    timestamp_ms: *ts,
                    families,
                },
                &[],
            ));
        }
    }
    let segments = segment::list(&dir.state().join("queue/tiger")).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");

    let mut agent = dir.start();
    let (last, expected) = (*prefilled.last().unwrap(), prefilled.len());
    let stored = wait_for("the backlog in Prometheus", Duration::from_secs(60), || {
        let prometheus = &prometheus;
        async move {
            let answer = prometheus.raw_samples("jellyfin_up", "3h").await;
            let stored: Vec<i64> = answer["data"]["result"][0]["values"]
                .as_array()?
                .iter()
                .map(|pair| (pair[0].as_f64().unwrap() * 1000.0).round() as i64)
                .filter(|t| *t <= last)
                .collect();
            (stored.len() >= expected).then_some(stored)
        }
    })
    .await;
    assert!(agent.stop().success());
    assert_eq!(stored, prefilled);
    let seen = proxy.seen();
    let refused: Vec<u16> = seen
        .iter()
        .map(|s| s.answered)
        .filter(|a| !(200..300).contains(a))
        .collect();
    assert!(refused.is_empty(), "Prometheus answered {refused:?}");
    let spans: Vec<usize> = seen.iter().map(|s| timestamps(&s.body).len()).collect();
    assert!(
        spans.iter().any(|n| *n > 100),
        "packs went out whole: cycles per request {spans:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_parallel_newest_first_delivery_every_packed_cycle_arrives_once() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let dir = AgentDir::pushing(&jellyfin, &vm, "[buffer]\nsegment_size = \"64KiB\"\n");
    let start = now_ms() - 2_000_000 - 600_000;
    let prefilled: Vec<i64> = (0..2000).map(|i| start + i * 1000).collect();
    {
        let queue = packing_queue(&dir);
        for ts in &prefilled {
            queue.append(cycle(*ts, 1));
        }
    }
    let packed = segment::list(&dir.state().join("queue/tiger")).unwrap();
    assert!(packed.len() >= 4, "{packed:?}");

    let mut agent = dir.start();
    let last = *prefilled.last().unwrap();
    backlog_arrived(&vm, last, prefilled.len()).await;
    assert!(agent.stop().success());
    let stored = backlog_arrived(&vm, last, 0).await;
    assert_eq!(stored, prefilled, "each cycle once, none missing");
}
