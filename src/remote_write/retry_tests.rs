//! The retry schedule with paused time: every wait is measured on tokio's clock, which jumps
//! straight to the next timer, so an hour of backoff takes no real time and the figures are
//! exact.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::*;
use crate::remote_write::sender::parse_retry_after;

fn retry(after: Option<Duration>) -> Outcome {
    Outcome::Retry {
        reason: "HTTP 503: busy".into(),
        after,
    }
}

/// What one run of the schedule came to.
struct Run {
    delivery: Delivery,
    /// When each attempt was made, after the start.
    attempts: Vec<Duration>,
    retries: u64,
}

impl Run {
    /// The waits between consecutive attempts.
    fn waits(&self) -> Vec<Duration> {
        self.attempts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A remote's stats and backoff, which its [`Schedule`] borrows.
struct Remote {
    stats: RemoteStats,
    backoff: backon::ExponentialBuilder,
    incident: Incident,
}

impl Default for Remote {
    fn default() -> Remote {
        Remote {
            stats: RemoteStats::default(),
            backoff: backoff(),
            incident: Incident::default(),
        }
    }
}

impl Remote {
    fn schedule(&self) -> Schedule<'_> {
        Schedule {
            remote: "tiger",
            backoff: &self.backoff,
            stats: &self.stats,
            timeout: Duration::from_secs(30),
            incident: &self.incident,
            wake: None,
        }
    }
}

/// Runs the schedule with attempts that answer `outcomes` in order, then `Delivered`.
async fn run(
    outcomes: Vec<Outcome>,
    shutdown: &CancellationToken,
    give_up: impl Fn() -> bool,
) -> Run {
    let remote = Remote::default();
    let schedule = remote.schedule();
    let start = Instant::now();
    let outcomes = RefCell::new(VecDeque::from(outcomes));
    let attempts = RefCell::new(Vec::new());
    let delivery = schedule
        .run(shutdown, give_up, || {
            attempts.borrow_mut().push(start.elapsed());
            let outcome = outcomes
                .borrow_mut()
                .pop_front()
                .unwrap_or(Outcome::Delivered);
            std::future::ready(outcome)
        })
        .await;
    Run {
        delivery,
        attempts: attempts.into_inner(),
        retries: remote.stats.retries(),
    }
}

/// The waits between the attempts of a run that answers `outcomes`, then delivers.
async fn waits_until_delivered(outcomes: Vec<Outcome>) -> Vec<Duration> {
    let result = run(outcomes, &CancellationToken::new(), || false).await;
    assert_eq!(result.delivery, Delivery::Delivered);
    result.waits()
}

/// Wed, 21 Oct 2015 07:28:00 GMT.
const NOW: u64 = 1_445_412_480;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Asserts `wait` is the backoff step `step` plus jitter of less than one step (tokio's timer
/// rounds up to the millisecond).
fn assert_step(wait: Duration, step: Duration) {
    assert!(
        wait >= step && wait <= step * 2,
        "waited {wait:?}, expected {step:?} plus less than {step:?} of jitter"
    );
}

#[tokio::test(start_paused = true)]
async fn the_backoff_doubles_from_1s_to_1min_with_jitter_and_never_gives_up() {
    let steps = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60].map(secs);
    // Jitter is random: several runs, each step checked.
    for _ in 0..20 {
        let result = run(
            vec![retry(None); steps.len()],
            &CancellationToken::new(),
            || false,
        )
        .await;
        assert_eq!(result.delivery, Delivery::Delivered);
        assert_eq!(result.retries, steps.len() as u64);
        assert_eq!(
            result.attempts[0],
            Duration::ZERO,
            "the first try is at once"
        );
        let waits = result.waits();
        assert_eq!(waits.len(), steps.len());
        for (wait, step) in waits.into_iter().zip(steps) {
            assert_step(wait, step);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_is_waited_exactly_and_does_not_advance_the_backoff() {
    let now = SystemTime::now();
    let waits = waits_until_delivered(vec![
        retry(None),
        retry(parse_retry_after("120", now)),
        retry(None),
    ])
    .await;
    assert_step(waits[0], secs(1));
    assert_eq!(waits[1], secs(120));
    assert_step(waits[2], secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_waited_until_that_moment() {
    let now = SystemTime::UNIX_EPOCH + secs(NOW);
    let waits = waits_until_delivered(vec![
        retry(parse_retry_after("Wed, 21 Oct 2015 07:28:45 GMT", now)),
        // A date already past: at once.
        retry(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now)),
    ])
    .await;
    assert_eq!(waits, [secs(45), Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_ten_minutes_is_clipped_and_garbage_falls_back_to_the_backoff() {
    let now = SystemTime::UNIX_EPOCH + secs(NOW);
    let waits = waits_until_delivered(vec![
        retry(parse_retry_after("86400", now)),
        retry(parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now)),
        retry(parse_retry_after("soon", now)),
    ])
    .await;
    assert_eq!(waits[..2], [MAX_RETRY_AFTER, MAX_RETRY_AFTER]);
    assert_step(waits[2], secs(1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_backoff_wait_ends_it_at_once() {
    for first in [retry(None), retry(Some(secs(600)))] {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel();
        });
        let start = Instant::now();
        let result = run(vec![first.clone(); 10], &shutdown, || false).await;
        assert_eq!(result.delivery, Delivery::ShutDown, "{first:?}");
        assert_eq!(start.elapsed(), Duration::from_millis(500), "{first:?}");
        assert_eq!(result.attempts.len(), 1, "no attempt after shutdown");
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_an_attempt_in_flight() {
    let remote = Remote::default();
    let shutdown = CancellationToken::new();
    let cancel = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        cancel.cancel();
    });
    let start = Instant::now();
    let delivery = remote
        .schedule()
        .run(&shutdown, || false, std::future::pending::<Outcome>)
        .await;
    assert_eq!(delivery, Delivery::ShutDown);
    assert_eq!(start.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn give_up_is_asked_before_every_attempt_and_a_rejection_ends_the_loop() {
    let attempts = std::cell::Cell::new(0);
    let result = run(vec![retry(None); 10], &CancellationToken::new(), || {
        attempts.set(attempts.get() + 1);
        attempts.get() > 3
    })
    .await;
    assert_eq!(result.delivery, Delivery::GaveUp);
    assert_eq!(result.attempts.len(), 3);

    let rejected = Outcome::Rejected {
        status: 400,
        message: "bad block".into(),
    };
    let result = run(
        vec![retry(None), rejected, retry(None)],
        &CancellationToken::new(),
        || false,
    )
    .await;
    assert_eq!(
        result.delivery,
        Delivery::Rejected {
            status: 400,
            message: "bad block".into()
        }
    );
    assert_eq!(result.attempts.len(), 2);
}

#[test]
fn an_incident_logs_each_reason_once_even_when_lanes_alternate() {
    let incident = Incident::default();
    let reset = "connection reset by peer";
    let refused = "connection refused";
    let logged: Vec<bool> = [reset, refused, reset, refused, refused, reset]
        .iter()
        .map(|r| incident.record(r))
        .collect();
    assert_eq!(logged, [true, true, false, false, false, false]);
    assert!(incident.end(), "a delivery ends the incident");
    assert!(!incident.end(), "and only once");
    assert!(
        incident.record(reset),
        "the next incident logs its reason again"
    );
}

#[test]
fn an_incident_logs_at_most_a_few_reasons_when_every_error_text_differs() {
    let incident = Incident::default();
    let logged = (0..100)
        .filter(|i| incident.record(&format!("HTTP 503: request id {i}")))
        .count();
    assert_eq!(logged, MAX_REASONS_LOGGED);
}
