//! Supervision: no task of the agent ends silently.
//!
//! Every collector, the pipeline and every sender runs under [`supervise`]. When its task
//! panics, or returns although nothing asked it to, the supervisor logs it at error level
//! (with the panic message), counts it in `jellyfin_pusher_task_restarts_total{task}` and
//! starts the task again after a backoff ([`RESTART_MIN`] doubling to [`RESTART_MAX`], with
//! jitter; back to the minimum once a run lasted longer than [`RESTART_MAX`]).
//!
//! Restarting is safe for each kind of task, which is why none of them ends the process:
//! - a collector is built anew from the config (its saved cursors and offsets are read again
//!   from `state_dir`, so nothing is counted twice; in-memory counters restart at 0, which
//!   Prometheus reads as a counter reset);
//! - the pipeline keeps its channel (held outside the task), so the collectors never notice;
//!   the batch it was storing is lost, which is right when that batch is what made it panic;
//! - a sender is built anew over the same queue: the block it held was never acknowledged,
//!   so it is sent again (at least once, as after a crash).
//!
//! A task that keeps dying is still escalated to systemd: while a sender is dead or overdue the
//! watchdog is not fed (see [`super::systemd`]), and the pipeline's heartbeat goes stale, so
//! systemd restarts the whole process (`WatchdogSec=`, `Restart=always`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stats::PusherStats;

/// First restart delay.
pub const RESTART_MIN: Duration = Duration::from_secs(1);
/// Longest restart delay; also how long a run must last for the delays to start over.
pub const RESTART_MAX: Duration = Duration::from_secs(60);

/// One supervised task: its `task` label, and when an end is expected.
pub struct Task {
    pub name: String,
    pub stats: Arc<PusherStats>,
    /// Once cancelled, an end of the task is expected and it is not restarted (a panic is
    /// still logged). None: the task decides its end (the pipeline ends when its channel
    /// closes), so any normal return is expected and only a panic restarts it.
    pub stop: Option<CancellationToken>,
}

/// Runs the future `start` makes, restarting it as the module documentation says, until it
/// ends as expected. `start` returns None when the task cannot be built again (that is logged
/// and retried after the next backoff).
pub async fn supervise<F, Fut>(task: Task, mut start: F)
where
    F: FnMut() -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    task.stats.register_task(&task.name);
    let schedule = ExponentialBuilder::default()
        .with_min_delay(RESTART_MIN)
        .with_max_delay(RESTART_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let mut backoff = schedule.build();
    let stopping = || task.stop.as_ref().is_some_and(|t| t.is_cancelled());
    loop {
        let started = Instant::now();
        let ended = match start() {
            Some(future) => tokio::spawn(future).await,
            None => Ok(()),
        };
        let why = match ended {
            Ok(()) if task.stop.is_none() || stopping() => return,
            Ok(()) => "ended unexpectedly".to_string(),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
            Err(e) => format!("was cancelled: {e}"),
        };
        if stopping() {
            tracing::error!(task = %task.name, "task {why} while shutting down");
            return;
        }
        if started.elapsed() > RESTART_MAX {
            backoff = schedule.build();
        }
        let delay = backoff.next().unwrap_or(RESTART_MAX);
        tracing::error!(task = %task.name, restart_in = ?delay, "task {why}; restarting it");
        task.stats.task_restarted(&task.name);
        match &task.stop {
            Some(stop) => tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            },
            None => tokio::time::sleep(delay).await,
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or("(no message)".to_string(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn task(stats: &Arc<PusherStats>, stop: Option<&CancellationToken>) -> Task {
        Task {
            name: "t".into(),
            stats: stats.clone(),
            stop: stop.cloned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_with_growing_delays_and_counted() {
        let stats = Arc::new(PusherStats::new([]));
        let stop = CancellationToken::new();
        let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let supervisor = tokio::spawn(supervise(task(&stats, Some(&stop)), {
            let (runs, stop) = (runs.clone(), stop.clone());
            move || {
                let (runs, stop) = (runs.clone(), stop.clone());
                Some(async move {
                    let n = {
                        let mut runs = runs.lock().unwrap();
                        runs.push(t0.elapsed());
                        runs.len()
                    };
                    if n <= 4 {
                        panic!("run {n} fails");
                    }
                    stop.cancelled().await // a task ends itself when asked to
                })
            }
        }));
        tokio::time::sleep(Duration::from_secs(120)).await;
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.len(), 5, "{runs:?}");
        assert_eq!(stats.task_restarts()["t"], 4);
        // Jittered exponential: each delay is at least 1, 2, 4, 8 s and below twice that.
        for (i, pair) in runs.windows(2).enumerate() {
            let delay = pair[1] - pair[0];
            let min = RESTART_MIN * 2u32.pow(i as u32);
            assert!(delay >= min && delay < min * 2, "delay {i}: {delay:?}");
        }
        stop.cancel();
        supervisor.await.unwrap();
        assert_eq!(
            stats.task_restarts()["t"],
            4,
            "an asked-for end is no restart"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unexpected_return_is_restarted_and_an_expected_one_is_not() {
        let stats = Arc::new(PusherStats::new([]));
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let supervisor = tokio::spawn(supervise(task(&stats, Some(&stop)), {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::Relaxed);
                Some(async {})
            }
        }));
        tokio::time::sleep(Duration::from_millis(6500)).await;
        // At 0 s, after 1-2 s, after 2-4 s more; the fourth would come 4-8 s after that.
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(
            stats.task_restarts()["t"],
            3,
            "counted when decided: run 4 waits"
        );
        stop.cancel();
        supervisor.await.unwrap();

        // The pipeline's kind: no stop token, a return is its normal end.
        let stats = Arc::new(PusherStats::new([]));
        supervise(task(&stats, None), || Some(async {})).await;
        assert_eq!(stats.task_restarts()["t"], 0, "born at 0, not restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_without_stop_token_is_restarted_after_a_panic_only() {
        let stats = Arc::new(PusherStats::new([]));
        let runs = Arc::new(AtomicU32::new(0));
        supervise(task(&stats, None), {
            let runs = runs.clone();
            move || {
                let n = runs.fetch_add(1, Ordering::Relaxed);
                Some(async move { assert!(n >= 2, "run {n} fails") })
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(stats.task_restarts()["t"], 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_delays_start_over_after_a_long_run() {
        let stats = Arc::new(PusherStats::new([]));
        let stop = CancellationToken::new();
        let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t0 = Instant::now();
        tokio::spawn(supervise(task(&stats, Some(&stop)), {
            let runs = runs.clone();
            move || {
                let n = {
                    let mut runs = runs.lock().unwrap();
                    runs.push(t0.elapsed());
                    runs.len()
                };
                // Runs 1-3 die at once, run 4 lives 2 min, then it dies at once again.
                let life = if n == 4 { 120 } else { 0 };
                Some(async move {
                    tokio::time::sleep(Duration::from_secs(life)).await;
                    panic!("run {n}");
                })
            }
        }));
        tokio::time::sleep(Duration::from_secs(135)).await;
        let runs = runs.lock().unwrap().clone();
        assert!(runs.len() >= 5, "{runs:?}");
        let after_long_run = runs[4] - runs[3] - Duration::from_secs(120);
        assert!(after_long_run < RESTART_MIN * 2, "{after_long_run:?}");
        stop.cancel();
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7u8)), "(no message)");
    }
}
