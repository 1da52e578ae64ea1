//! History: the agent's own output over a time span, at the collectors' default intervals.
//!
//! Nothing here writes a series by hand. [`Recording::busy_host`] runs the library's own
//! collectors ([`collectors::registry`] and [`collectors::run_once`], the agent's code path,
//! with the intervals of the COLLECTORS table) three times against the fake Jellyfin serving
//! the real captures, with playback, a running task, new activity and a failed transcode
//! happening after the first run. [`Recording::batches`] then replays that over any span:
//! every collector at its own interval, each cycle the last run's families with
//! - gauges as recorded (a steady server);
//! - counters advancing once per cycle of their collector (so they never reset, and a counter
//!   that moved in the real runs keeps moving): counters of seconds and bytes by what they
//!   accrued per second between the last two runs times the interval (watch time, CPU,
//!   traffic), event counters by their average rise per recorded run;
//! - the two gauges whose value is the cycle's own time ([`FOLLOW_THE_CLOCK`]) moved with it.
//!
//! The runner's last samples of ended series (collectors/ended.rs, a 0 or a staleness marker
//! once) are not recorded: in a steady replay nothing ends.
//!
//! The batches are produced one by one (nothing is held for the span), so 30 days of one host
//! cost the time to build them, not memory. Two ways out:
//! - [`write_vm_import`]: VictoriaMetrics' JSON-lines import format (`POST /api/v1/import`),
//!   one line per series per chunk of time;
//! - [`push_remote_write`] of [`for_hosts`]: snappy protobuf bodies made by the agent's own
//!   encoder, posted in time order, which a Prometheus head accepts (every sample newer than
//!   the head's newest minus an hour) and VictoriaMetrics too.
//!
//! The static labels (job, instance) are given at output time, so one recording makes any
//! number of hosts.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use jellyfin_pusher::collectors::{self, Deps};
use jellyfin_pusher::config::Config;
use jellyfin_pusher::privacy::Privacy;
use jellyfin_pusher::queue::Block;
use jellyfin_pusher::remote_write::{encode, merge};
use jellyfin_pusher::sample::{Batch, Family, Kind, now_ms};
use jellyfin_pusher::stats::PusherStats;

use super::agent::AgentDir;
use super::fake_jellyfin::FakeJellyfin;
use super::fixture;
use super::host::{JellyfinHost, two_plays_start};

/// Gauges whose value is the time of the cycle that sent them (an empty buffer's oldest
/// sample is "now"; a push succeeds every cycle): replayed, they keep their distance to the
/// cycle's time instead of their recorded value.
pub const FOLLOW_THE_CLOCK: [&str; 2] = [
    "jellyfin_pusher_buffer_oldest_sample_timestamp_seconds",
    "jellyfin_pusher_last_push_success_timestamp_seconds",
];

/// The remote the recorded agent pushes to (its `remote` label).
pub const REMOTE: &str = "tiger";

/// How many times every collector runs while recording.
const RUNS: u32 = 3;

/// One collector as recorded.
struct Recorded {
    name: &'static str,
    interval_ms: i64,
    /// The last run's families: what every replayed cycle sends.
    families: Vec<Family>,
    /// Per family, per sample: the rise per replayed cycle (counters), else 0.
    rises: Vec<Vec<f64>>,
    recorded_at_ms: i64,
}

/// Real runs of every collector, ready to be replayed over any span.
pub struct Recording {
    collectors: Vec<Recorded>,
    /// The smallest step on which every collector's cycles fall (15 s by default).
    tick_ms: i64,
}

