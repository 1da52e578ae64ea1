//! `jellyfin-pusher status`: what the state dir says about delivery, judged against fixed
//! thresholds, as text for a human or JSON for a script.
//!
//! Unhealthy (exit 1) when:
//! - a remote has not delivered for more than [`STALE_INTERVALS`] × `collect.interval`
//!   (counted from the agent's start when it never delivered), or
//! - a collector failed its last [`FAILING_RUNS`] runs in a row, or
//! - there is no status file (the agent never ran with this state_dir), or it is empty or
//!   damaged (a power cut while the agent rewrote it: it is written without fsyncs, see
//!   [`super`]; the running agent rewrites it within [`super::MAX_WRITE_PERIOD`]).
//!
//! When the agent is not running, its last snapshot is shown as it was; the age of the last
//! success keeps growing, so a stopped agent turns unhealthy after the same threshold.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{FILE, RemoteSnapshot, Snapshot};
use crate::config::Config;
use crate::queue::inspect::{self, Backlog};
use crate::state_file::StateFile;
use crate::stats::{CollectorHealth, LastError};

/// A remote that has not delivered for this many collection intervals is unhealthy: every
/// interval produces samples, so a healthy remote delivers at least once per interval, and
/// a few missed ones ride out a receiver's restart.
pub const STALE_INTERVALS: u32 = 5;
/// A collector whose last runs all failed, this many in a row, is unhealthy (one failure is
/// a blip; three is a pattern worth a look).
pub const FAILING_RUNS: u64 = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub now_ms: i64,
    /// Whether an agent holds the state dir's lock now.
    pub agent_running: bool,
    /// When the agent last wrote its status file; None when there is none.
    pub status_written_ms: Option<i64>,
    pub stale_after_seconds: u64,
    pub remotes: Vec<RemoteReport>,
    pub collectors: Vec<CollectorReport>,
    /// Why the exit status is 1; empty when healthy.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteReport {
    pub name: String,
    pub backlog: Backlog,
    /// Age of the oldest buffered sample, for scripts that alert on it.
    pub oldest_sample_age_seconds: Option<u64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<LastError>,
    pub samples_sent: u64,
    pub dropped: BTreeMap<String, u64>,
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorReport {
    pub name: String,
    #[serde(flatten)]
    pub health: CollectorHealth,
    pub healthy: bool,
}

/// Reads the state dir of `config` and judges it.
pub fn gather(config: &Config, now_ms: i64) -> Result<Report, String> {
    let snapshot = match StateFile::new(&config.state_dir, FILE, false).load() {
        Some(snapshot) => Ok(snapshot),
        None if std::fs::symlink_metadata(config.state_dir.join(FILE)).is_ok() => {
            Err(NoSnapshot::Damaged)
        }
        None => Err(NoSnapshot::Missing),
    };
    let mut backlogs = BTreeMap::new();
    for remote in &config.remote_write {
        let dir = config.queue_dir(&remote.name);
        let backlog = inspect::backlog(&dir)
            .map_err(|e| format!("cannot read the buffer {}: {e}", dir.display()))?;
        backlogs.insert(remote.name.clone(), backlog);
    }
    Ok(judge(
        config,
        now_ms,
        agent_running(&config.state_dir),
        snapshot.as_ref().map_err(|e| *e),
        &backlogs,
    ))
}

/// Why there is no snapshot to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSnapshot {
    /// The agent never ran with this state_dir.
    Missing,
    /// There, but empty, damaged or unreadable.
    Damaged,
}

