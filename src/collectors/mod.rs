//! Collectors: one file per collector, named after it, behind the one-method [`Collector`]
//! trait. [`registry`] is the explicit list of them (no registration by side effect), and
//! [`run_once`] wraps every run with `jellyfin_pusher_collector_success` and
//! `jellyfin_pusher_collector_duration_seconds`, so one failing collector never blanks the others.
//!
//! | collector | file | interval |
//! |---|---|---|
//! | `system` | `system.rs` | `collect.interval` |
//! | `pusher` | `pusher.rs` (the agent's own metrics) | `collect.interval` |
//! | `sessions` | `sessions/` (snapshot gauges, play-method classification, tracker counters) | `collect.interval` |
//! | `users` | `users.rs` | 5 min |
//! | `library` | `library.rs` | 5 min |
//! | `inventory` | `inventory.rs` (paged /Items walk) | 1 h |
//! | `tasks` | `tasks.rs` (results seen kept in `state_dir/tasks.json`) | 1 min |
//! | `activity` | `activity/` (entries counted and pending playback starts kept in `state_dir/activity.json`) | 1 min |
//! | `playback_reporting` | `playback_reporting.rs` (per-play durations kept in `state_dir/playback-reporting.json`) | 1 min, when enabled |
//! | `transcode_log` | `transcode_log.rs` (offsets kept in `state_dir/transcode-log.json`) | `collect.interval`, when `dir` is set |
//! | `process` | `process.rs` (Jellyfin's process: `process_*`) | `collect.interval` |
//! | `host` | `host.rs` (`node_memory_*`, `node_network_*`) | `collect.interval` |
//!
//! `plays_seen.rs` is the one piece two collectors share: what `sessions` saw playing, which
//! `activity` classifies the server's playback starts with.

mod activity;
mod host;
mod inventory;
mod library;
mod playback_reporting;
pub mod plays_seen;
mod process;
mod pusher;
mod schedule;
mod sessions;
mod system;
mod tasks;
mod transcode_log;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::jellyfin::Client;
use crate::sample::{Batch, Family, now_ms};
use crate::state_file::StateFile;
use crate::stats::PusherStats;

pub use activity::Activity;
pub use host::Host;
pub use inventory::Inventory;
pub use library::Library;
pub use playback_reporting::PlaybackReporting;
pub use plays_seen::PlaysSeen;
pub use process::Process;
pub use pusher::Pusher;
pub use schedule::run_scheduled;
pub use sessions::Sessions;
pub use system::System;
pub use tasks::Tasks;
pub use transcode_log::TranscodeLog;
pub use users::Users;

/// What a collector returns when it fails. Anything it pushed into `out` before failing is
/// still reported (the system collector reports `jellyfin_up 0` that way).
pub type CollectError = Box<dyn std::error::Error + Send + Sync>;

#[async_trait::async_trait]
pub trait Collector: Send {
    /// The `collector` label value and the `[collectors.<name>]` config key.
    fn name(&self) -> &'static str;

    /// Appends this cycle's families to `out`.
    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError>;
}

/// A collector with the interval it runs at.
pub struct Scheduled {
    pub collector: Box<dyn Collector>,
    pub interval: Duration,
}

/// What collectors need from the rest of the agent.
#[derive(Clone)]
pub struct Deps {
    pub jellyfin: Client,
    pub stats: Arc<PusherStats>,
    pub privacy: crate::privacy::Privacy,
    /// False for `--once`: collectors read their saved state but never write it.
    pub persist_state: bool,
}