impl Recording {
    /// Records a busy host: the fake Jellyfin serving the captures (200 generated items in
    /// the films library, a scheduled task running), idle at the first run; after it two
    /// plays start (a transcode and a direct play from the 10.11 capture), the server
    /// logs them with a failed login and a lock-out, and a transcode fails in Jellyfin's log.
    /// Every collector the agent has runs, at its default interval (the process collector on a
    /// stand-in process, the host collector on this machine's /proc).
    pub async fn busy_host() -> Recording {
        let jellyfin = FakeJellyfin::start("").await;
        jellyfin.route("/Sessions", fixture("sessions.idle.10.11.11.json"));
        jellyfin.generate_items("f137a2dd21bbc1b99aa5c0f6bf02a805", 200);
        let mut tasks: serde_json::Value =
            serde_json::from_str(&fixture("scheduled-tasks.10.11.11.json")).expect("tasks");
        tasks[0]["State"] = "Running".into();
        tasks[0]["CurrentProgressPercentage"] = 42.5.into();
        jellyfin.route("/ScheduledTasks", tasks.to_string());
        let host = JellyfinHost::new();
        // The host's optional collectors on, every interval left at its default.
        let on = host
            .collectors_toml()
            .replace("[collectors.activity]\ninterval = \"1s\"\n", "");
        let dir = AgentDir::new(
            &jellyfin.url(),
            &[(REMOTE, "http://127.0.0.1:9/api/v1/write")],
            "15s",
            &on,
        );
        let config = Config::load(&dir.config()).expect("the recording's config");
        Recording::record(&config, || {
            two_plays_start(&jellyfin);
            host.failing_transcode();
        })
        .await
    }

    /// Runs every collector `config` enables [`RUNS`] times, in the table's order, as the
    /// agent's pipeline would (the pusher's counters fed the same way); `between` changes the
    /// world after the first run. The remotes of `config` are counted as having accepted each run.
    pub async fn record(config: &Config, between: impl FnOnce()) -> Recording {
        let remotes: Vec<&str> = config
            .remote_write
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let stats = Arc::new(PusherStats::new(remotes.iter().copied()));
        let deps = Deps {
            jellyfin: jellyfin_pusher::app::jellyfin_client(config).expect("jellyfin client"),
            stats: stats.clone(),
            // The salt the recording's state_dir has or gets, as the agent makes it.
            privacy: Privacy::load(config.privacy.user_label, &config.state_dir, true)
                .expect("user-label salt"),
            persist_state: false,
            plays_seen: collectors::plays_seen_for(config),
        };
        let mut scheduled = collectors::registry(config, &deps);
        let mut run = async |stats: &PusherStats| {
            let mut batches = Vec::new();
            for s in &mut scheduled {
                let (batch, error) = collectors::run_once(s.collector.as_mut()).await;
                assert!(
                    error.is_none(),
                    "collector {} failed while recording: {error:?}",
                    s.collector.name()
                );
                stats.collected(batch.sample_count() as u64);
                for remote in &remotes {
                    let remote = stats.remote(remote).expect("a configured remote");
                    remote.request("204");
                    remote.delivered(batch.sample_count() as u64, now_ms());
                }
                batches.push(batch);
            }
            batches
        };
        let first = run(&stats).await;
        between();
        // Watch time is credited between two sightings of a play: a third run, and the clock
        // moving between them.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let middle = run(&stats).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let last = run(&stats).await;
        let collectors = scheduled
            .iter()
            .zip(first.iter().zip(&middle).zip(last))
            .map(|(s, ((first, middle), last))| {
                let interval_ms = s.interval.as_millis() as i64;
                Recorded {
                    name: s.collector.name(),
                    interval_ms,
                    rises: rises([first, middle, &last], interval_ms),
                    recorded_at_ms: last.timestamp_ms,
                    families: last.families,
                }
            })
            .collect::<Vec<_>>();
        let tick_ms = collectors.iter().map(|c| c.interval_ms).fold(0, gcd);
        Recording {
            collectors,
            tick_ms,
        }
    }

    /// Each recorded collector's name and interval, in the table's order.
    pub fn intervals(&self) -> Vec<(&'static str, Duration)> {
        self.collectors
            .iter()
            .map(|c| (c.name, Duration::from_millis(c.interval_ms as u64)))
            .collect()
    }

    /// Every cycle from `start_ms` (every collector runs then) up to `end_ms` (excluded), in
    /// time order: one batch per collector run, built when asked for.
    pub fn batches(&self, start_ms: i64, end_ms: i64) -> impl Iterator<Item = Batch> + '_ {
        let span = (end_ms - start_ms).max(0);
        let ticks = (span + self.tick_ms - 1) / self.tick_ms;
        (0..ticks).flat_map(move |tick| {
            let at_ms = start_ms + tick * self.tick_ms;
            let since = at_ms - start_ms;
            self.collectors
                .iter()
                .filter(move |c| since % c.interval_ms == 0)
                .map(move |c| c.cycle(since / c.interval_ms, at_ms))
        })
    }
}

