//! The loop that connects one remote's queue to its sender: take blocks, deliver them,
//! acknowledge them, repeat; wait for appends when the queue is empty.
//!
//! A backlog is sent several blocks per request (up to [`MAX_BATCH_BLOCKS`] and
//! [`MAX_BATCH_BYTES`]): the blocks are merged into one body, in order. If the receiver rejects
//! a merged request, its blocks are sent one by one, so a 400 still drops only the block that
//! caused it. Packs (many cycles packed by the queue, `pack`) go one per request as stored,
//! unmerged; a rejected pack is sent again one timestamp per request, so a 400 drops only the
//! samples of the cycle that caused it.
//!
//! The remote's [`DeliveryOrder`] decides the rest:
//! - `concurrency` lanes take and send at once, each its own blocks (one lane: strictly
//!   oldest first, one request at a time, as Prometheus needs).
//! - `newest_first`: lanes take the newest blocks first, walking back (`Queue::take`). While
//!   the link is down (an attempt failed and none succeeded since) only the newest cycle's
//!   blocks are tried, by one lane: lanes holding older blocks hand them back and wait, and
//!   the lane holding the newest cycle hands it back for the next one as soon as a block is
//!   appended (its retry then starts afresh, at once). So the first request that gets
//!   through after an outage carries the current cycle, within one interval of the link's
//!   return, and the backlog follows on every lane.
//!
//! Two tokens end the loop: `draining` (nothing more will be appended: deliver what is queued,
//! then return) and `stop` (return now; blocks in flight stay queued). The agent cancels
//! `draining` at shutdown and `stop` after a grace period, so a reachable receiver gets the
//! last cycles before the agent exits and an unreachable one does not hold the shutdown up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pack::unpack;
use super::progress::{self, Progress};
use super::{Delivery, Sender, merge};
use crate::config::DeliveryOrder;
use crate::queue::{Pending, Queue, Take};
use crate::sample::now_ms;
use crate::stats::{DropReason, RemoteStats};

/// A block holding several cycles: a pack the queue made of an outage's blocks.
fn is_pack(block: &crate::queue::Block) -> bool {
    block.min_timestamp_ms < block.max_timestamp_ms
}

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
    order: DeliveryOrder,
    interval: Duration,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    // Seen by the systemd watchdog; dropped when this task ends, panics included.
    let _running = stats.sender_running();
    // A restarted sender resends what its predecessor held.
    queue.release_all();
    let progress = Mutex::new(Progress::new(progress::PERIOD, queue.gauges()));
    let worker = Arc::new(Worker {
        queue,
        sender,
        stats,
        stop,
        draining,
        progress,
        order,
        // Blocks of one cycle are stored within milliseconds of each other (each collector
        // sends its own); half an interval takes them all and nothing of the cycle before.
        cycle_window_ms: i64::try_from(interval.as_millis() / 2).unwrap_or(i64::MAX),
        link_up: watch::channel(true).0,
    });
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..order.concurrency.max(1) {
        lanes.spawn(worker.clone().lane());
    }
    while let Some(ended) = lanes.join_next().await {
        if let Err(e) = ended
            && e.is_panic()
        {
            // The supervisor restarts the whole sender; the other lanes end with this task.
            std::panic::resume_unwind(e.into_panic());
        }
    }
    worker.sync().await;
}

struct Worker {
    queue: Arc<Queue>,
    sender: Sender,
    stats: Arc<RemoteStats>,
    stop: CancellationToken,
    draining: CancellationToken,
    progress: Mutex<Progress>,
    order: DeliveryOrder,
    /// Blocks stored this close to the newest belong to its cycle (see `Queue::take_newest`).
    cycle_window_ms: i64,
    /// False from a failed attempt until the next delivery (newest-first only).
    link_up: watch::Sender<bool>,
}

/// How a lane's request ended.
enum Settled {
    /// Its blocks' fate is known (or they were handed back for newer ones): take more.
    Next,
    /// Shutdown: stop.
    Stop,
}

