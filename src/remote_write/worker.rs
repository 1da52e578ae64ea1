//! The loop that connects one remote's queue to its sender: take blocks, deliver them,
//! acknowledge them, repeat; wait for appends when the queue is empty.
//!
//! A backlog is sent several blocks per request (up to [`MAX_BATCH_BLOCKS`] and
//! [`MAX_BATCH_BYTES`]): the blocks are spliced into one body, in order, without
//! decompressing them ([`splice`]). If the receiver rejects
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pack::unpack;
use super::progress::{self, Progress};
use super::splice::splice;
use super::{Delivery, Sender};
use crate::config::DeliveryOrder;
use crate::queue::{Pending, Queue, Take};
use crate::sample::now_ms;
use crate::stats::{DropReason, RemoteStats};

/// A block holding several cycles: a pack the queue made of an outage's blocks.
fn is_pack(block: &crate::queue::Block) -> bool {
    block.min_timestamp_ms < block.max_timestamp_ms
}

/// At most this many blocks in one request while draining a backlog. VictoriaMetrics 1.79
/// took a 24 h backlog (5,760 blocks of 100 samples) in 2 to 3 s as requests of 256 blocks,
/// in 1 s as requests of 64 (`cargo bench --bench drain`), in order or four at once.
pub const MAX_BATCH_BLOCKS: usize = 64;
/// At most this many compressed bytes of blocks in one request (the merged body is about the
/// same size; receivers accept far more, e.g. VictoriaMetrics 32 MiB).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How late a sender may be past its own deadline (an attempt's timeout, a backoff wait's
/// length) before the watchdog calls it stuck: room for a busy scheduler and a slow disk.
pub const STUCK_SLACK_MS: i64 = 10_000;
/// How long the other lanes of a sender whose lane panicked may take to finish the request
/// they have out before the sender restarts.
const WIND_DOWN: Duration = Duration::from_secs(5);

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
        stop: stop.clone(),
        draining,
        progress,
        order,
        halt: stop.child_token(),
        winding_down: CancellationToken::new(),
        // Each collector sends its own block, timestamped when its run started; collectors
        // run on their own tickers, so a cycle's blocks lie up to most of an interval apart.
        // Three quarters of an interval takes the latest block of each fast collector and no
        // earlier one (the same collector's blocks are an interval apart).
        cycle_window_ms: i64::try_from(interval.as_millis() * 3 / 4).unwrap_or(i64::MAX),
        link_up: watch::channel(true).0,
        taking: tokio::sync::Mutex::new(()),
    });
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..order.concurrency.max(1) {
        lanes.spawn(worker.clone().lane());
    }
    // Polled here, in the sender's own task: a panic in it restarts the sender as a lane's does.
    let saver = worker.save_position();
    tokio::pin!(saver);
    loop {
        let ended = tokio::select! {
            ended = lanes.join_next() => ended,
            () = &mut saver => unreachable!("saves until the sender ends"),
        };
        let Some(ended) = ended else { break };
        if let Err(e) = ended
            && e.is_panic()
        {
            // The supervisor restarts the whole sender, which hands every taken block out
            // again. The other lanes first finish the request they have out (up to
            // WIND_DOWN), so that what the receiver took is acknowledged, not sent twice.
            worker.winding_down.cancel();
            let _ = tokio::time::timeout(WIND_DOWN, async {
                while lanes.join_next().await.is_some() {}
            })
            .await;
            worker.halt.cancel();
            while lanes.join_next().await.is_some() {}
            worker.sync().await;
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
    /// Ends every request at once: `stop`, or a lane's panic after [`WIND_DOWN`].
    halt: CancellationToken,
    /// A lane panicked: the others take nothing more.
    winding_down: CancellationToken,
    draining: CancellationToken,
    progress: Mutex<Progress>,
    order: DeliveryOrder,
    /// Blocks stored this close to the newest belong to its cycle (see `Queue::take_newest`).
    cycle_window_ms: i64,
    /// False from a failed attempt until the next delivery (newest-first only).
    link_up: watch::Sender<bool>,
    /// Held by the lane taking blocks ([`Worker::take`]).
    taking: tokio::sync::Mutex<()>,
}

/// Newest-first's signal to a delivery that its blocks are wanted back: `superseded` makes
/// `give_up` say yes, `wake` ends the backoff wait so that it is asked at once.
#[derive(Default)]
struct Cut {
    wake: CancellationToken,
    superseded: AtomicBool,
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
            if self.stop.is_cancelled() || self.winding_down.is_cancelled() {
                break;
            }
            // Marks both as seen: a change after this wakes the waits below.
            let down = self.order.newest_first && !*link.borrow_and_update();
            appends.borrow_and_update();
            let took = self.take(down).await;
            let batch = match took {
                Ok(Ok(Take::Batch(batch))) => batch,
                Ok(Ok(nothing)) => {
                    if matches!(nothing, Take::Empty) {
                        self.stats.sender_idle();
                        self.emptied();
                    }
                    if self.draining.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = self.winding_down.cancelled() => break,
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
                self.deliver(&batch, None).await
            };
            if matches!(settled, Settled::Stop) {
                break;
            }
        }
    }

    /// Takes blocks on the blocking pool (it reads the disk), unless the queue can tell
    /// without reading that there is nothing to take, or has every block it could hand out
    /// in memory (the latest appends: in normal operation, every take). One lane at a time:
    /// an append wakes every lane, and those after the first then see the block held without
    /// a trip to the pool each (the queue's lock would have them take one after another
    /// anyway).
    async fn take(&self, down: bool) -> Result<std::io::Result<Take>, tokio::task::JoinError> {
        let _turn = self.taking.lock().await;
        if !down && let Some(nothing) = self.queue.idle() {
            return Ok(Ok(nothing));
        }
        let (newest_first, window) = (self.order.newest_first, self.cycle_window_ms);
        let in_memory = match down {
            true => self.queue.take_newest_in_memory(now_ms(), window),
            false => {
                self.queue
                    .take_in_memory(now_ms(), MAX_BATCH_BLOCKS, MAX_BATCH_BYTES, newest_first)
            }
        };
        if let Some(took) = in_memory {
            return Ok(took);
        }
        let q = self.queue.clone();
        tokio::task::spawn_blocking(move || match down {
            true => q.take_newest(now_ms(), window),
            false => q.take(now_ms(), MAX_BATCH_BLOCKS, MAX_BATCH_BYTES, newest_first),
        })
        .await
    }

    async fn deliver(&self, batch: &[Pending], cut: Option<&Cut>) -> Settled {
        let finished = match batch {
            [one] => self.deliver_one(one, cut).await,
            // Packs (many cycles each, see `pack`) are big requests already: sent as stored,
            // one by one, they need no decompressing and merging, which would hold several
            // MiB per request in memory for a few percent fewer bytes.
            many if many.iter().all(|p| is_pack(&p.block)) => self.one_by_one(many, cut).await,
            many => self.deliver_many(many, cut).await,
        };
        if finished {
            Settled::Next
        } else {
            Settled::Stop
        }
    }

    /// Newest-first: the delivery is given up, and its blocks handed back, when the link is
    /// down and a newer block than these waits (see the module's doc). Only between attempts:
    /// an attempt under way may reach the receiver, and its answer settles the blocks.
    async fn deliver_unless_superseded(&self, batch: &[Pending]) -> Settled {
        let cut = Cut::default();
        let watch = async {
            let mut link = self.link_up.subscribe();
            let mut appends = self.queue.appends();
            loop {
                if !*link.borrow_and_update() && self.queue.newer_than(batch) {
                    cut.superseded.store(true, Ordering::Relaxed);
                    cut.wake.cancel();
                    return std::future::pending::<()>().await;
                }
                appends.borrow_and_update();
                tokio::select! {
                    _ = link.changed() => {}
                    _ = appends.changed() => {}
                }
            }
        };
        tokio::select! {
            settled = self.deliver(batch, Some(&cut)) => settled,
            () = watch => Settled::Next, // never: it waits forever once it has cut
        }
    }

    /// Whether `cut` says the blocks were given up for newer ones; if so they are handed
    /// back (not acknowledged by anyone, taken again in their place).
    fn handed_back(&self, batch: &[Pending], cut: Option<&Cut>) -> bool {
        let superseded = cut.is_some_and(|c| c.superseded.load(Ordering::Relaxed));
        if superseded {
            self.queue.release(batch);
        }
        superseded
    }

    /// Delivers one block and settles its fate; false on shutdown.
    async fn deliver_one(&self, pending: &Pending, cut: Option<&Cut>) -> bool {
        let give_up = || {
            self.queue.is_too_old(&pending.block, now_ms())
                || cut.is_some_and(|c| c.superseded.load(Ordering::Relaxed))
        };
        let retries = self.stats.retries();
        match self
            .sender
            .deliver_reporting(
                &pending.block.data,
                &self.halt,
                give_up,
                || self.link_failed(),
                cut.map(|c| &c.wake),
            )
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
            Delivery::GaveUp if self.handed_back(std::slice::from_ref(pending), cut) => {}
            Delivery::GaveUp => self.queue.discard(pending, DropReason::TooOld),
            Delivery::ShutDown => return false,
        }
        true
    }

    /// Delivers several blocks in one request, or one by one when that is rejected, or when
    /// one of them grows too old while it is retried; false on shutdown.
    async fn deliver_many(&self, batch: &[Pending], cut: Option<&Cut>) -> bool {
        let Ok(body) = splice(batch.iter().map(|p| &p.block)) else {
            return self.one_by_one(batch, cut).await;
        };
        let give_up = || {
            batch
                .iter()
                .any(|p| self.queue.is_too_old(&p.block, now_ms()))
                || cut.is_some_and(|c| c.superseded.load(Ordering::Relaxed))
        };
        let retries = self.stats.retries();
        match self
            .sender
            .deliver_reporting(
                &body,
                &self.halt,
                give_up,
                || self.link_failed(),
                cut.map(|c| &c.wake),
            )
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
                self.one_by_one(batch, cut).await
            }
            Delivery::GaveUp if self.handed_back(batch, cut) => true,
            Delivery::GaveUp => self.one_by_one(batch, cut).await,
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
                .deliver_reporting(&part.data, &self.halt, too_old, || self.link_failed(), None)
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

    async fn one_by_one(&self, batch: &[Pending], cut: Option<&Cut>) -> bool {
        for (i, pending) in batch.iter().enumerate() {
            if self.handed_back(&batch[i..], cut) {
                return true;
            }
            if !self.deliver_one(pending, cut).await {
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

    /// Saves the reader position a second after it first moves past the saved one (one save
    /// for all the blocks acknowledged in that second: in normal operation, a cycle's), so that
    /// a crash resends at most a second's worth. Runs until the sender ends, which saves once
    /// more.
    async fn save_position(&self) {
        loop {
            let due = self.queue.next_save().await;
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            self.sync().await;
        }
    }
}
