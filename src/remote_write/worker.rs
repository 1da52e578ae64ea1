//! The loop that connects one remote's queue to its sender: take the oldest block, deliver
//! it, acknowledge it, repeat; wait for appends when the queue is empty.
//!
//! Two tokens end it: `draining` (nothing more will be appended: deliver what is queued, then
//! return) and `stop` (return now; a block in flight stays queued). The agent cancels
//! `draining` at shutdown and `stop` after a grace period, so a reachable receiver gets the
//! last cycles before the agent exits and an unreachable one does not hold the shutdown up.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Delivery, Sender};
use crate::queue::Queue;
use crate::sample::now_ms;
use crate::stats::{DropReason, RemoteStats};

pub async fn run(
    queue: Arc<Queue>,
    sender: Sender,
    stats: Arc<RemoteStats>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    let shutdown = stop;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let q = queue.clone();
        let head = tokio::task::spawn_blocking(move || q.peek(now_ms())).await;
        let pending = match head {
            Ok(Ok(Some(pending))) => pending,
            Ok(Ok(None)) => {
                let q = queue.clone();
                let _ = tokio::task::spawn_blocking(move || q.sync()).await;
                if draining.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = draining.cancelled() => continue,
                    _ = queue.appended() => continue,
                }
            }
            Ok(Err(e)) => {
                tracing::error!(remote = sender.name(), error = %e, "cannot read the buffer; trying again in 5s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            Err(e) => {
                tracing::error!(remote = sender.name(), error = %e, "buffer read task failed");
                continue;
            }
        };
        let outcome = sender
            .deliver(&pending.block.data, &shutdown, || {
                queue.is_too_old(&pending.block, now_ms())
            })
            .await;
        match outcome {
            Delivery::Delivered => {
                stats.delivered(u64::from(pending.block.samples), now_ms());
                queue.ack(&pending);
            }
            Delivery::Rejected => queue.discard(&pending, DropReason::Rejected),
            Delivery::GaveUp => queue.discard(&pending, DropReason::TooOld),
            Delivery::ShutDown => break,
        }
    }
    let q = queue.clone();
    let _ = tokio::task::spawn_blocking(move || q.sync()).await;
}
