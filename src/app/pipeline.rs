//! Batches from the collectors become blocks (encoded and compressed once) and are appended to
//! every remote's queue.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use crate::queue::Queue;
use crate::remote_write::encode;
use crate::sample::Batch;
use crate::stats::PusherStats;

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
    while let Some(batch) = batches.recv().await {
        crate::fault::point(format_args!("pipeline"));
        stats.collected(batch.sample_count() as u64);
        let block = encode(&batch, &labels);
        let queues = queues.clone();
        // Appends fsync; keep them off the thread that runs every task.
        let stored = tokio::task::spawn_blocking(move || {
            for queue in &queues {
                queue.append(block.clone());
            }
        })
        .await;
        match stored {
            Ok(()) => heartbeat.beat(),
            Err(e) => tracing::error!(error = %e, "storing a batch failed"),
        }
    }
}
