//! systemd integration (`Type=notify`): READY=1 once the config is valid and the buffers are
//! open, STATUS= lines that say what the agent is doing, and WATCHDOG=1 only while the
//! pipeline is alive, so a wedged agent is restarted by systemd rather than left hanging.
//! Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op.

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

/// Pings the watchdog at half its period while the pipeline has stored a batch within
/// `stale_after`, and refreshes STATUS=. Returns at shutdown or when no watchdog is set up.
pub async fn watchdog(
    heartbeat: Arc<Heartbeat>,
    stats: Arc<PusherStats>,
    stale_after: Duration,
    stop: CancellationToken,
) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticker = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = status_line(&stats);
        if heartbeat.age() <= stale_after {
            notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            tracing::error!(since = ?heartbeat.age(), "no batch stored for too long; withholding the watchdog ping");
        }
    }
}
