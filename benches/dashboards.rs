//! Figures for the plan's "< 5 second dashboard load times" (README, "Figures"): 30 days of one
//! host at production cadence loaded into a local VictoriaMetrics, then every dashboard opened
//! as Grafana 11 opens it (tests/it/common/grafana_load.rs: the `job` and `instance` variables
//! first, then every panel target at once, with `$__interval`, `$__rate_interval`, `$__range`
//! and the step Grafana computes, from common/grafana_time.rs), at the dashboard's default
//! time range and at 30 days.
//!
//! The history is the agent's own output (tests/it/common/history.rs: every collector of the
//! agent run against the fake Jellyfin serving the real captures, replayed at the default
//! intervals: 15 s, 1 min, 5 min, 1 h), written through VictoriaMetrics' import API. The
//! variables stay at "All" (`.+`), as the dashboards open. VictoriaMetrics runs with its
//! result cache off (`-search.disableCache`, as every test starts it), so every load is a
//! cold one: a production Grafana reopening a dashboard is faster.
//!
//! Run: `cargo bench --bench dashboards` (needs victoria-metrics; tests/run.sh installs it).
//! `cargo bench --bench dashboards -- 2` loads 2 days instead of 30, for a quick look.
//! It prints the figures; it asserts nothing about speed (only that the history arrived whole
//! and that the panels found data).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::dashboards::{self, Dashboard};
use common::grafana_load::{self, Request};
use common::grafana_time::{self, ALL};
use common::history::{self, Recording};
use common::servers::VictoriaMetrics;

const DAY_MS: i64 = 86_400_000;
/// How much history goes into one import request.
const CHUNK_MS: i64 = 6 * 3_600_000;
/// Loads of each dashboard per time range (the first and the median are printed).
const LOADS: usize = 5;

/// One dashboard load: its wall time, and the slowest request with its own time.
struct Load {
    wall: Duration,
    slowest: (String, Duration),
    requests: usize,
    empty: Vec<String>,
}

async fn send(client: &reqwest::Client, base_url: &str, request: &Request) -> (Duration, bool) {
    let started = Instant::now();
    let answer: serde_json::Value = client
        .get(format!("{base_url}{}", request.path))
        .query(&request.params)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", request.what))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", request.what));
    assert_eq!(answer["status"], "success", "{}: {answer}", request.what);
    (started.elapsed(), grafana_load::has_data(&answer))
}

/// Opens `dashboard` over the `range_ms` before `end_ms`: the variables one after the other,
/// then every target at once.
async fn load(base_url: &str, dashboard: &Dashboard, range_ms: i64, end_ms: i64) -> Load {
    let client = reqwest::Client::new();
    let (variables, panels) = grafana_load::dashboard_load(dashboard, range_ms, end_ms, ALL, ALL);
    let started = Instant::now();
    let mut timed = Vec::new();
    for request in &variables {
        timed.push((request.what.clone(), send(&client, base_url, request).await));
    }
    let mut set = tokio::task::JoinSet::new();
    for request in panels.iter().cloned() {
        let (client, base_url) = (client.clone(), base_url.to_string());
        set.spawn(async move {
            (
                request.what.clone(),
                send(&client, &base_url, &request).await,
            )
        });
    }
    while let Some(done) = set.join_next().await {
        timed.push(done.expect("a query task"));
    }
    let wall = started.elapsed();
    let slowest = timed
        .iter()
        .max_by_key(|(_, (took, _))| *took)
        .map(|(what, (took, _))| (what.clone(), *took))
        .unwrap_or_default();
    Load {
        wall,
        slowest,
        requests: timed.len(),
        empty: timed
            .iter()
            .filter(|(_, (_, data))| !data)
            .map(|(what, _)| what.clone())
            .collect(),
    }
}

fn median(mut walls: Vec<Duration>) -> Duration {
    walls.sort();
    walls[walls.len() / 2]
}

