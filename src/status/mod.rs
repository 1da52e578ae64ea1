//! What `jellyfin-pusher status` reads: the agent writes a snapshot of its health to
//! `<state_dir>/status.json` once per collection interval ([`write_period`]) and when it stops (replaced whole, but
//! without fsyncs: [`crate::state_file::StateFile::save_snapshot`]; nothing needs it after a
//! power cut, which may leave it empty or older, and `status` says so), and `status` combines it with the backlog read from the queue files
//! ([`crate::queue::inspect`]). So `status` works whether the agent runs or not, and needs
//! no connection to it.

pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::sample::now_ms;
use crate::state_file::StateFile;
use crate::stats::{CollectorHealth, LastError, PusherStats};

/// The file under `state_dir`.
pub const FILE: &str = "status.json";
/// How often the running agent rewrites the file at the most and at the least.
pub const MIN_WRITE_PERIOD: Duration = Duration::from_secs(5);
pub const MAX_WRITE_PERIOD: Duration = Duration::from_secs(15);

/// How often the running agent rewrites the file: once per collection interval, since what it
/// reports (samples sent, the last success) moves once a cycle, but at least every
/// [`MAX_WRITE_PERIOD`] (a failing remote's last error moves with every retry) and at most
/// every [`MIN_WRITE_PERIOD`]. A write replaces the file (a new inode, a rename, the old one
/// freed): 0.13 to 0.27 ms of the agent's CPU in `perf` profiles of the collect bench, so a
/// write every 5 s cost three times that per 15 s cycle.
pub fn write_period(interval: Duration) -> Duration {
    interval.clamp(MIN_WRITE_PERIOD, MAX_WRITE_PERIOD)
}

/// The contents of `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub pid: u32,
    pub started_ms: i64,
    pub written_ms: i64,
    pub remotes: BTreeMap<String, RemoteSnapshot>,
    pub collectors: BTreeMap<String, CollectorHealth>,
}

/// One remote's delivery record. Its backlog is not here: `status` reads it from the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteSnapshot {
    pub last_success_ms: Option<i64>,
    /// The latest failed attempt, with the receiver's message (credentials cut out).
    pub last_error: Option<LastError>,
    pub samples_sent: u64,
    /// Samples given up since the agent started, by reason (the `reason` label of
    /// `jellyfin_pusher_samples_dropped_total`).
    pub dropped: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn take(stats: &PusherStats, started_ms: i64) -> Snapshot {
        let remotes = stats
            .remotes()
            .map(|(name, r)| {
                let snapshot = RemoteSnapshot {
                    last_success_ms: Some(r.last_success_ms()).filter(|ms| *ms > 0),
                    last_error: r.last_error(),
                    samples_sent: r.samples_sent(),
                    dropped: r
                        .dropped_by_reason()
                        .into_iter()
                        .map(|(reason, n)| (reason.as_str().to_string(), n))
                        .collect(),
                };
                (name.clone(), snapshot)
            })
            .collect();
        Snapshot {
            version: 1,
            pid: std::process::id(),
            started_ms,
            written_ms: now_ms(),
            remotes,
            collectors: stats.collectors(),
        }
    }
}

/// Writes the snapshot now (file I/O, without fsync). A failure is logged once per incident by
/// the caller's loop; `status` then shows an older snapshot, nothing else suffers.
pub fn write(file: &StateFile, stats: &PusherStats, started_ms: i64) -> std::io::Result<()> {
    file.save_snapshot(&Snapshot::take(stats, started_ms))
}

/// Rewrites the snapshot every `period` ([`write_period`]) until `stop`; the agent writes it
/// once more after its senders have stopped.
pub async fn keep_written(
    file: Arc<StateFile>,
    stats: Arc<PusherStats>,
    started_ms: i64,
    period: Duration,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        // Written where it is: a small file replaced without an fsync goes to the page cache
        // and never waits for the disk, which a trip to the blocking pool (two thread
        // wake-ups) would cost more than.
        match write(&file, &stats, started_ms) {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot write {FILE}; `status` shows older data until it works again");
                failing = true;
            }
            Ok(()) => failing = false,
            Err(_) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_is_rewritten_once_an_interval_within_5_to_15_s() {
        let s = Duration::from_secs;
        assert_eq!(write_period(s(1)), s(5));
        assert_eq!(write_period(s(10)), s(10));
        assert_eq!(write_period(s(15)), s(15));
        assert_eq!(write_period(s(300)), s(15));
    }
}
