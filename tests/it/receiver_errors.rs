//! The remote-write outcome table, end to end: a proxy in front of a real VictoriaMetrics
//! answers scripted failures, and the test follows every block through its retries.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::agent::AgentDir;
use common::fake_jellyfin::FakeJellyfin;
use common::fault_proxy::{FaultProxy, Seen};
use common::servers::VictoriaMetrics;
use common::wait_for;
use jellyfin_pusher::remote_write::decode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_spec_headers_and_the_bearer_token_from_its_file() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let proxy = FaultProxy::start(&vm.write_url(), vec![]).await;
    let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &proxy.write_url())], "1s", "");
    std::fs::write(dir.dir.path().join("vm-token"), "write-only-token\n").unwrap();
    let text = std::fs::read_to_string(dir.config()).unwrap()
        + &format!(
            "bearer_token_file = \"{}\"\n",
            dir.dir.path().join("vm-token").display()
        );
    std::fs::write(dir.config(), text).unwrap();
    let mut agent = dir.start();
    wait_for("a push", Duration::from_secs(15), || {
        let n = proxy.seen().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    agent.stop();
    let seen = proxy.seen();
    let h = &seen[0].headers;
    assert_eq!(h["content-encoding"], "snappy");
    assert_eq!(h["content-type"], "application/x-protobuf");
    assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(
        h["user-agent"],
        concat!("jellyfin-pusher/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(h["authorization"], "Bearer write-only-token");
    assert!(
        seen.iter().all(|s| s.answered == 204),
        "VictoriaMetrics took every request"
    );
    assert!(seen.iter().any(|s| !s.up_samples().is_empty()));
    assert!(
        !agent.log().contains("write-only-token"),
        "the token must not be logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_drops_only_that_block_and_every_other_failure_is_retried_until_delivered() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let fail = |status, retry_after| Some((status, retry_after));
    let forward = None;
    let script = vec![
        fail(400, None),
        fail(503, None),
        fail(429, Some("2")),
        fail(401, None),
        fail(403, None),
        fail(500, None),
        forward,
        fail(409, None),
        forward,
        fail(415, None),
    ];
    let proxy = FaultProxy::start(&vm.write_url(), script).await;
    // One request at a time, oldest first (what kind = "prometheus" does), so that the
    // requests the proxy sees are each block's history of attempts, one after another.
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &proxy.write_url())],
        "1s",
        "concurrency = 1\nnewest_first = false\n",
    );
    let mut agent = dir.start();
    wait_for("the script to run out", Duration::from_secs(60), || {
        let left = proxy.script_left();
        async move { (left == 0).then_some(()) }
    })
    .await;
    // Follow every sample, not every body: a backlog is sent merged, and a rejected merged
    // request is resent block by block. The drops are counted in samples: wait until the
    // self-metrics collected after the last rejection have arrived and count exactly the
    // samples that were rejected and never delivered.
    wait_for(
        "samples_dropped_total{reason=rejected} to count the dropped samples",
        Duration::from_secs(30),
        || {
            let (vm, dropped) = (&vm, dropped_samples(&proxy.seen()));
            async move {
                reqwest::get(format!("{}/internal/force_flush", vm.base_url()))
                    .await
                    .ok()?;
                let series = vm
                    .export(
                        "{__name__=\"jellyfin_pusher_samples_dropped_total\",reason=\"rejected\"}",
                    )
                    .await;
                let latest = series
                    .first()?
                    .timestamps
                    .iter()
                    .zip(&series[0].values)
                    .max_by_key(|(t, _)| **t)?
                    .1;
                (*latest == dropped.len() as f64).then_some(())
            }
        },
    )
    .await;
    assert!(agent.stop().success());
    vm.settle().await;

    let seen = proxy.seen();
    let delivered = delivered_samples(&seen);
    let dropped = dropped_samples(&seen);
    assert!(!dropped.is_empty(), "the block answered 400 was dropped");
    for (i, attempt) in seen.iter().enumerate() {
        match attempt.answered {
            204 => {}
            400 | 409 | 415 => {
                // The next request carries other bytes: the rejected body is never resent.
                assert_ne!(seen[i + 1].body, attempt.body);
                assert!(
                    seen.iter().filter(|s| s.body == attempt.body).count() == 1,
                    "a rejected body was resent"
                );
            }
            status => {
                assert_eq!(
                    seen[i + 1].body,
                    attempt.body,
                    "after {status} the same bytes are retried"
                );
                assert!(
                    samples(&attempt.body).iter().all(|s| delivered.contains(s)),
                    "every sample answered {status} was delivered later"
                );
            }
        }
    }
    // Retry-After: 2 was honoured.
    let after_429 = seen.iter().position(|s| s.answered == 429).unwrap();
    let waited = seen[after_429 + 1].at - seen[after_429].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried {waited:?} after a 429 asking for 2 s"
    );

    // What VictoriaMetrics holds is exactly what was delivered: no more, no less.
    let expected: Vec<i64> = delivered
        .iter()
        .filter(|(name, _)| name.starts_with("jellyfin_up{"))
        .map(|(_, ts)| *ts)
        .collect();
    let up = vm.export("{__name__=\"jellyfin_up\"}").await;
    let mut stored = up[0].timestamps.clone();
    stored.sort();
    assert_eq!(stored, expected);
    assert!(
        dropped
            .iter()
            .all(|(name, ts)| !name.starts_with("jellyfin_up{") || !stored.contains(ts))
    );

    // The receiver's message was logged as is.
    let log = agent.log();
    assert!(
        log.contains("receiver_message=scripted failure 400"),
        "{log}"
    );
    let retries = vm
        .export("{__name__=\"jellyfin_pusher_remote_write_retries_total\"}")
        .await;
    assert_eq!(
        retries[0].values.last().copied(),
        Some(5.0),
        "503, 429, 401, 403, 500"
    );
}

fn delivered_samples(seen: &[Seen]) -> BTreeSet<(String, i64)> {
    seen.iter()
        .filter(|s| s.answered == 204)
        .flat_map(|s| samples(&s.body))
        .collect()
}

/// Samples in rejected requests that no delivered request carried.
fn dropped_samples(seen: &[Seen]) -> BTreeSet<(String, i64)> {
    let delivered = delivered_samples(seen);
    seen.iter()
        .filter(|s| matches!(s.answered, 400 | 409 | 415))
        .flat_map(|s| samples(&s.body))
        .filter(|sample| !delivered.contains(sample))
        .collect()
}

/// Every sample of a request body as (series, timestamp), the series written `name{labels}`.
fn samples(body: &[u8]) -> Vec<(String, i64)> {
    decode(body)
        .expect("a snappy WriteRequest")
        .timeseries
        .iter()
        .flat_map(|ts| {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map_or("", |l| l.value.as_str());
            let labels: Vec<String> = ts
                .labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let series = format!("{name}{{{}}}", labels.join(","));
            ts.samples
                .iter()
                .map(move |s| (series.clone(), s.timestamp))
        })
        .collect()
}