impl Worker {
    async fn lane(self: Arc<Self>) {
        let mut link = self.link_up.subscribe();
        let mut appends = self.queue.appends();
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            // Marks both as seen: a change after this wakes the waits below.
            let down = self.order.newest_first && !*link.borrow_and_update();
            appends.borrow_and_update();
            let q = self.queue.clone();
            let (newest_first, window) = (self.order.newest_first, self.cycle_window_ms);
            let took = tokio::task::spawn_blocking(move || match down {
                true => q.take_newest(now_ms(), window),
                false => q.take(now_ms(), MAX_BATCH_BLOCKS, MAX_BATCH_BYTES, newest_first),
            })
            .await;
            let batch = match took {
                Ok(Ok(Take::Batch(batch))) => batch,
                Ok(Ok(nothing)) => {
                    if matches!(nothing, Take::Empty) {
                        self.stats.sender_idle();
                        self.emptied();
                        self.sync().await;
                    }
                    if self.draining.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = self.draining.cancelled() => continue,
                        _ = appends.changed() => continue,
                        _ = link.changed() => continue,
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(remote = self.sender.name(), error = %e, "cannot read the buffer; trying again in 5s");
                    self.stats
                        .sender_busy_until(now_ms() + 5_000 + STUCK_SLACK_MS);
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
                Err(e) => {
                    tracing::error!(remote = self.sender.name(), error = %e, "buffer read task failed");
                    continue;
                }
            };
            crate::fault::point(format_args!("sender:{}", self.sender.name()));
            let settled = if self.order.newest_first {
                self.deliver_unless_superseded(&batch).await
            } else {
                self.deliver(&batch).await
            };
            if matches!(settled, Settled::Stop) {
                break;
            }
        }
    }

    async fn deliver(&self, batch: &[Pending]) -> Settled {
        let finished = match batch {
            [one] => self.deliver_one(one).await,
            // Packs (many cycles each, see `pack`) are big requests already: sent as stored,
            // one by one, they need no decompressing and merging, which would hold several
            // MiB per request in memory for a few percent fewer bytes.
            many if many.iter().all(|p| is_pack(&p.block)) => self.one_by_one(many).await,
            many => self.deliver_many(many).await,
        };
        if finished {
            Settled::Next
        } else {
            Settled::Stop
        }
    }

    /// Newest-first: the delivery is abandoned, and its blocks handed back, when the link is
    /// down and a newer block than these waits (see the module's doc).
    async fn deliver_unless_superseded(&self, batch: &[Pending]) -> Settled {
        let superseded = async {
            let mut link = self.link_up.subscribe();
            let mut appends = self.queue.appends();
            loop {
                if !*link.borrow_and_update() && self.queue.newer_than(batch) {
                    return;
                }
                appends.borrow_and_update();
                tokio::select! {
                    _ = link.changed() => {}
                    _ = appends.changed() => {}
                }
            }
        };
        tokio::select! {
            settled = self.deliver(batch) => settled,
            () = superseded => {
                // Not acknowledged by anyone: handed back whole, taken again in its place.
                self.queue.release(batch);
                Settled::Next
            }
        }
    }

    /// Delivers one block and settles its fate; false on shutdown.
    async fn deliver_one(&self, pending: &Pending) -> bool {
        let too_old = || self.queue.is_too_old(&pending.block, now_ms());
        let retries = self.stats.retries();
        match self
            .sender
            .deliver_reporting(&pending.block.data, &self.stop, too_old, || {
                self.link_failed()
            })
            .await
        {
            Delivery::Delivered => {
                self.link_works();
                self.stats
                    .delivered(u64::from(pending.block.samples), now_ms());
                self.queue.ack(pending);
                self.delivered(std::slice::from_ref(pending), retries);
            }
            Delivery::Rejected { status, message } if is_pack(&pending.block) => {
                self.link_works(); // an answer: the link is up
                tracing::warn!(remote = self.sender.name(), status, receiver_message = %message, samples = pending.block.samples,
                    "remote write rejected a packed block; sending its cycles one by one");
                return self.cycle_by_cycle(pending).await;
            }
            Delivery::Rejected { status, message } => {
                self.link_works(); // an answer: the link is up
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
        match self
            .sender
            .deliver_reporting(&body, &self.stop, too_old, || self.link_failed())
            .await
        {
            Delivery::Delivered => {
                self.link_works();
                let samples = batch.iter().map(|p| u64::from(p.block.samples)).sum();
                self.stats.delivered(samples, now_ms());
                for pending in batch {
                    self.queue.ack(pending);
                }
                self.delivered(batch, retries);
                true
            }
            Delivery::Rejected { status, message } => {
                self.link_works();
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
            match self
                .sender
                .deliver_reporting(&part.data, &self.stop, too_old, || self.link_failed())
                .await
            {
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

    fn link_failed(&self) {
        if self.order.newest_first {
            self.link_up
                .send_if_modified(|up| std::mem::replace(up, false));
        }
    }

    fn link_works(&self) {
        if self.order.newest_first {
            self.link_up
                .send_if_modified(|up| !std::mem::replace(up, true));
        }
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