/// VictoriaMetrics' own figure for its data on disk.
async fn data_bytes(vm: &VictoriaMetrics) -> f64 {
    let metrics = reqwest::get(format!("{}/metrics", vm.base_url()))
        .await
        .expect("vm metrics")
        .text()
        .await
        .expect("vm metrics text");
    metrics
        .lines()
        .filter(|l| l.starts_with("vm_data_size_bytes"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let days: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let recording = Recording::busy_host().await;
        let vm = VictoriaMetrics::start().await;
        let end_ms = common::now_ms() / 15_000 * 15_000;
        let start_ms = end_ms - days * DAY_MS;

        let labels = history::host_labels("dmz-a");
        let (mut samples, mut bytes) = (0u64, 0usize);
        let (mut generating, mut importing) = (Duration::ZERO, Duration::ZERO);
        let mut at = start_ms;
        while at < end_ms {
            let to = (at + CHUNK_MS).min(end_ms);
            let started = Instant::now();
            let mut body = Vec::new();
            samples += history::write_vm_import(recording.batches(at, to), &labels, CHUNK_MS, &mut body)
                .expect("import body");
            bytes += body.len();
            generating += started.elapsed();
            let started = Instant::now();
            vm.import(body).await;
            importing += started.elapsed();
            at = to;
        }
        vm.settle().await;
        // Every sample, the first (at start_ms) and the last (before end_ms) included.
        let stored = common::servers::query_at(
            &vm.base_url(),
            &format!("sum(count_over_time({{job=\"jellyfin\"}}[{days}d1m]))"),
            end_ms,
        )
        .await;
        let stored: f64 = stored
            .first()
            .and_then(|r| r["value"][1].as_str()?.parse().ok())
            .unwrap_or(0.0);
        assert_eq!(stored as u64, samples, "the whole history is searchable");
        println!(
            "history: {days} days of one host at the default intervals, {samples} samples ({:.0} per 15 s), {:.0} MiB of import JSON built in {:.1} s, imported in {:.1} s ({:.0} samples/s); VictoriaMetrics holds {:.1} MiB on disk",
            samples as f64 / (days * DAY_MS / 15_000) as f64,
            bytes as f64 / 1048576.0,
            generating.as_secs_f64(),
            importing.as_secs_f64(),
            samples as f64 / importing.as_secs_f64(),
            data_bytes(&vm).await / 1048576.0,
        );

        println!(
            "dashboard load (variables, then every target at once; VictoriaMetrics cache off; {LOADS} loads each: first / median / worst, slowest request of the worst):"
        );
        let mut totals = Vec::new();
        for dashboard in dashboards::load_all() {
            let default_ms = grafana_time::default_range_ms(&dashboard.json);
            let from = dashboard.json["time"]["from"].as_str().unwrap_or("");
            for (name, range_ms) in [
                (format!("default {from}"), default_ms),
                (format!("{days} days"), days * DAY_MS),
            ] {
                let mut loads = Vec::new();
                for _ in 0..LOADS {
                    loads.push(load(&vm.base_url(), &dashboard, range_ms, end_ms).await);
                }
                let walls: Vec<Duration> = loads.iter().map(|l| l.wall).collect();
                let worst = loads.iter().max_by_key(|l| l.wall).expect("loads");
                println!(
                    "  {:<34} {:<16} {:>3} requests  {:>7.3} s / {:>7.3} s / {:>7.3} s   slowest: {} {:.3} s",
                    dashboard.title(),
                    name,
                    worst.requests,
                    walls[0].as_secs_f64(),
                    median(walls.clone()).as_secs_f64(),
                    worst.wall.as_secs_f64(),
                    worst.slowest.0,
                    worst.slowest.1.as_secs_f64(),
                );
                if !worst.empty.is_empty() {
                    println!("    no data: {}", worst.empty.join("; "));
                }
                totals.push((name, median(walls)));
            }
        }
        for label in ["default", "days"] {
            let sum: Duration = totals
                .iter()
                .filter(|(name, _)| name.contains(label))
                .map(|(_, took)| *took)
                .sum();
            println!(
                "  all five dashboards one after another at the {} range: {:.3} s (sum of medians)",
                if label == "default" { "default".to_string() } else { format!("{days}-day") },
                sum.as_secs_f64()
            );
        }
    });
}
