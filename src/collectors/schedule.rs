//! Runs one collector forever at its own interval and hands each batch to the pipeline.

use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::ended::Ended;
use super::{Scheduled, run_once};
use crate::sample::{Batch, now_ms};
use crate::stats::PusherStats;

/// How long a run that is under way when the agent is told to stop may still take.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The first run starts at once (every collector reports at start-up); later runs follow the
/// interval, and a run that overruns delays the next one instead of bunching them up.
/// A failure is logged when it starts or its message changes, and its end is logged too, so a
/// Jellyfin outage gives two log lines, not one every cycle.
/// Every run's outcome is recorded in `health` for `status`. After a successful run, series
/// the last one sent and this one lacks get their last sample ([`Ended`]).
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
    let mut ended = Ended::new();
    loop {
        tokio::select! {
            // Shutdown first: a run that overran its interval leaves the next tick ready at
            // once, and an unbiased select would then start new runs after shutdown half the
            // time, each one holding the stop up for a whole run.
            biased;
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        crate::fault::point(format_args!("collector:{name}"));
        // A run in progress at shutdown gets SHUTDOWN_GRACE to finish, so a cycle that already
        // asked Jellyfin is not lost. A longer one (an activity burst or an inventory walk of
        // hundreds of pages) is dropped at its next await: collectors save their state
        // atomically and only after a whole walk, so the next start redoes that walk, and the
        // agent still stops well inside systemd's TimeoutStopSec.
        let run = run_once(scheduled.collector.as_mut());
        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let (mut batch, error) = tokio::select! {
            done = run => done,
            () = grace_over => {
                tracing::info!(collector = name, "run abandoned at shutdown; it is redone at the next start");
                return;
            }
        };
        if error.is_none() {
            ended.close(&mut batch.families);
        }
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

    /// Runs `collector` on its schedule in a task: the task, the batches it sends, and the
    /// token that stops it.
    fn spawn_scheduled(
        collector: Box<dyn Collector>,
        interval: Duration,
    ) -> (
        tokio::task::JoinHandle<()>,
        mpsc::Receiver<Batch>,
        CancellationToken,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_scheduled(
            Scheduled {
                collector,
                interval,
            },
            tx,
            Default::default(),
            shutdown.clone(),
        ));
        (task, rx, shutdown)
    }

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
        let (task, mut rx, shutdown) =
            spawn_scheduled(Box::new(Counting(0)), Duration::from_secs(15));
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
    /// Takes `self.0` of (paused) time per run.
    struct Slow(Duration);

    #[async_trait::async_trait]
    impl Collector for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            tokio::time::sleep(self.0).await;
            out.push(Family::gauge("walked", "Walked.").with(vec![], 1.0));
            Ok(())
        }
    }

    /// Starts a run of `took`, cancels 1 s into it, and says when the task ended and whether
    /// the run's batch reached the pipeline.
    async fn stop_during_a_run(took: Duration) -> (Duration, bool) {
        let start = tokio::time::Instant::now();
        let (task, mut rx, shutdown) =
            spawn_scheduled(Box::new(Slow(took)), Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        task.await.unwrap();
        let delivered = rx.recv().await.is_some();
        (start.elapsed(), delivered)
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_run_under_way_at_shutdown_is_finished_and_delivered() {
        let (ended, delivered) = stop_during_a_run(Duration::from_secs(3)).await;
        assert!(delivered);
        assert_eq!(ended, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_walk_under_way_at_shutdown_is_dropped_after_the_grace() {
        let (ended, delivered) = stop_during_a_run(Duration::from_secs(600)).await;
        assert!(!delivered, "the unfinished walk sends nothing");
        assert_eq!(ended, Duration::from_secs(1) + SHUTDOWN_GRACE);
    }

    /// Runs that overrun their interval leave the next tick always ready: shutdown must
    /// still win, so the run under way at shutdown is the last one. Twenty rounds, because a
    /// select that picks at random would pass one round half the time.
    #[tokio::test(start_paused = true)]
    async fn no_run_starts_after_shutdown_even_when_runs_overrun_the_interval() {
        for round in 0..20 {
            let start = tokio::time::Instant::now();
            let (task, mut rx, shutdown) = spawn_scheduled(
                Box::new(Slow(Duration::from_secs(4))),
                Duration::from_secs(1),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            shutdown.cancel();
            task.await.unwrap();
            let mut runs = 0;
            while rx.recv().await.is_some() {
                runs += 1;
            }
            assert_eq!(
                (runs, start.elapsed()),
                (1, Duration::from_secs(4)),
                "round {round}: only the run under way finishes"
            );
        }
    }

    /// One script entry per run: `Some(Some(v))` a transcode's speed, `Some(None)` no
    /// transcode, `None` a failed run.
    struct Scripted(std::collections::VecDeque<Option<Option<f64>>>);

    #[async_trait::async_trait]
    impl Collector for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
            match self.0.pop_front().flatten() {
                None => Err("down".into()),
                Some(speed) => {
                    out.extend(speed.map(|v| {
                        Family::gauge("jellyfin_transcode_speed_ratio", "Speed.")
                            .with(vec![("stat", "min".into())], v)
                    }));
                    Ok(())
                }
            }
        }
    }

    /// The runner ends a series the run before sent (collectors/ended.rs), but only after a
    /// run that succeeded: a failed one says nothing has ended.
    #[tokio::test(start_paused = true)]
    async fn a_series_ends_with_its_marker_after_a_successful_run_only() {
        let script = [Some(Some(1.5)), None, Some(None), Some(None)];
        let (task, mut rx, shutdown) = spawn_scheduled(
            Box::new(Scripted(script.into_iter().collect())),
            Duration::from_secs(15),
        );
        let mut speeds = Vec::new();
        for _ in 0..4 {
            let batch = rx.recv().await.unwrap();
            speeds.push(
                batch
                    .families
                    .iter()
                    .filter(|f| f.name == "jellyfin_transcode_speed_ratio")
                    .flat_map(|f| f.samples.iter().map(|s| s.value.to_bits()))
                    .collect::<Vec<u64>>(),
            );
        }
        shutdown.cancel();
        task.await.unwrap();
        let stale = crate::sample::STALE_NAN_BITS;
        assert_eq!(
            speeds,
            [vec![1.5f64.to_bits()], vec![], vec![stale], vec![]]
        );
    }
}
