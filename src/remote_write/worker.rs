//! The loop that connects one remote's queue to its sender: take the oldest blocks, deliver
//! them, acknowledge them, repeat; wait for appends when the queue is empty.
//!
//! A backlog is sent several blocks per request (up to [`MAX_BATCH_BLOCKS`] and
//! [`MAX_BATCH_BYTES`]): the blocks are merged into one body, in order. If the receiver rejects
//! a merged request, its blocks are sent one by one, so a 400 still drops only the block that
//! caused it; a rejected pack (many cycles packed by the queue, `pack`) is sent again one
//! timestamp per request, so a 400 drops only the samples of the cycle that caused it.
//!
//! Two tokens end the loop: `draining` (nothing more will be appended: deliver what is queued,
//! then return) and `stop` (return now; blocks in flight stay queued). The agent cancels
//! `draining` at shutdown and `stop` after a grace period, so a reachable receiver gets the
//! last cycles before the agent exits and an unreachable one does not hold the shutdown up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::pack::unpack;
use super::progress::{self, Progress};
use super::{Delivery, Sender, merge};
use crate::queue::{Pending, Queue};
use crate::sample::now_ms;
use crate::stats::{DropReason, RemoteStats};

/// At most this many blocks in one request while draining a backlog.
pub const MAX_BATCH_BLOCKS: usize = 256;
/// At most this many compressed bytes of blocks in one request (the merged body is about the
/// same size; receivers accept far more, e.g. VictoriaMetrics 32 MiB).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How late a sender may be past its own deadline (an attempt's timeout, a backoff wait's
/// length) before the watchdog calls it stuck: room for a busy scheduler and a slow disk.
pub const STUCK_SLACK_MS: i64 = 10_000;

