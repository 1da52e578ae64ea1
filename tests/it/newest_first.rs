//! The delivery order after an outage (README, "Delivery order"), against real receivers with
//! the receiver stopped for a while and started again. A recording proxy in front of each
//! forwards every request and notes when the receiver answered it, which is the arrival order.
//!
//! - VictoriaMetrics (`kind` default): nothing older than the current cycle arrives before
//!   the current cycle's `jellyfin_up`, which arrives within one interval (+2 s) of the
//!   receiver's return; the backlog comes with it or after it; every cycle is stored exactly
//!   once with its own timestamp.
//! - Prometheus (`kind = "prometheus"`): every request carries cycles newer than all before
//!   it (Prometheus refuses out-of-order samples), none is refused, every cycle is stored
//!   exactly once with its own timestamp.

use std::time::{Duration, Instant};

use crate::common;
use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::fault_proxy::{FaultProxy, Seen};
use common::servers::{Prometheus, VictoriaMetrics};
use common::{assert_one_sample_per_request, up_timestamps, wait_for, wait_for_every_cycle};

/// Every sample's timestamp in a request body.
fn sample_timestamps(seen: &Seen) -> Vec<i64> {
    jellyfin_pusher::remote_write::decode(&seen.body)
        .expect("a snappy WriteRequest")
        .timeseries
        .iter()
        .flat_map(|ts| ts.samples.iter().map(|s| s.timestamp))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoriametrics_gets_the_current_cycle_first_and_the_backlog_behind_it_once() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut vm = VictoriaMetrics::start().await;
    let proxy = FaultProxy::start(&vm.write_url(), vec![]).await;
    let interval = Duration::from_secs(2);
    let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &proxy.write_url())], "2s", "");
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 2).await;
    wait_for_every_cycle(&vm, &jellyfin).await;

    vm.down();
    let dark_from = jellyfin.requests_to("/System/Info").len();
    jellyfin
        .wait_for_requests("/System/Info", dark_from + 6)
        .await;
    vm.up().await;
    let back = Instant::now();
    let back_ms = jellyfin_pusher::sample::now_ms();
    wait_for_every_cycle(&vm, &jellyfin).await;
    assert!(agent.stop().success());
    vm.settle().await;

    // Every cycle exactly once, with its own timestamp.
    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );

    // The arrival order. Each collector's result is its own block, so the current cycle may
    // come in several requests: the first delivered request after the outage that carries a
    // jellyfin_up carries the newest one, nothing delivered before it is older than that
    // cycle, and the cycles of the dark minutes come with it or after it.
    let seen = proxy.seen();
    let first_failure = seen
        .iter()
        .position(|s| s.answered == 502)
        .expect("the outage was seen by the agent");
    let after: Vec<&Seen> = seen[first_failure..]
        .iter()
        .filter(|s| s.delivered())
        .collect();
    let first_up = after
        .iter()
        .position(|s| !s.up_samples().is_empty())
        .expect("a jellyfin_up delivered after the outage");
    let first = after[first_up].up_samples();
    let newest = first.iter().copied().max().unwrap_or_default();
    let dark_cycles: Vec<i64> = jellyfin.requests_to("/System/Info")[dark_from..]
        .iter()
        .map(|r| r.at_ms)
        .filter(|at| *at < back_ms)
        .collect();
    assert!(
        dark_cycles.iter().all(|at| *at - 500 < newest),
        "the first cycle delivered ({newest}) is the newest collected in the dark: {dark_cycles:?}"
    );
    let cycle_start = newest - interval.as_millis() as i64;
    for s in &after[..first_up] {
        let oldest = sample_timestamps(s).into_iter().min().unwrap_or(newest);
        assert!(
            oldest > cycle_start,
            "a request before the current cycle's jellyfin_up carried older samples ({oldest} < {cycle_start})"
        );
    }
    // The dark cycles come with it (a request of the newest blocks, walking back) or later.
    let behind: Vec<i64> = after[first_up..]
        .iter()
        .flat_map(|s| s.up_samples())
        .filter(|ts| *ts < newest)
        .collect();
    assert!(
        dark_cycles.len() >= 5 && behind.len() >= dark_cycles.len() - 1,
        "the backlog of the dark minutes came with or behind the current cycle: {behind:?}"
    );
    let first_back = after[first_up];
    let lag = first_back.at.saturating_duration_since(back);
    eprintln!(
        "FIGURE newest first: the current cycle arrived {lag:?} after VictoriaMetrics answered again \
         (interval {interval:?}); {} cycles of backlog behind it",
        behind.len()
    );
    assert!(
        lag <= interval + Duration::from_secs(2),
        "the current cycle arrived {lag:?} after the receiver's return, more than one interval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gets_every_cycle_in_order_one_request_at_a_time_exactly_once() {
    let jellyfin = FakeJellyfin::start("").await;
    let mut prometheus = Prometheus::start().await;
    let proxy = FaultProxy::start(&prometheus.write_url(), vec![]).await;
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("prom", &proxy.write_url())],
        "1s",
        "kind = \"prometheus\"\n",
    );
    let mut agent = dir.start();
    jellyfin.wait_for_requests("/System/Info", 2).await;
    prometheus.down();
    let dark_from = jellyfin.requests_to("/System/Info").len();
    jellyfin
        .wait_for_requests("/System/Info", dark_from + 8)
        .await;
    prometheus.up().await;
    let stored = || async {
        let answer = prometheus.raw_samples("jellyfin_up", "10m").await;
        let values = answer["data"]["result"][0]["values"].as_array()?.clone();
        Some(
            values
                .iter()
                .map(|pair| (pair[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64)
                .collect::<Vec<i64>>(),
        )
    };
    wait_for(
        "every cycle in Prometheus",
        Duration::from_secs(90),
        || async {
            let stored = stored().await?;
            (stored.len() >= jellyfin.requests_to("/System/Info").len()).then_some(())
        },
    )
    .await;
    assert!(agent.stop().success());

    let timestamps = stored().await.expect("jellyfin_up in Prometheus");
    assert_one_sample_per_request(&timestamps, &jellyfin.requests_to("/System/Info"));
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|s| s.answered == 502),
        "the outage was seen by the agent"
    );
    assert!(
        seen.iter().all(|s| s.answered != 400),
        "Prometheus refused a request (out of order?)"
    );
    let arrived: Vec<i64> = seen
        .iter()
        .filter(|s| s.delivered())
        .flat_map(Seen::up_samples)
        .collect();
    assert!(
        arrived.windows(2).all(|w| w[0] < w[1]),
        "cycles arrived out of order: {arrived:?}"
    );
}
