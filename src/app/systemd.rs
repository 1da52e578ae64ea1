//! systemd integration (`Type=notify`): READY=1 once the config is valid and the buffers are
//! open, STATUS= lines that say what the agent is doing, and WATCHDOG=1 only while the
//! pipeline is alive and no sender is stuck, so a wedged agent is restarted by systemd rather
//! than left hanging. Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op.
//!
//! A sender is stuck when its task is not running (it died and waits for its restart), or when
//! it overran a deadline it set itself: an attempt not over within the remote's `timeout`, or a
//! backoff or `Retry-After` wait not over within its length, each plus
//! [`crate::remote_write::worker::STUCK_SLACK_MS`]. A sender waiting for blocks is not stuck.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::sample::now_ms;
use crate::stats::PusherStats;

/// When the pipeline last stored a batch (ms since the epoch), the watchdog's evidence of life.
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicI64);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
    fn age(&self) -> Duration {
        Duration::from_millis(u64::try_from(now_ms() - self.0.load(Ordering::Relaxed)).unwrap_or(0))
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: storing the last cycles"),
    ]);
}

/// One line for `systemctl status`: the backlog and last push of every remote.
pub fn status_line(stats: &PusherStats) -> String {
    let remotes: Vec<String> = stats
        .remotes()
        .map(|(name, remote)| {
            let buffer = remote.buffer();
            let last = match remote.last_success_ms() {
                0 => "no push yet".to_string(),
                ms => format!("last push {}s ago", (now_ms() - ms).max(0) / 1000),
            };
            format!("{name}: backlog {} blocks, {last}", buffer.blocks)
        })
        .collect();
    remotes.join("; ")
}

/// Why the watchdog must not be fed now, or None when all is well: the pipeline stored no
/// batch within `stale_after`, or a sender is stuck (see the module documentation).
pub fn unhealthy(
    heartbeat: &Heartbeat,
    stats: &PusherStats,
    stale_after: Duration,
) -> Option<String> {
    if heartbeat.age() > stale_after {
        return Some(format!("no batch stored for {:?}", heartbeat.age()));
    }
    let now = now_ms();
    stats.remotes().find_map(|(name, remote)| {
        remote
            .sender_stuck(now)
            .map(|why| format!("the sender of remote {name} is stuck: {why}"))
    })
}

/// Pings the watchdog at a quarter of its period while [`unhealthy`] finds nothing, and
/// refreshes STATUS=. A quarter, so that one withheld ping (a sender restarted after a second)
/// does not get the agent killed; a sender dead for about half the period does.
/// Returns at shutdown or when no watchdog is set up.
pub async fn watchdog(
    heartbeat: Arc<Heartbeat>,
    stats: Arc<PusherStats>,
    stale_after: Duration,
    stop: CancellationToken,
) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticker = tokio::time::interval(period / 4);
    loop {
        tokio::select! {
            biased; // stop wins over a tick that is also ready
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = status_line(&stats);
        match unhealthy(&heartbeat, &stats, stale_after) {
            None => notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]),
            Some(why) => tracing::error!("{why}; withholding the watchdog ping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_or_overdue_sender_withholds_the_ping_and_an_idle_one_does_not() {
        let stats = PusherStats::new(["tiger"]);
        let remote = stats.remote("tiger").unwrap();
        let heartbeat = Heartbeat::default();
        heartbeat.beat();
        let stale = Duration::from_secs(60);
        let why = unhealthy(&heartbeat, &stats, stale).unwrap();
        assert!(
            why.contains("tiger") && why.contains("not running"),
            "{why}"
        );
        let running = remote.sender_running();
        assert_eq!(unhealthy(&heartbeat, &stats, stale), None, "idle");
        remote.sender_busy_until(now_ms() + 5_000);
        assert_eq!(unhealthy(&heartbeat, &stats, stale), None, "busy, in time");
        // An earlier deadline does not replace a later one while requests are out (several
        // may be, each with its own); after idle it counts.
        remote.sender_busy_until(now_ms() - 1);
        assert_eq!(
            unhealthy(&heartbeat, &stats, stale),
            None,
            "the later one holds"
        );
        remote.sender_idle();
        remote.sender_busy_until(now_ms() - 1);
        let why = unhealthy(&heartbeat, &stats, stale).unwrap();
        assert!(why.contains("should have ended"), "{why}");
        remote.sender_idle();
        assert_eq!(unhealthy(&heartbeat, &stats, stale), None);
        drop(running); // what a panic's unwinding does
        assert!(unhealthy(&heartbeat, &stats, stale).is_some());
    }

    #[test]
    fn a_stale_pipeline_withholds_the_ping() {
        let stats = PusherStats::new([]);
        let heartbeat = Heartbeat::default(); // never beat: 1970
        assert!(
            unhealthy(&heartbeat, &stats, Duration::from_secs(60))
                .unwrap()
                .contains("no batch stored")
        );
    }
}