/// True when a process holds the agent's lock on `state_dir` (see `app::StateLock`).
fn agent_running(state_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(state_dir.join("lock")) else {
        return false;
    };
    matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

/// The verdict, from what was read; no I/O, so the thresholds are tested directly.
pub fn judge(
    config: &Config,
    now_ms: i64,
    agent_running: bool,
    snapshot: Result<&Snapshot, NoSnapshot>,
    backlogs: &BTreeMap<String, Backlog>,
) -> Report {
    let stale_after = config.collect.interval * STALE_INTERVALS;
    let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    let mut problems = Vec::new();
    match snapshot {
        Ok(_) => {}
        Err(NoSnapshot::Missing) => problems.push(format!(
            "no {FILE} in {}: the agent has not run with this state_dir",
            config.state_dir.display()
        )),
        Err(NoSnapshot::Damaged) => problems.push(format!(
            "{FILE} in {} is empty or damaged (a power cut while the agent rewrote it leaves it so): \
             the running agent rewrites it at least every {}s",
            config.state_dir.display(),
            super::MAX_WRITE_PERIOD.as_secs()
        )),
    }
    let snapshot = snapshot.ok();
    let mut remotes = Vec::new();
    for remote in &config.remote_write {
        let seen = snapshot
            .and_then(|s| s.remotes.get(&remote.name))
            .cloned()
            .unwrap_or_default();
        let RemoteSnapshot {
            last_success_ms,
            last_error,
            samples_sent,
            dropped,
        } = seen;
        let since = last_success_ms.or(snapshot.map(|s| s.started_ms));
        let healthy = match since {
            Some(since) if now_ms - since <= stale_ms => true,
            Some(since) => {
                let what = if last_success_ms.is_some() {
                    "has not delivered for"
                } else {
                    "has delivered nothing in the"
                };
                let error = last_error
                    .as_ref()
                    .map(|e| format!("; last error: {}", e.message))
                    .unwrap_or_default();
                problems.push(format!(
                    "remote {:?} {what} {} (more than {STALE_INTERVALS} × collect.interval = {}){error}",
                    remote.name,
                    ago(now_ms, since),
                    humantime::format_duration(stale_after),
                ));
                false
            }
            None => false,
        };
        let backlog = backlogs.get(&remote.name).copied().unwrap_or_default();
        remotes.push(RemoteReport {
            name: remote.name.clone(),
            backlog,
            oldest_sample_age_seconds: backlog
                .oldest_sample_ms
                .map(|ms| u64::try_from((now_ms - ms) / 1000).unwrap_or(0)),
            last_success_ms,
            last_error,
            samples_sent,
            dropped,
            healthy,
        });
    }
    let mut collectors = Vec::new();
    for (name, health) in snapshot.map(|s| s.collectors.clone()).unwrap_or_default() {
        let healthy = health.failures_in_a_row < FAILING_RUNS;
        if !healthy {
            problems.push(format!(
                "collector {name:?} failed its last {} runs: {}",
                health.failures_in_a_row,
                health
                    .last_error
                    .as_ref()
                    .map_or("(no message)", |e| e.message.as_str())
            ));
        }
        collectors.push(CollectorReport {
            name,
            health,
            healthy,
        });
    }
    Report {
        now_ms,
        agent_running,
        status_written_ms: snapshot.map(|s| s.written_ms),
        stale_after_seconds: stale_after.as_secs(),
        remotes,
        collectors,
        problems,
    }
}

/// "1m 5s ago", to the second.
fn ago(now_ms: i64, then_ms: i64) -> String {
    let seconds = u64::try_from((now_ms - then_ms) / 1000).unwrap_or(0);
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// "2026-11-25T19:40:00Z (1m 5s ago)".
fn when(now_ms: i64, at_ms: Option<i64>) -> String {
    let Some(at_ms) = at_ms else {
        return "never".into();
    };
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(at),
        ago(now_ms, at_ms)
    )
}

fn error_line(now_ms: i64, error: &Option<LastError>) -> String {
    match error {
        Some(e) => format!("{}: {}", when(now_ms, Some(e.at_ms)), e.message),
        None => "none".into(),
    }
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The human-readable form.
    pub fn text(&self) -> String {
        let now = self.now_ms;
        let mut out = String::new();
        let agent = if self.agent_running {
            "running"
        } else {
            "not running"
        };
        out.push_str(&format!(
            "agent: {agent}; status written {}\n",
            when(now, self.status_written_ms)
        ));
        for r in &self.remotes {
            let b = &r.backlog;
            let oldest = b.oldest_sample_ms.map_or(String::new(), |ms| {
                format!(", oldest sample {} old", ago(now, ms))
            });
            let dropped: Vec<String> = r.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!(
                "remote {}: {}\n  backlog: {} blocks, {} bytes, {} samples{oldest}\n  last success: {}\n  last error: {}\n  samples sent: {} since the agent started; dropped: {}\n",
                r.name,
                if r.healthy { "OK" } else { "NOT DELIVERING" },
                b.blocks,
                b.bytes,
                b.samples,
                when(now, r.last_success_ms),
                error_line(now, &r.last_error),
                r.samples_sent,
                if dropped.is_empty() { "none".into() } else { dropped.join(", ") },
            ));
        }
        for c in &self.collectors {
            out.push_str(&format!(
                "collector {}: {}\n  last success: {}\n  last error: {}\n",
                c.name,
                if c.healthy { "OK" } else { "FAILING" },
                when(now, c.health.last_success_ms),
                error_line(now, &c.health.last_error),
            ));
        }
        if self.problems.is_empty() {
            out.push_str("healthy\n");
        } else {
            out.push_str("problems:\n");
            for p in &self.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::from_toml(
            "state_dir = \"/nonexistent\"\n[jellyfin]\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"/t\"\n\
             [collect]\ninterval = \"10s\"\n\
             [[remote_write]]\nname = \"a\"\nurl = \"http://127.0.0.1:2/api/v1/write\"\n",
            Path::new("t.toml"),
            &|_| None,
        )
        .unwrap()
    }

    fn snapshot(last_success_ms: Option<i64>, failures: u64) -> Snapshot {
        Snapshot {
            version: 1,
            pid: 1,
            started_ms: 0,
            written_ms: 100_000,
            remotes: BTreeMap::from([(
                "a".to_string(),
                RemoteSnapshot {
                    last_success_ms,
                    last_error: Some(LastError {
                        at_ms: 90_000,
                        message: "HTTP 401: unauthorized".into(),
                    }),
                    ..Default::default()
                },
            )]),
            collectors: BTreeMap::from([(
                "system".to_string(),
                CollectorHealth {
                    last_success_ms: Some(1),
                    last_error: Some(LastError {
                        at_ms: 2,
                        message: "GET System/Info: 500".into(),
                    }),
                    failures_in_a_row: failures,
                },
            )]),
        }
    }

    #[test]
    fn a_remote_is_stale_after_five_intervals_and_a_collector_after_three_failures() {
        let c = config();
        let none = BTreeMap::new();
        // 50 s (5 × 10 s) since the last success: still fine; 51 s: not.
        let ok = judge(&c, 150_000, true, Ok(&snapshot(Some(100_000), 2)), &none);
        assert!(ok.healthy(), "{:?}", ok.problems);
        let stale = judge(&c, 151_000, true, Ok(&snapshot(Some(100_000), 2)), &none);
        assert_eq!(stale.problems.len(), 1, "{:?}", stale.problems);
        assert!(
            stale.problems[0].contains("has not delivered for 51s")
                && stale.problems[0].contains("HTTP 401: unauthorized"),
            "{}",
            stale.problems[0]
        );
        // Never delivered: counted from the start (0).
        let never = judge(&c, 60_000, false, Ok(&snapshot(None, 0)), &none);
        assert!(
            never.problems[0].contains("delivered nothing"),
            "{:?}",
            never.problems
        );
        let failing = judge(&c, 100_000, true, Ok(&snapshot(Some(99_000), 3)), &none);
        assert_eq!(failing.problems.len(), 1);
        assert!(
            failing.problems[0]
                .contains("collector \"system\" failed its last 3 runs: GET System/Info: 500")
        );
        let missing = judge(&c, 100_000, false, Err(NoSnapshot::Missing), &none);
        assert!(
            missing.problems[0].contains("no status.json"),
            "{:?}",
            missing.problems
        );
    }

    /// A power cut may leave the unsynced snapshot empty or cut short: `status` names the file
    /// and says why, instead of claiming the agent never ran; a whole one reads back.
    #[test]
    fn an_empty_or_torn_status_file_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.state_dir = dir.path().to_path_buf();
        let file = StateFile::new(dir.path(), FILE, true);
        let whole = snapshot(Some(100_000), 0);
        file.save_snapshot(&whole).unwrap();
        let bytes = std::fs::read(dir.path().join(FILE)).unwrap();
        let report = gather(&c, 101_000).unwrap();
        assert!(report.healthy(), "{:?}", report.problems);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(dir.path().join(FILE), &bytes[..cut]).unwrap();
            let report = gather(&c, 101_000).unwrap();
            assert_eq!(
                report.problems.len(),
                1,
                "cut at {cut}: {:?}",
                report.problems
            );
            assert!(
                report.problems[0].contains("status.json in")
                    && report.problems[0].contains("is empty or damaged"),
                "cut at {cut}: {}",
                report.problems[0]
            );
        }
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        let report = gather(&c, 101_000).unwrap();
        assert!(
            report.problems[0].contains("no status.json"),
            "{:?}",
            report.problems
        );
    }
}