impl Recorded {
    /// The `n`th replayed cycle (0 is the first), stamped `at_ms`.
    fn cycle(&self, n: i64, at_ms: i64) -> Batch {
        let shift = (at_ms - self.recorded_at_ms) as f64 / 1000.0;
        let families = self
            .families
            .iter()
            .zip(&self.rises)
            .map(|(family, rises)| {
                let mut family = family.clone();
                let follows = FOLLOW_THE_CLOCK.contains(&family.name);
                for (sample, rise) in family.samples.iter_mut().zip(rises) {
                    if follows {
                        sample.value += shift;
                    } else {
                        sample.value += n as f64 * rise;
                    }
                }
                family
            })
            .collect();
        Batch {
            timestamp_ms: at_ms,
            families,
        }
    }
}

/// Per family and sample of the last run: how much a counter rises per replayed cycle
/// (gauges: 0). A counter of seconds or bytes accrues with time: its rise between the last
/// two runs, scaled from the time between them to the collector's interval. Any other counter
/// counts events: its average rise per run over the recording (the events happen once, after
/// the first run). A series that was not there yet rose from 0; a counter that fell, never.
fn rises(runs: [&Batch; RUNS as usize], interval_ms: i64) -> Vec<Vec<f64>> {
    let [first, .., previous, last] = runs;
    let value = |batch: &Batch, name: &str, labels: &[(&str, String)]| {
        batch
            .families
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| &f.samples)
            .find(|s| s.labels == labels)
            .map_or(0.0, |s| s.value)
    };
    let elapsed_ms = (last.timestamp_ms - previous.timestamp_ms).max(1);
    last.families
        .iter()
        .map(|f| {
            let by_time = f.name.ends_with("_seconds_total") || f.name.ends_with("_bytes_total");
            f.samples
                .iter()
                .map(|s| match f.kind {
                    Kind::Gauge => 0.0,
                    Kind::Counter if by_time => {
                        let rise = (s.value - value(previous, f.name, &s.labels)).max(0.0);
                        rise * interval_ms as f64 / elapsed_ms as f64
                    }
                    Kind::Counter => {
                        let rise = (s.value - value(first, f.name, &s.labels)).max(0.0);
                        rise / f64::from(RUNS - 1)
                    }
                })
                .collect()
        })
        .collect()
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The static labels of a host: `job="jellyfin"`, `instance`.
pub fn host_labels(instance: &str) -> Vec<(String, String)> {
    vec![
        ("job".into(), "jellyfin".into()),
        ("instance".into(), instance.into()),
    ]
}

/// Writes `batches` in VictoriaMetrics' import format (`POST /api/v1/import`, JSON lines of
/// `{"metric":{…},"values":[…],"timestamps":[…]}`), `static_labels` on every series: the
/// samples of each `chunk_ms` of time (by batch timestamp) go out together, one line per
/// series, so only one chunk is held in memory. Returns the number of samples written. A value
/// JSON cannot carry (NaN, ±Inf) is an error naming the series, never dropped.
pub fn write_vm_import(
    batches: impl Iterator<Item = Batch>,
    static_labels: &[(String, String)],
    chunk_ms: i64,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    let mut chunk: HashMap<Vec<u8>, (Vec<f64>, Vec<i64>)> = HashMap::new();
    let mut key = Vec::new();
    let mut chunk_start = None;
    let mut written = 0;
    for batch in batches {
        let start = *chunk_start.get_or_insert(batch.timestamp_ms);
        if batch.timestamp_ms - start >= chunk_ms {
            written += flush(&mut chunk, out)?;
            chunk_start = Some(batch.timestamp_ms);
        }
        for family in &batch.families {
            for sample in &family.samples {
                key.clear();
                metric_json(&mut key, family.name, static_labels, &sample.labels);
                if !sample.value.is_finite() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: value {} has no JSON form",
                            String::from_utf8_lossy(&key),
                            sample.value
                        ),
                    ));
                }
                // Looked up by reference first: a series' key is allocated once per chunk.
                let series = match chunk.get_mut(key.as_slice()) {
                    Some(series) => series,
                    None => chunk.entry(key.clone()).or_default(),
                };
                series.0.push(sample.value);
                series.1.push(batch.timestamp_ms);
            }
        }
    }
    written += flush(&mut chunk, out)?;
    Ok(written)
}

