//! When a block is sent again: the retry loop of [`super::Sender::deliver`], apart from HTTP so
//! that its schedule can be shown with paused time.
//!
//! A failed attempt waits for the receiver's `Retry-After` when it sent one (clipped to
//! [`MAX_RETRY_AFTER`]), else for the next step of an exponential backoff with jitter: 1 s
//! doubling to 1 min, each step up to twice as long by jitter, never given up. A `Retry-After`
//! wait does not advance the backoff. Shutdown ends an attempt in flight or a wait at once.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::{Delivery, Outcome};
use crate::sample::now_ms;
use crate::stats::RemoteStats;

/// Longest wait a `Retry-After` may ask for; a longer one is clipped so that a
/// misconfigured receiver cannot park the agent for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The backoff between attempts that got no `Retry-After`.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// The reasons one remote has failed for since its last delivery.
///
/// Requests that are out together when a receiver goes away fail for different reasons (the
/// one under way "connection reset", the next "connection refused"), and with several lanes
/// these can alternate for the whole outage. A reason is therefore logged once per incident,
/// the first time it appears, not whenever it differs from the previous attempt's.
#[derive(Debug, Default)]
pub struct Incident {
    reasons: Mutex<Vec<String>>,
}

/// At most this many distinct reasons are logged per incident: a receiver whose error text
/// varies per request (a request id in it) must not turn the log into one line per retry.
const MAX_REASONS_LOGGED: usize = 8;

impl Incident {
    /// Notes a failure; true when its reason is new to this incident and should be logged.
    pub fn record(&self, reason: &str) -> bool {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        if reasons.len() >= MAX_REASONS_LOGGED || reasons.iter().any(|r| r == reason) {
            return false;
        }
        reasons.push(reason.to_owned());
        true
    }

    /// Ends the incident on a delivery; true when there was one (worth a line in the log).
    pub fn end(&self) -> bool {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        let was = !reasons.is_empty();
        reasons.clear();
        was
    }
}

/// One remote's retry rules.
pub struct Schedule<'a> {
    /// The remote's name, for the log.
    pub remote: &'a str,
    pub backoff: &'a ExponentialBuilder,
    pub stats: &'a RemoteStats,
    /// The remote's per-attempt timeout: with the waits, it sets the deadlines by which the
    /// systemd watchdog calls this sender stuck (`RemoteStats::sender_stuck`).
    pub timeout: Duration,
    /// The current incident, shared by every request of the remote (several run at once, and
    /// newest-first delivery starts new ones while the link is down), so that it is logged
    /// when it starts, when a reason new to it appears and when it ends, not once per request.
    pub incident: &'a Incident,
    /// Ends a backoff wait early (never an attempt under way): `give_up` is then asked at
    /// once. Newest-first delivery trades an old block for a newer one this way.
    pub wake: Option<&'a CancellationToken>,
}

impl Schedule<'_> {
    /// Runs `attempt` until it delivers or is rejected, `give_up` returns true, or shutdown.
    /// Failures are logged when they start and when a reason new to the incident appears, not
    /// on every retry.
    pub async fn run<F, Fut>(
        &self,
        shutdown: &CancellationToken,
        give_up: impl Fn() -> bool,
        mut attempt: F,
    ) -> Delivery
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut backoff = self.backoff.build();
        loop {
            if give_up() {
                return Delivery::GaveUp;
            }
            self.stats.sender_busy_until(deadline(self.timeout));
            let outcome = tokio::select! {
                // An attempt in flight at shutdown is abandoned; the block stays queued.
                _ = shutdown.cancelled() => return Delivery::ShutDown,
                outcome = attempt() => outcome,
            };
            match outcome {
                Outcome::Delivered => {
                    if self.incident.end() {
                        tracing::info!(remote = %self.remote, "remote write delivering again");
                    }
                    return Delivery::Delivered;
                }
                Outcome::Rejected { status, message } => {
                    self.stats
                        .failed(&format!("HTTP {status}: {message}"), now_ms());
                    return Delivery::Rejected { status, message };
                }
                Outcome::Retry { reason, after } => {
                    self.stats.retry();
                    self.stats.failed(&reason, now_ms());
                    let delay = after
                        .map(|d| d.min(MAX_RETRY_AFTER))
                        .or_else(|| backoff.next())
                        .unwrap_or(Duration::from_secs(60));
                    if self.incident.record(&reason) {
                        tracing::warn!(remote = %self.remote, %reason, retry_in = ?delay,
                            "remote write failed; the block stays buffered and is retried");
                    } else {
                        tracing::debug!(remote = %self.remote, retry_in = ?delay, "remote write still failing");
                    }
                    self.stats.sender_busy_until(deadline(delay));
                    let woken = async {
                        match self.wake {
                            Some(wake) => wake.cancelled().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = shutdown.cancelled() => return Delivery::ShutDown,
                        _ = tokio::time::sleep(delay) => {}
                        () = woken => {}
                    }
                }
            }
        }
    }
}

/// When something that takes at most `limit` is late (see `worker::STUCK_SLACK_MS`).
fn deadline(limit: Duration) -> i64 {
    let limit = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX / 2);
    crate::sample::now_ms().saturating_add(limit.saturating_add(super::worker::STUCK_SLACK_MS))
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
