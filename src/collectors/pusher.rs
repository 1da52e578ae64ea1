//! `pusher`: the agent's own health, `jellyfin_pusher_*`: what it collected, what each remote
//! accepted, retried and dropped, and the state of each remote's buffer.

use std::sync::Arc;

use super::{CollectError, Collector};
use crate::sample::{Family, now_ms};
use crate::stats::PusherStats;

pub struct Pusher {
    stats: Arc<PusherStats>,
    /// `buffer.max_size`, the same for every remote: sent so that an alert can compare the
    /// backlog with it (the buffer drops its oldest blocks beyond it).
    buffer_max_bytes: u64,
}

impl Pusher {
    pub fn new(stats: Arc<PusherStats>, buffer_max_bytes: u64) -> Self {
        Pusher {
            stats,
            buffer_max_bytes,
        }
    }
}

#[async_trait::async_trait]
impl Collector for Pusher {
    fn name(&self) -> &'static str {
        "pusher"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        out.push(
            Family::gauge(
                "jellyfin_pusher_build_info",
                "The agent's version; the value is always 1.",
            )
            .with(vec![("version", crate::VERSION.into())], 1.0),
        );
        out.push(
            Family::counter(
                "jellyfin_pusher_samples_collected_total",
                "Samples produced by all collectors.",
            )
            .with(vec![], self.stats.samples_collected() as f64),
        );
        let mut requests = Family::counter(
            "jellyfin_pusher_remote_write_requests_total",
            "Remote-write requests by HTTP status (error: no answer).",
        );
        let mut sent = Family::counter(
            "jellyfin_pusher_remote_write_samples_sent_total",
            "Samples the remote accepted with a 2xx.",
        );
        let mut retries = Family::counter(
            "jellyfin_pusher_remote_write_retries_total",
            "Remote-write attempts that failed and were retried.",
        );
        let mut dropped = Family::counter(
            "jellyfin_pusher_samples_dropped_total",
            "Samples given up, by reason (buffer_full, too_old, rejected, corrupt).",
        );
        let mut write_errors = Family::counter(
            "jellyfin_pusher_buffer_write_errors_total",
            "Blocks the disk buffer could not store (kept in memory instead while there is room).",
        );
        let mut bytes = Family::gauge(
            "jellyfin_pusher_buffer_bytes",
            "Bytes of unsent blocks in the buffer.",
        );
        let mut max_bytes = Family::gauge(
            "jellyfin_pusher_buffer_max_bytes",
            "The buffer's size limit (buffer.max_size): beyond it the oldest blocks are dropped.",
        );
        let mut blocks = Family::gauge(
            "jellyfin_pusher_buffer_blocks",
            "Unsent blocks in the buffer.",
        );
        let mut oldest = Family::gauge(
            "jellyfin_pusher_buffer_oldest_sample_timestamp_seconds",
            "Timestamp of the oldest sample still waiting to be sent; the time of this cycle when nothing waits.",
        );
        let mut last_success = Family::gauge(
            "jellyfin_pusher_last_push_success_timestamp_seconds",
            "When a push last succeeded (unix seconds); absent before the first.",
        );
        for (name, remote) in self.stats.remotes() {
            let label = || vec![("remote", name.clone())];
            for (code, count) in remote.requests() {
                requests.push(vec![("remote", name.clone()), ("code", code)], count as f64);
            }
            sent.push(label(), remote.samples_sent() as f64);
            retries.push(label(), remote.retries() as f64);
            for (reason, count) in remote.dropped_by_reason() {
                dropped.push(
                    vec![("remote", name.clone()), ("reason", reason.as_str().into())],
                    count as f64,
                );
            }
            write_errors.push(label(), remote.buffer_write_errors() as f64);
            let buffer = remote.buffer();
            bytes.push(label(), buffer.bytes as f64);
            max_bytes.push(label(), self.buffer_max_bytes as f64);
            blocks.push(label(), buffer.blocks as f64);
            // An empty buffer reports "nothing older than now waits" rather than nothing: a
            // series that is left out keeps its last value for the receiver's lookback (5 min),
            // so one reading taken while a block was in flight would show a backlog growing
            // for minutes after it was delivered (and fire a short backlog alert).
            let oldest_ms = buffer.oldest_sample_ms.unwrap_or_else(now_ms);
            oldest.push(label(), oldest_ms as f64 / 1000.0);
            if remote.last_success_ms() > 0 {
                last_success.push(label(), remote.last_success_ms() as f64 / 1000.0);
            }
        }
        let mut restarts = Family::counter(
            "jellyfin_pusher_task_restarts_total",
            "Restarts of a collector, the pipeline or a sender after it panicked or ended unexpectedly.",
        );
        for (task, count) in self.stats.task_restarts() {
            restarts.push(vec![("task", task)], count as f64);
        }
        out.extend([
            restarts,
            requests,
            sent,
            retries,
            dropped,
            write_errors,
            bytes,
            max_bytes,
            blocks,
            oldest,
            last_success,
        ]);
        out.retain(|f| !f.samples.is_empty());
        if let Some(own) = own_process() {
            out.push(
                Family::gauge(
                    "jellyfin_pusher_resident_memory_bytes",
                    "The agent's resident memory.",
                )
                .with(vec![], own.rss_bytes),
            );
            out.push(
                Family::counter(
                    "jellyfin_pusher_cpu_seconds_total",
                    "CPU time the agent used (user + system).",
                )
                .with(vec![], own.cpu_seconds),
            );
        }
        Ok(())
    }
}

struct OwnProcess {
    rss_bytes: f64,
    cpu_seconds: f64,
}

/// The agent's own RSS and CPU time, from getrusage and /proc/self/statm.
fn own_process() -> Option<OwnProcess> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf and getrusage only write into the values we hand them.
    let (page_size, usage) = unsafe {
        let page_size = libc::sysconf(libc::_SC_PAGESIZE);
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        (page_size, usage)
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(OwnProcess {
        rss_bytes: resident_pages * page_size as f64,
        cpu_seconds: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_remote_reports_its_backlog_beside_the_buffer_limit() {
        let stats = Arc::new(PusherStats::new(["tiger", "lion"]));
        let mut pusher = Pusher::new(stats, 512 * 1024 * 1024);
        let mut out = Vec::new();
        pusher.collect(&mut out).await.unwrap();
        let family = |name: &str| {
            out.iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let limits = family("jellyfin_pusher_buffer_max_bytes");
        assert_eq!(limits.samples.len(), 2, "one per remote");
        assert!(
            limits
                .samples
                .iter()
                .all(|s| s.value == 536_870_912.0 && s.labels[0].0 == "remote")
        );
        assert_eq!(family("jellyfin_pusher_buffer_bytes").samples.len(), 2);
    }
}
