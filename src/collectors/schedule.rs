//! Runs one collector forever at its own interval and hands each batch to the pipeline.

use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::{Scheduled, run_once};
use crate::sample::{Batch, now_ms};
use crate::stats::PusherStats;

/// The first run starts at once (every collector reports at start-up); later runs follow the
/// interval, and a run that overruns delays the next one instead of bunching them up.
/// A failure is logged when it starts or its message changes, and its end is logged too, so a
/// Jellyfin outage gives two log lines, not one every cycle.
/// Every run's outcome is recorded in `health` for `status`.
pub async fn run_scheduled(
    mut scheduled: Scheduled,
    batches: mpsc::Sender<Batch>,
    health: std::sync::Arc<PusherStats>,
    shutdown: CancellationToken,
) {
    let name = scheduled.collector.name();
    let mut ticker = interval(scheduled.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        crate::fault::point(format_args!("collector:{name}"));
        // A run in progress at shutdown is finished (it is bounded by jellyfin.timeout), so a
        // cycle that already asked Jellyfin is not lost.
        let (batch, error) = run_once(scheduled.collector.as_mut()).await;
        let error = error.map(|e| e.to_string());
        health.collector_ran(name, error.as_deref(), now_ms());
        match (error, &last_error) {
            (Some(now), Some(before)) if &now == before => {
                tracing::debug!(collector = name, error = %now, "collector still failing");
            }
            (Some(now), _) => {
                tracing::warn!(collector = name, error = %now, "collector failed");
                last_error = Some(now);
            }
            (None, Some(_)) => {
                tracing::info!(collector = name, "collector recovered");
                last_error = None;
            }
            (None, None) => {}
        }
        if batches.send(batch).await.is_err() {
            return; // the pipeline has stopped: shutting down
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::collectors::{CollectError, Collector};
    use crate::sample::Family;

    struct Counting(u32);

    #[async_trait::async_trait]
    impl Collector for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            self.0 += 1;
            out.push(Family::gauge("runs", "Runs.").with(vec![], f64::from(self.0)));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_once_then_every_interval_and_stops_on_shutdown() {
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_scheduled(
            Scheduled {
                collector: Box::new(Counting(0)),
                interval: Duration::from_secs(15),
            },
            tx,
            Default::default(),
            shutdown.clone(),
        ));
        let first = rx.recv().await.unwrap();
        assert_eq!(first.families[0].samples[0].value, 1.0);
        let start = tokio::time::Instant::now();
        let second = rx.recv().await.unwrap();
        assert_eq!(second.families[0].samples[0].value, 2.0);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        shutdown.cancel();
        task.await.unwrap();
        assert!(
            rx.recv().await.is_none(),
            "the task dropped its sender on shutdown"
        );
    }
}
