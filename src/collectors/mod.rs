//! Collectors: one file per collector, named after it, behind the one-method [`Collector`]
//! trait. [`COLLECTORS`] is the one list of them, with their default intervals (no
//! registration by side effect), and [`run_once`] wraps every run with
//! `jellyfin_pusher_collector_success` and `jellyfin_pusher_collector_duration_seconds`, so one
//! failing collector never blanks the others.
//!
//! `sessions/` holds the snapshot gauges, the play-method classification and the tracker
//! counters; `inventory.rs` is the paged /Items walk; tasks, activity (`activity/`),
//! transcode_log and playback_reporting keep what they have seen in `state_dir` (the file
//! names are in [`COLLECTORS`]); `process.rs` measures Jellyfin's process (`process_*`) and
//! `host.rs` the host (`node_memory_*`, `node_network_*`); `pusher.rs` is the agent's own
//! metrics. `plays_seen.rs` is the one piece two collectors share ([`Deps::plays_seen`]): what
//! `sessions` saw playing, which `activity` classifies the server's playback starts with.

mod activity;
mod ended;
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
#[cfg(test)]
mod transcode_log_fuzz;
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
pub use system::{JellyfinDown, System};
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
    /// What the sessions collector saw playing, for the activity collector ([`plays_seen_for`]).
    pub plays_seen: PlaysSeen,
}

/// The sightings shared by the sessions and activity collectors: a start is seen at the next
/// sessions poll at the latest, so the match window is two sessions intervals and some slack.
pub fn plays_seen_for(config: &Config) -> PlaysSeen {
    let sessions = config
        .collectors
        .sessions
        .interval
        .unwrap_or(config.collect.interval);
    PlaysSeen::new((2 * sessions + Duration::from_secs(5)).as_millis() as i64)
}

impl Deps {
    /// A collector's state file in `state_dir`, written only when state persists.
    fn state_file(&self, config: &Config, name: &str) -> StateFile {
        StateFile::new(&config.state_dir, name, self.persist_state)
    }
}

/// How often a collector runs unless `[collectors.<name>] interval` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Every `collect.interval` (the fast tier).
    Cycle,
    Fixed(Duration),
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// Makes a collector from the config and what the agent shares, given the interval it will
/// run at; None when the config lacks what it needs (transcode_log without `dir`).
pub type Make = fn(&Config, &Deps, Duration) -> Option<Box<dyn Collector>>;

/// Every collector, in the order they start: name (the `collector` label and the
/// `[collectors.<name>]` config key), default interval, constructor. Adding a collector means
/// its file, a row here and its `[collectors.<name>]` table in the config.
pub const COLLECTORS: [(&str, Every, Make); 12] = [
    ("system", Every::Cycle, |_, d, _| {
        Some(Box::new(System::new(d.jellyfin.clone())))
    }),
    ("sessions", Every::Cycle, |c, d, every| {
        let s = &c.collectors.sessions;
        let log = &c.collectors.transcode_log;
        let setup = sessions::SessionsSetup {
            active_within: s.active_within,
            interval: every,
            geoip: geoip(s.geoip_database.as_deref()),
            seen: d.plays_seen.clone(),
            // One producer per family: with the log folder the transcode log counts
            // transcode starts; with the plugin, the plugin tells watch time.
            count_transcodes: !(log.enabled && log.dir.is_some()),
            count_watch_time: !c.collectors.playback_reporting.enabled,
        };
        Some(Box::new(Sessions::new(
            d.jellyfin.clone(),
            d.privacy.clone(),
            setup,
        )))
    }),
    ("users", Every::Fixed(minutes(5)), |_, d, _| {
        Some(Box::new(Users::new(d.jellyfin.clone())))
    }),
    ("library", Every::Fixed(minutes(5)), |_, d, _| {
        Some(Box::new(Library::new(d.jellyfin.clone())))
    }),
    ("inventory", Every::Fixed(minutes(60)), |c, d, _| {
        let i = &c.collectors.inventory;
        Some(Box::new(Inventory::new(d.jellyfin.clone(), i)))
    }),
    ("tasks", Every::Fixed(minutes(1)), |c, d, _| {
        let state = d.state_file(c, "tasks.json");
        Some(Box::new(Tasks::new(d.jellyfin.clone(), state)))
    }),
    ("activity", Every::Fixed(minutes(1)), |c, d, _| {
        let state = d.state_file(c, "activity.json");
        let (seen, top_items) = (d.plays_seen.clone(), c.privacy.top_items);
        Some(Box::new(Activity::new(
            d.jellyfin.clone(),
            state,
            seen,
            top_items,
        )))
    }),
    ("transcode_log", Every::Cycle, |c, d, _| {
        let dir = c.collectors.transcode_log.dir.clone()?;
        let state = d.state_file(c, "transcode-log.json");
        Some(Box::new(TranscodeLog::new(dir, state)))
    }),
    ("process", Every::Cycle, |c, _, _| {
        let process = c.collectors.process.clone();
        let (proc_root, cgroup_root) = ("/proc".into(), "/sys/fs/cgroup".into());
        Some(Box::new(Process::new(process, proc_root, cgroup_root)))
    }),
    ("host", Every::Cycle, |_, _, _| {
        Some(Box::new(Host::new("/proc".into())))
    }),
    // Off unless enabled (its config default): only for servers that run the plugin.
    ("playback_reporting", Every::Fixed(minutes(1)), |c, d, _| {
        let state = d.state_file(c, "playback-reporting.json");
        Some(Box::new(PlaybackReporting::new(
            d.jellyfin.clone(),
            d.privacy.clone(),
            state,
        )))
    }),
    // The agent's own metrics are not optional (no config table): they are how a backlog is
    // seen.
    ("pusher", Every::Cycle, |c, d, _| {
        Some(Box::new(Pusher::new(
            d.stats.clone(),
            c.buffer.max_size.as_u64(),
        )))
    }),
];

