//! Batches from the collectors become blocks (encoded and compressed once, one per batch, so
//! that a receiver's 400 drops one collector's cycle only) and are appended to every remote's
//! queue.
//!
//! Group commit: the fast collectors of one tick finish within a few milliseconds of each
//! other, and each append costs a trip to the blocking pool and an fdatasync. So the pipeline
//! takes every batch already waiting, lingers up to [`LINGER`] after the first for the rest of
//! the tick, and stores them all in one trip with one fdatasync per queue
//! ([`Queue::append_all`]). Nothing is sent before it is synced, as before.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use crate::queue::{Block, Queue};
use crate::remote_write::encode;
use crate::sample::Batch;
use crate::stats::PusherStats;

/// How long the first batch of a group waits for the others of its tick. In the collect bench
/// the last of a tick's fast batches came a median 7 to 11 ms after the first, 90 % within
/// 12 ms (README, "Figures"); one later than this only costs its own append, as before. At a
/// 15 s interval (2 s at the least) it delays delivery by nothing a dashboard sees.
pub const LINGER: Duration = Duration::from_millis(20);

/// The most batches stored in one trip (a burst after a stall is stored in several).
const MAX_GROUP: usize = 64;

/// Ends when every collector has dropped its sender, after storing everything received.
/// The receiver is shared with the supervisor, so that a restarted pipeline takes over the
/// same channel (a panic releases the lock).
pub async fn run(
    batches: Arc<Mutex<mpsc::Receiver<Batch>>>,
    queues: Vec<Arc<Queue>>,
    labels: Vec<(String, String)>,
    stats: Arc<PusherStats>,
    heartbeat: Arc<super::systemd::Heartbeat>,
) {
    let mut batches = batches.lock().await;
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = batches.recv().await {
        group.push(first);
        let open = gather(&mut batches, &mut group).await;
        let blocks: Vec<Block> = group
            .drain(..)
            .map(|batch| {
                crate::fault::point(format_args!("pipeline"));
                stats.collected(batch.sample_count() as u64);
                encode(&batch, &labels)
            })
            .collect();
        tracing::debug!(blocks = blocks.len(), "storing a group of blocks");
        let queues = queues.clone();
        // Appends fsync; keep them off the thread that runs every task.
        let stored = tokio::task::spawn_blocking(move || {
            for queue in &queues {
                queue.append_all(&blocks);
            }
        })
        .await;
        match stored {
            Ok(()) => heartbeat.beat(),
            Err(e) => tracing::error!(error = %e, "storing a batch failed"),
        }
        if !open {
            break;
        }
    }
}

/// Adds to `group` what is waiting and what arrives within [`LINGER`], up to [`MAX_GROUP`].
/// False when the channel has closed (everything received is in `group`).
async fn gather(batches: &mut mpsc::Receiver<Batch>, group: &mut Vec<Batch>) -> bool {
    let deadline = tokio::time::Instant::now() + LINGER;
    while group.len() < MAX_GROUP {
        match tokio::time::timeout_at(deadline, batches.recv()).await {
            Ok(Some(batch)) => group.push(batch),
            Ok(None) => return false,
            Err(_) => break,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Options;
    use crate::sample::Family;
    use crate::stats::RemoteStats;

    fn batch(samples: usize) -> Batch {
        let mut family = Family::gauge("g", "A gauge.");
        for i in 0..samples {
            family = family.with(vec![("i", i.to_string())], 1.0);
        }
        Batch {
            timestamp_ms: 1_700_000_000_000,
            families: vec![family],
        }
    }

    #[tokio::test]
    async fn waiting_batches_are_stored_in_one_append_and_the_rest_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            max_size: 1 << 20,
            max_age: Duration::from_secs(3600),
            segment_size: 1 << 20,
            memory_fallback_size: 1 << 20,
        };
        let queue =
            Arc::new(Queue::open(dir.path(), opts, Arc::new(RemoteStats::default())).unwrap());
        let mut appends = queue.appends();
        let stats = Arc::new(PusherStats::new(["x"]));
        let (tx, rx) = mpsc::channel(8);
        tx.send(batch(1)).await.unwrap();
        tx.send(batch(2)).await.unwrap();
        let pipeline = tokio::spawn(run(
            Arc::new(Mutex::new(rx)),
            vec![queue.clone()],
            vec![],
            stats.clone(),
            Arc::default(),
        ));
        appends.changed().await.unwrap();
        // Both were waiting: one group, one append, two blocks (one per batch).
        assert_eq!(*appends.borrow_and_update(), 1);
        assert_eq!(queue.gauges().blocks, 2);
        // A batch sent as the collectors stop is stored before the pipeline ends.
        tx.send(batch(3)).await.unwrap();
        drop(tx);
        pipeline.await.unwrap();
        assert_eq!(*appends.borrow(), 2);
        assert_eq!(queue.gauges().blocks, 3);
        assert_eq!(stats.samples_collected(), 1 + 2 + 3);
    }
}
