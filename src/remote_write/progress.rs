//! What an operator sees while a backlog drains after an outage: a progress line every
//! [`PERIOD`] (samples and bytes sent so far, blocks and bytes left, an estimate of the time
//! left at the rate so far), and one line with the outage's totals when the queue is empty.
//!
//! A drain begins with the first delivery after a failed attempt, or with the first delivery
//! of a backlog found on disk at start (the agent was stopped or crashed during an outage).
//! The outage is dated from the oldest sample waiting when it began: that is when samples
//! stopped arriving at the receiver.

use std::time::{Duration, Instant};

use bytesize::ByteSize;

use crate::stats::BufferGauges;

/// How often a draining backlog reports its progress.
pub const PERIOD: Duration = Duration::from_secs(30);

pub struct Progress {
    period: Duration,
    /// The oldest waiting sample (ms) of an outage whose drain has not begun yet.
    pending: Option<i64>,
    drain: Option<Drain>,
}

struct Drain {
    outage_began_ms: i64,
    /// When delivery resumed (wall clock, for the outage's duration; monotonic for rates).
    resumed_ms: i64,
    resumed: Instant,
    samples: u64,
    bytes: u64,
    last_report: Instant,
}

/// One delivered request.
pub struct Delivered {
    pub samples: u64,
    pub bytes: u64,
    /// The request needed more than one attempt.
    pub after_failure: bool,
    /// The oldest sample in the request (ms).
    pub oldest_sample_ms: i64,
}

fn bytes(n: u64) -> String {
    ByteSize(n).to_string()
}

fn duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Progress {
    /// `backlog_at_start`: the queue's state when the sender starts.
    pub fn new(period: Duration, backlog_at_start: BufferGauges) -> Progress {
        Progress {
            period,
            pending: backlog_at_start
                .oldest_sample_ms
                .filter(|_| backlog_at_start.blocks > 0),
            drain: None,
        }
    }

    /// Records a delivery; `left` is the queue after it. Returns a progress line when one
    /// is due.
    pub fn delivered(
        &mut self,
        d: &Delivered,
        left: BufferGauges,
        now: Instant,
        now_ms: i64,
    ) -> Option<String> {
        if d.after_failure && self.drain.is_none() && self.pending.is_none() {
            self.pending = Some(d.oldest_sample_ms);
        }
        if let (None, Some(began)) = (&self.drain, self.pending.take()) {
            self.drain = Some(Drain {
                outage_began_ms: began,
                resumed_ms: now_ms,
                resumed: now,
                samples: 0,
                bytes: 0,
                last_report: now,
            });
        }
        let drain = self.drain.as_mut()?;
        drain.samples += d.samples;
        drain.bytes += d.bytes;
        if now.duration_since(drain.last_report) < self.period || left.blocks == 0 {
            return None;
        }
        drain.last_report = now;
        let elapsed = now.duration_since(drain.resumed).as_secs_f64();
        let rate = drain.bytes as f64 / elapsed.max(0.001);
        let eta = if rate > 0.0 {
            format!(
                "about {} to go",
                duration(Duration::from_secs_f64(left.bytes as f64 / rate))
            )
        } else {
            "no estimate yet".into()
        };
        Some(format!(
            "draining the backlog: {} samples ({}) sent in {}, {} blocks ({}) left, {eta} at {}/s",
            drain.samples,
            bytes(drain.bytes),
            duration(now.duration_since(drain.resumed)),
            left.blocks,
            bytes(left.bytes),
            bytes(rate as u64),
        ))
    }

    /// The queue ran empty: the totals of the outage just drained, if there was one.
    pub fn emptied(&mut self, now: Instant) -> Option<String> {
        let drain = self.drain.take()?;
        let outage = Duration::from_millis(
            u64::try_from(drain.resumed_ms - drain.outage_began_ms).unwrap_or(0),
        );
        Some(format!(
            "backlog delivered: the outage lasted {}; {} samples ({}) sent from the buffer in {}",
            duration(outage),
            drain.samples,
            bytes(drain.bytes),
            duration(now.duration_since(drain.resumed)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(blocks: u64, bytes: u64) -> BufferGauges {
        BufferGauges {
            bytes,
            blocks,
            oldest_sample_ms: Some(0),
        }
    }

    fn sent(after_failure: bool) -> Delivered {
        Delivered {
            samples: 1000,
            bytes: 100_000,
            after_failure,
            oldest_sample_ms: 1_000_000,
        }
    }

    #[test]
    fn a_drain_reports_every_period_with_an_estimate_then_its_totals() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Progress::new(PERIOD, BufferGauges::default());
        // Steady state: nothing to say.
        assert_eq!(p.delivered(&sent(false), left(3, 300), t0, 0), None);
        assert_eq!(p.emptied(t0), None);
        // Delivery resumes 5 minutes after the oldest waiting sample.
        let resumed_ms = 1_000_000 + 300_000;
        assert_eq!(
            p.delivered(&sent(true), left(500, 3_000_000), t0, resumed_ms),
            None
        );
        for i in 1..30 {
            assert_eq!(
                p.delivered(&sent(false), left(400, 2_000_000), t0 + s(i), 0),
                None
            );
        }
        // 30 s in: 31 requests of 100 kB sent (103 kB/s), 2 MB left: about 19 s.
        let line = p
            .delivered(&sent(false), left(400, 2_000_000), t0 + s(30), 0)
            .unwrap();
        assert_eq!(
            line,
            "draining the backlog: 31000 samples (3.0 MiB) sent in 30s, 400 blocks (1.9 MiB) left, about 19s to go at 100.9 KiB/s"
        );
        assert_eq!(p.delivered(&sent(false), left(10, 1), t0 + s(31), 0), None);
        assert_eq!(
            p.emptied(t0 + s(40)).unwrap(),
            "backlog delivered: the outage lasted 5m; 32000 samples (3.1 MiB) sent from the buffer in 40s"
        );
        assert_eq!(p.emptied(t0 + s(41)), None, "said once");
    }

    #[test]
    fn a_backlog_found_at_start_is_an_outage_too() {
        let t0 = Instant::now();
        let mut p = Progress::new(
            PERIOD,
            BufferGauges {
                bytes: 10,
                blocks: 2,
                oldest_sample_ms: Some(0),
            },
        );
        assert_eq!(p.delivered(&sent(false), left(1, 5), t0, 60_000), None);
        assert_eq!(
            p.emptied(t0).unwrap(),
            "backlog delivered: the outage lasted 1m; 1000 samples (97.7 KiB) sent from the buffer in 0s"
        );
    }
}