/// Appends `{"__name__":…,"label":"value",…}` to `out`, a sample's own label winning over a
/// static one.
fn metric_json(
    out: &mut Vec<u8>,
    name: &str,
    static_labels: &[(String, String)],
    labels: &[(&'static str, String)],
) {
    // Writing JSON into a Vec cannot fail.
    let quoted = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(out, s);
    };
    out.extend_from_slice(b"{\"__name__\":");
    quoted(out, name);
    let statics = static_labels
        .iter()
        .filter(|(k, _)| !labels.iter().any(|(own, _)| own == k))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (k, v) in statics.chain(labels.iter().map(|(k, v)| (*k, v.as_str()))) {
        out.push(b',');
        quoted(out, k);
        out.push(b':');
        quoted(out, v);
    }
    out.push(b'}');
}

fn flush(
    chunk: &mut HashMap<Vec<u8>, (Vec<f64>, Vec<i64>)>,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    let mut samples = 0;
    for (metric, (values, timestamps)) in std::mem::take(chunk) {
        samples += values.len() as u64;
        out.write_all(b"{\"metric\":")?;
        out.write_all(&metric)?;
        out.write_all(b",\"values\":")?;
        serde_json::to_writer(&mut *out, &values)?;
        out.write_all(b",\"timestamps\":")?;
        serde_json::to_writer(&mut *out, &timestamps)?;
        out.write_all(b"}\n")?;
    }
    Ok(samples)
}

/// Posts `blocks` (batches [`encode`]d with a host's labels, e.g. by [`for_hosts`]) to a
/// remote-write `url` (Prometheus with `--web.enable-remote-write-receiver`, or
/// VictoriaMetrics), in the order given, `per_request` blocks merged into one body as the
/// agent's sender merges them. Returns the number of samples accepted; a refused request
/// panics with the receiver's answer.
pub async fn push_remote_write(
    url: &str,
    blocks: impl Iterator<Item = Block>,
    per_request: usize,
) -> u64 {
    let client = reqwest::Client::new();
    let mut pending: Vec<Block> = Vec::with_capacity(per_request);
    let mut sent = 0;
    let mut blocks = blocks.peekable();
    while let Some(block) = blocks.next() {
        pending.push(block);
        if pending.len() < per_request && blocks.peek().is_some() {
            continue;
        }
        let body = merge(&pending).expect("the encoder's own blocks");
        let samples: u64 = pending.iter().map(|b| u64::from(b.samples)).sum();
        let from = pending
            .iter()
            .map(|b| b.min_timestamp_ms)
            .min()
            .unwrap_or(0);
        let to = pending
            .iter()
            .map(|b| b.max_timestamp_ms)
            .max()
            .unwrap_or(0);
        pending.clear();
        let answer = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = answer.status();
        assert!(
            status.is_success(),
            "{url} refused the history from {from} to {to} ms ({} s before now): {status} {}",
            (now_ms() - from) / 1000,
            answer.text().await.unwrap_or_default()
        );
        sent += samples;
    }
    sent
}

/// Every batch encoded once per host whose static labels `hosts` gives for its timestamp
/// (None: that host sent nothing then, e.g. during its outage), hosts interleaved cycle by
/// cycle so that the blocks stay in time order.
pub fn for_hosts<'a>(
    batches: impl Iterator<Item = Batch> + 'a,
    hosts: impl Fn(i64) -> Vec<Vec<(String, String)>> + 'a,
) -> impl Iterator<Item = Block> + 'a {
    batches.flat_map(move |batch| {
        hosts(batch.timestamp_ms)
            .iter()
            .map(|labels| encode(&batch, labels))
            .collect::<Vec<_>>()
    })
}