/// Every enabled collector, with its interval: the one list of collectors.
pub fn registry(config: &Config, deps: &Deps) -> Vec<Scheduled> {
    let fast = config.collect.interval;
    let mut out: Vec<Scheduled> = Vec::new();
    let system = &config.collectors.system;
    if system.enabled {
        out.push(Scheduled {
            collector: Box::new(System::new(deps.jellyfin.clone())),
            interval: system.interval.unwrap_or(fast),
        });
    }
    let sessions = &config.collectors.sessions;
    let sessions_interval = sessions.interval.unwrap_or(fast);
    let transcode_log = &config.collectors.transcode_log;
    let reads_transcode_log = transcode_log.enabled && transcode_log.dir.is_some();
    // What the sessions collector saw playing, for the activity collector's playback starts: a
    // start is seen at the next sessions poll at the latest.
    let seen = PlaysSeen::new((2 * sessions_interval + Duration::from_secs(5)).as_millis() as i64);
    if sessions.enabled {
        out.push(Scheduled {
            collector: Box::new(Sessions::new(
                deps.jellyfin.clone(),
                deps.privacy.clone(),
                sessions::SessionsSetup {
                    active_within: sessions.active_within,
                    interval: sessions_interval,
                    geoip: geoip(sessions.geoip_database.as_deref()),
                    seen: seen.clone(),
                    // One producer per family: with the log folder, the transcode log counts;
                    // with the plugin, the plugin tells watch time.
                    count_transcodes: !reads_transcode_log,
                    count_watch_time: !config.collectors.playback_reporting.enabled,
                },
            )),
            interval: sessions_interval,
        });
    }
    let slow = Duration::from_secs(300);
    if config.collectors.users.enabled {
        out.push(Scheduled {
            collector: Box::new(Users::new(deps.jellyfin.clone())),
            interval: config.collectors.users.interval.unwrap_or(slow),
        });
    }
    if config.collectors.library.enabled {
        out.push(Scheduled {
            collector: Box::new(Library::new(deps.jellyfin.clone())),
            interval: config.collectors.library.interval.unwrap_or(slow),
        });
    }
    let inventory = &config.collectors.inventory;
    if inventory.enabled {
        out.push(Scheduled {
            collector: Box::new(Inventory::new(
                deps.jellyfin.clone(),
                inventory.page_size,
                inventory.recent,
            )),
            interval: inventory.interval.unwrap_or(Duration::from_secs(3600)),
        });
    }
    if config.collectors.tasks.enabled {
        out.push(Scheduled {
            collector: Box::new(Tasks::new(
                deps.jellyfin.clone(),
                StateFile::new(&config.state_dir, "tasks.json", deps.persist_state),
            )),
            interval: config
                .collectors
                .tasks
                .interval
                .unwrap_or(Duration::from_secs(60)),
        });
    }
    if config.collectors.activity.enabled {
        out.push(Scheduled {
            collector: Box::new(Activity::new(
                deps.jellyfin.clone(),
                StateFile::new(&config.state_dir, "activity.json", deps.persist_state),
                seen,
                config.privacy.top_items,
            )),
            interval: config
                .collectors
                .activity
                .interval
                .unwrap_or(Duration::from_secs(60)),
        });
    }
    if let (true, Some(dir)) = (transcode_log.enabled, &transcode_log.dir) {
        out.push(Scheduled {
            collector: Box::new(TranscodeLog::new(
                dir.clone(),
                StateFile::new(&config.state_dir, "transcode-log.json", deps.persist_state),
            )),
            interval: transcode_log.interval.unwrap_or(fast),
        });
    }
    let plugin = &config.collectors.playback_reporting;
    if plugin.enabled {
        out.push(Scheduled {
            collector: Box::new(PlaybackReporting::new(
                deps.jellyfin.clone(),
                deps.privacy.clone(),
                StateFile::new(
                    &config.state_dir,
                    "playback-reporting.json",
                    deps.persist_state,
                ),
            )),
            interval: plugin.interval.unwrap_or(Duration::from_secs(60)),
        });
    }
    let process = &config.collectors.process;
    if process.enabled {
        out.push(Scheduled {
            collector: Box::new(Process::new(process.clone(), "/proc".into())),
            interval: process.interval.unwrap_or(fast),
        });
    }
    if config.collectors.host.enabled {
        out.push(Scheduled {
            collector: Box::new(Host::new("/proc".into())),
            interval: config.collectors.host.interval.unwrap_or(fast),
        });
    }
    // The agent's own metrics are not optional: they are how a backlog is seen.
    out.push(Scheduled {
        collector: Box::new(Pusher::new(deps.stats.clone())),
        interval: fast,
    });
    out
}

/// `--check-config`: can the GeoIP database be opened?
pub fn sessions_geoip_check(path: &std::path::Path) -> Result<(), String> {
    sessions::geoip::GeoIp::open(path).map(|_| ())
}

/// The GeoIP database, when one is configured. One that cannot be opened turns the country
/// count off with one error line (`--check-config` reports it too); sessions still run.
fn geoip(path: Option<&std::path::Path>) -> Option<sessions::geoip::GeoIp> {
    let path = path?;
    sessions::geoip::GeoIp::open(path)
        .inspect_err(|e| tracing::error!(error = %e, "no GeoIP country count"))
        .ok()
}

/// Runs one collector once and stamps the result with the time the run started.
/// Returns the batch and the error, if any, for the caller to log.
pub async fn run_once(collector: &mut dyn Collector) -> (Batch, Option<CollectError>) {
    let timestamp_ms = now_ms();
    let started = Instant::now();
    let mut families = Vec::new();
    let result = collector.collect(&mut families).await;
    let name = collector.name();
    // A family without samples says nothing (and would be a bare HELP/TYPE in --once).
    families.retain(|f| !f.samples.is_empty());
    families.push(
        Family::gauge(
            "jellyfin_pusher_collector_success",
            "1 when the collector's last run succeeded, 0 when it failed.",
        )
        .with(
            vec![("collector", name.into())],
            if result.is_ok() { 1.0 } else { 0.0 },
        ),
    );
    families.push(
        Family::gauge(
            "jellyfin_pusher_collector_duration_seconds",
            "Wall time of the collector's last run.",
        )
        .with(
            vec![("collector", name.into())],
            started.elapsed().as_secs_f64(),
        ),
    );
    (
        Batch {
            timestamp_ms,
            families,
        },
        result.err(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    #[async_trait::async_trait]
    impl Collector for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            out.push(Family::gauge("partial", "Pushed before failing.").with(vec![], 0.0));
            Err("boom".into())
        }
    }

    #[tokio::test]
    async fn a_failing_collector_keeps_its_partial_output_and_reports_success_0() {
        let (batch, err) = run_once(&mut Failing).await;
        assert_eq!(err.map(|e| e.to_string()).as_deref(), Some("boom"));
        let names: Vec<_> = batch.families.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "partial",
                "jellyfin_pusher_collector_success",
                "jellyfin_pusher_collector_duration_seconds"
            ]
        );
        assert_eq!(batch.families[1].samples[0].value, 0.0);
        assert_eq!(
            batch.families[1].samples[0].labels,
            vec![("collector", "failing".to_string())]
        );
    }
}