/// Every enabled collector of [`COLLECTORS`], with the interval it runs at.
pub fn registry(config: &Config, deps: &Deps) -> Vec<Scheduled> {
    let toggles = config.collectors.toggles();
    COLLECTORS
        .iter()
        .filter_map(|&(name, every, make)| {
            let (enabled, interval) = toggles
                .iter()
                .find(|t| t.0 == name)
                .map_or((true, None), |t| (t.1, t.2));
            if !enabled {
                return None;
            }
            let interval = interval.unwrap_or(match every {
                Every::Cycle => config.collect.interval,
                Every::Fixed(interval) => interval,
            });
            Some(Scheduled {
                collector: make(config, deps, interval)?,
                interval,
            })
        })
        .collect()
}

/// `--check-config`: can the GeoIP database be opened?
pub fn sessions_geoip_check(path: &std::path::Path) -> Result<(), sessions::geoip::GeoIpError> {
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
    crate::labels::bound(&mut families);
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

    #[test]
    fn the_table_and_the_config_name_the_same_collectors() {
        let table: Vec<&str> = COLLECTORS.iter().map(|row| row.0).collect();
        let config: Vec<&str> = crate::config::CollectorsConfig::default()
            .toggles()
            .iter()
            .map(|t| t.0)
            .collect();
        // pusher is always on and has no config table.
        assert_eq!(table[..table.len() - 1], config[..]);
        assert_eq!(table.last(), Some(&"pusher"));
    }

    #[test]
    fn the_registry_runs_the_table_at_its_default_intervals_unless_the_config_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        let toml = format!(
            "state_dir = \"{0}\"\n[jellyfin]\nurl = \"https://jellyfin.invalid/\"\n\
             token_file = \"{0}/token\"\n[collect]\ninterval = \"20s\"\n\
             [collectors.tasks]\ninterval = \"2m\"\n[collectors.host]\nenabled = false\n",
            dir.path().display()
        );
        let config = Config::from_toml(&toml, std::path::Path::new("t.toml"), &|_| None).unwrap();
        let token = crate::secret::read_secret_file(&dir.path().join("token"), "t").unwrap();
        let deps = Deps {
            jellyfin: Client::new(
                config.jellyfin.url.clone(),
                &token,
                config.jellyfin.timeout,
                1,
            )
            .unwrap(),
            stats: Arc::new(PusherStats::new([])),
            privacy: crate::privacy::Privacy::with_salt(config.privacy.user_label, [0; 16]),
            persist_state: false,
            plays_seen: plays_seen_for(&config),
        };
        let running: Vec<(&str, u64)> = registry(&config, &deps)
            .iter()
            .map(|s| (s.collector.name(), s.interval.as_secs()))
            .collect();
        // transcode_log has no `dir`, host is off; tasks runs at its configured interval.
        assert_eq!(
            running,
            [
                ("system", 20),
                ("sessions", 20),
                ("users", 300),
                ("library", 300),
                ("inventory", 3600),
                ("tasks", 120),
                ("activity", 60),
                ("process", 20),
                ("pusher", 20),
            ]
        );
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

    /// labels::RULES counts the `collector` label's values; it must follow this table.
    #[test]
    fn the_label_bounds_know_every_collector() {
        let bound =
            crate::labels::rule("jellyfin_pusher_collector_success", "collector").map(|r| r.bound);
        assert_eq!(bound, Some(crate::labels::Bound::Fixed(COLLECTORS.len())));
    }

    /// A server that reports a new codec on every stream: the runner folds them into `other`.
    struct Hostile;

    #[async_trait::async_trait]
    impl Collector for Hostile {
        fn name(&self) -> &'static str {
            "hostile"
        }
        async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            let mut f = Family::gauge("jellyfin_transcode_active", "t");
            for i in 0..1000 {
                f.push(
                    vec![
                        ("hw_accel", "vaapi".into()),
                        ("video_codec", format!("x{i}")),
                    ],
                    1.0,
                );
            }
            f.push(
                vec![("hw_accel", "vaapi".into()), ("video_codec", "h264".into())],
                2.0,
            );
            out.push(f);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_runner_bounds_every_label() {
        let (batch, _) = run_once(&mut Hostile).await;
        let samples: Vec<(String, f64)> = batch.families[0]
            .samples
            .iter()
            .map(|s| (s.labels[1].1.clone(), s.value))
            .collect();
        assert_eq!(
            samples,
            [("other".to_string(), 1000.0), ("h264".into(), 2.0)]
        );
    }
}