pub async fn run(
    queue: Arc<Queue>,
    sender: Sender,
    stats: Arc<RemoteStats>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    // Seen by the systemd watchdog; dropped when this task ends, panics included.
    let _running = stats.sender_running();
    let progress = Mutex::new(Progress::new(progress::PERIOD, queue.gauges()));
    let worker = Worker {
        queue,
        sender,
        stats,
        stop,
        progress,
    };
    loop {
        if worker.stop.is_cancelled() {
            break;
        }
        let q = worker.queue.clone();
        let head = tokio::task::spawn_blocking(move || {
            q.peek_batch(now_ms(), MAX_BATCH_BLOCKS, MAX_BATCH_BYTES)
        })
        .await;
        let batch = match head {
            Ok(Ok(batch)) if !batch.is_empty() => batch,
            Ok(Ok(_)) => {
                worker.stats.sender_idle();
                worker.emptied();
                worker.sync().await;
                if draining.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = worker.stop.cancelled() => break,
                    _ = draining.cancelled() => continue,
                    _ = worker.queue.appended() => continue,
                }
            }
            Ok(Err(e)) => {
                tracing::error!(remote = worker.sender.name(), error = %e, "cannot read the buffer; trying again in 5s");
                worker
                    .stats
                    .sender_busy_until(now_ms() + 5_000 + STUCK_SLACK_MS);
                tokio::select! {
                    _ = worker.stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            Err(e) => {
                tracing::error!(remote = worker.sender.name(), error = %e, "buffer read task failed");
                continue;
            }
        };
        crate::fault::point(format_args!("sender:{}", worker.sender.name()));
        let finished = match batch.as_slice() {
            [one] => worker.deliver_one(one).await,
            many => worker.deliver_many(many).await,
        };
        if !finished {
            break;
        }
    }
    worker.sync().await;
}

struct Worker {
    queue: Arc<Queue>,
    sender: Sender,
    stats: Arc<RemoteStats>,
    stop: CancellationToken,
    progress: Mutex<Progress>,
}

impl Worker {
    /// Delivers one block and settles its fate; false on shutdown.
    async fn deliver_one(&self, pending: &Pending) -> bool {
        let too_old = || self.queue.is_too_old(&pending.block, now_ms());
        let retries = self.stats.retries();
        match self
            .sender
            .deliver(&pending.block.data, &self.stop, too_old)
            .await
        {
            Delivery::Delivered => {
                self.stats
                    .delivered(u64::from(pending.block.samples), now_ms());
                self.queue.ack(pending);
                self.delivered(std::slice::from_ref(pending), retries);
            }
            Delivery::Rejected { status, message }
                if pending.block.min_timestamp_ms < pending.block.max_timestamp_ms =>
            {
                tracing::warn!(remote = self.sender.name(), status, receiver_message = %message, samples = pending.block.samples,
                    "remote write rejected a packed block; sending its cycles one by one");
                return self.cycle_by_cycle(pending).await;
            }
            Delivery::Rejected { status, message } => {
                tracing::error!(remote = self.sender.name(), status, receiver_message = %message, samples = pending.block.samples,
                    "remote write rejected a block; it is dropped (samples_dropped_total{{reason=\"rejected\"}})");
                self.queue.discard(pending, DropReason::Rejected);
            }
            Delivery::GaveUp => self.queue.discard(pending, DropReason::TooOld),
            Delivery::ShutDown => return false,
        }
        true
    }

    /// Delivers several blocks in one request, or one by one when that is rejected, or when
    /// one of them grows too old while it is retried; false on shutdown.
    async fn deliver_many(&self, batch: &[Pending]) -> bool {
        let Ok(body) = merge(batch.iter().map(|p| &p.block)) else {
            return self.one_by_one(batch).await;
        };
        let too_old = || {
            batch
                .iter()
                .any(|p| self.queue.is_too_old(&p.block, now_ms()))
        };
        let retries = self.stats.retries();
        match self.sender.deliver(&body, &self.stop, too_old).await {
            Delivery::Delivered => {
                let samples = batch.iter().map(|p| u64::from(p.block.samples)).sum();
                self.stats.delivered(samples, now_ms());
                for pending in batch {
                    self.queue.ack(pending);
                }
                self.delivered(batch, retries);
                true
            }
            Delivery::Rejected { status, message } => {
                tracing::warn!(remote = self.sender.name(), status, receiver_message = %message, blocks = batch.len(),
                    "remote write rejected a merged request; sending its blocks one by one");
                self.one_by_one(batch).await
            }
            Delivery::GaveUp => self.one_by_one(batch).await,
            Delivery::ShutDown => false,
        }
    }

    /// Delivers a rejected pack one timestamp per request, counting each part's fate, then
    /// acknowledges the pack; false on shutdown (the pack stays queued and is sent again).
    async fn cycle_by_cycle(&self, pending: &Pending) -> bool {
        let parts = match unpack(&pending.block) {
            Ok(parts) => parts,
            Err(e) => {
                tracing::error!(remote = self.sender.name(), error = %e, samples = pending.block.samples,
                    "a rejected block cannot be split; it is dropped (samples_dropped_total{{reason=\"rejected\"}})");
                self.queue.discard(pending, DropReason::Rejected);
                return true;
            }
        };
        for part in &parts {
            let too_old = || self.queue.is_too_old(part, now_ms());
            match self.sender.deliver(&part.data, &self.stop, too_old).await {
                Delivery::Delivered => self.stats.delivered(u64::from(part.samples), now_ms()),
                Delivery::Rejected { status, message } => {
                    tracing::error!(remote = self.sender.name(), status, receiver_message = %message, samples = part.samples,
                        timestamp_ms = part.min_timestamp_ms,
                        "remote write rejected a cycle; it is dropped (samples_dropped_total{{reason=\"rejected\"}})");
                    self.stats
                        .dropped(DropReason::Rejected, u64::from(part.samples));
                }
                Delivery::GaveUp => self
                    .stats
                    .dropped(DropReason::TooOld, u64::from(part.samples)),
                Delivery::ShutDown => return false,
            }
        }
        self.queue.ack(pending);
        true
    }

    async fn one_by_one(&self, batch: &[Pending]) -> bool {
        for pending in batch {
            if !self.deliver_one(pending).await {
                return false;
            }
        }
        true
    }

    /// Feeds the drain progress (see [`progress`]); `retries` is the retry count before the
    /// delivery, so a higher one now means it needed more than one attempt.
    fn delivered(&self, batch: &[Pending], retries: u64) {
        let delivered = progress::Delivered {
            samples: batch.iter().map(|p| u64::from(p.block.samples)).sum(),
            bytes: batch.iter().map(|p| p.block.data.len() as u64).sum(),
            after_failure: self.stats.retries() > retries,
            oldest_sample_ms: batch
                .iter()
                .map(|p| p.block.min_timestamp_ms)
                .min()
                .unwrap_or_else(now_ms),
        };
        let line = self.progress().delivered(
            &delivered,
            self.queue.gauges(),
            std::time::Instant::now(),
            now_ms(),
        );
        if let Some(line) = line {
            tracing::info!(remote = self.sender.name(), "{line}");
        }
    }

    fn emptied(&self) {
        if let Some(line) = self.progress().emptied(std::time::Instant::now()) {
            tracing::info!(remote = self.sender.name(), "{line}");
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sync(&self) {
        let q = self.queue.clone();
        let _ = tokio::task::spawn_blocking(move || q.sync()).await;
    }
}
