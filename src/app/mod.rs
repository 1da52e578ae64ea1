//! Wires the stages together: the long-running agent ([`run`]), the dry run ([`once`]),
//! `--check-config` ([`check`]) and the `check` subcommand ([`check_connectivity`]).

mod check;
mod connectivity;
mod files;
mod hints;
mod lock;
mod once;
mod pipeline;
pub mod supervise;
pub mod systemd;

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::collectors::{self, Deps, Scheduled, run_scheduled};
use crate::config::Config;
use crate::jellyfin::Client;
use crate::privacy::Privacy;
use crate::queue::{Options, Queue};
use crate::remote_write::{Sender, worker};
use crate::secret::read_secret_file;
use crate::stats::PusherStats;

pub use check::check;
pub use connectivity::{CHECK_METRIC, check_connectivity};
pub use lock::StateLock;
pub use once::once;
use supervise::{Task, supervise};

/// How long a shutdown waits for the senders to deliver what is queued.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A collector built anew for a restart, from the config: its saved state is read again from
/// `state_dir`. (The registry builds every collector; this only runs after a failure.)
fn rebuild(config: &Config, deps: &Deps, name: &str) -> Option<Scheduled> {
    let found = collectors::registry(config, deps)
        .into_iter()
        .find(|s| s.collector.name() == name);
    if found.is_none() {
        tracing::error!(collector = name, "cannot rebuild the collector");
    }
    found
}

/// Errors that stop the agent before it runs; the message is for a human.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the Jellyfin client from the config, reading the token file.
pub fn jellyfin_client(config: &Config) -> Result<Client, AppError> {
    let token = read_secret_file(&config.jellyfin.token_file, "jellyfin.token_file")?;
    Ok(Client::new(
        config.jellyfin.url.clone(),
        &token,
        config.jellyfin.timeout,
        config.jellyfin.max_response_size,
    )?)
}

/// Runs until `shutdown` is cancelled (main cancels it on SIGTERM/SIGINT).
///
/// Shutdown order: collectors stop first, the pipeline stores what they had produced, the
/// senders get [`SHUTDOWN_GRACE`] to deliver what is queued, then they stop (a block in flight
/// stays queued) and every queue saves its reader position.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    if config.remote_write.is_empty() {
        return Err(format!(
            "config {}: no [[remote_write]] target to push to",
            config.path.display()
        )
        .into());
    }
    let _lock = StateLock::acquire(&config.state_dir)?;
    let client = jellyfin_client(&config)?;
    let stats = Arc::new(PusherStats::new(
        config.remote_write.iter().map(|r| r.name.as_str()),
    ));
    let options = Options {
        max_size: config.buffer.max_size.as_u64(),
        max_age: config.buffer.max_age,
        segment_size: config.buffer.segment_size.as_u64(),
        memory_fallback_size: config.buffer.memory_fallback_size.as_u64(),
    };

    let senders_drain = CancellationToken::new();
    let senders_stop = CancellationToken::new();
    let mut senders = JoinSet::new();
    let mut queues = Vec::new();
    for remote in &config.remote_write {
        let remote_stats = stats.remote(&remote.name).ok_or("remote stats missing")?;
        let queue = Arc::new(Queue::open(
            &config.queue_dir(&remote.name),
            options,
            remote_stats.clone(),
        )?);
        // An outage's cycles are packed series by series as segments fill (queue::compact).
        queue.pack_with(crate::remote_write::pack::new_packer);
        let mut first = Some(Sender::new(remote, remote_stats.clone())?);
        let backlog = queue.gauges();
        tracing::info!(remote = %remote.name, blocks = backlog.blocks, bytes = backlog.bytes, "buffer opened");
        let task = Task {
            name: format!("sender:{}", remote.name),
            stats: stats.clone(),
            // After `senders_drain` a sender ends once its queue is empty: that end is expected.
            stop: Some(senders_drain.clone()),
        };
        let (order, interval) = (remote.delivery_order(), config.collect.interval);
        let (remote, queue_, drain, stop) = (
            remote.clone(),
            queue.clone(),
            senders_drain.clone(),
            senders_stop.clone(),
        );
        senders.spawn(supervise(task, move || {
            // A restart builds the sender anew; the queue (and the unacknowledged block in
            // it) is the same.
            let sender = match first.take() {
                Some(sender) => sender,
                None => Sender::new(&remote, remote_stats.clone())
                    .inspect_err(|e| tracing::error!(remote = %remote.name, error = %e, "cannot rebuild the sender"))
                    .ok()?,
            };
            Some(worker::run(
                queue_.clone(),
                sender,
                remote_stats.clone(),
                order,
                interval,
                drain.clone(),
                stop.clone(),
            ))
        }));
        queues.push(queue);
    }

    let started_ms = crate::sample::now_ms();
    let status_file = Arc::new(crate::state_file::StateFile::new(
        &config.state_dir,
        crate::status::FILE,
        true,
    ));
    let status_stop = CancellationToken::new();
    let status_writer = tokio::spawn(crate::status::keep_written(
        status_file.clone(),
        stats.clone(),
        started_ms,
        crate::status::write_period(config.collect.interval),
        status_stop.clone(),
    ));

    let (batches_tx, batches_rx) = mpsc::channel(64);
    let heartbeat = Arc::new(systemd::Heartbeat::default());
    heartbeat.beat();
    // The receiver outlives a pipeline task that panics, so its restart takes over the channel.
    let batches_rx = Arc::new(Mutex::new(batches_rx));
    let pipeline = tokio::spawn(supervise(
        Task {
            name: "pipeline".into(),
            stats: stats.clone(),
            stop: None, // it ends when the collectors have all stopped
        },
        {
            let (stats, heartbeat, labels) =
                (stats.clone(), heartbeat.clone(), config.labels.clone());
            move || {
                Some(pipeline::run(
                    batches_rx.clone(),
                    queues.clone(),
                    labels.clone(),
                    stats.clone(),
                    heartbeat.clone(),
                ))
            }
        },
    ));
    let deps = Deps {
        jellyfin: client,
        stats: stats.clone(),
        privacy: Privacy::load(config.privacy.user_label, &config.state_dir, true)
            .map_err(|e| format!("cannot make the user-label salt: {e}"))?,
        persist_state: true,
        plays_seen: collectors::plays_seen_for(&config),
    };
    let mut collectors = JoinSet::new();
    let config = Arc::new(config);
    for scheduled in collectors::registry(&config, &deps) {
        let name = scheduled.collector.name();
        let task = Task {
            name: format!("collector:{name}"),
            stats: stats.clone(),
            stop: Some(shutdown.clone()),
        };
        let (config, deps, batches, health, shutdown) = (
            config.clone(),
            deps.clone(),
            batches_tx.clone(),
            stats.clone(),
            shutdown.clone(),
        );
        let mut first = Some(scheduled);
        collectors.spawn(supervise(task, move || {
            let scheduled = first.take().or_else(|| rebuild(&config, &deps, name))?;
            Some(run_scheduled(
                scheduled,
                batches.clone(),
                health.clone(),
                shutdown.clone(),
            ))
        }));
    }
    drop(batches_tx);
    tracing::info!(
        jellyfin = %config.jellyfin.url,
        remotes = config.remote_write.len(),
        interval = %humantime::format_duration(config.collect.interval),
        "jellyfin-pusher running"
    );

    systemd::ready(&systemd::status_line(&stats));
    // Collectors run at least every collect.interval; three missed cycles mean the pipeline
    // is stuck.
    let stale_after = config.collect.interval * 3 + config.jellyfin.timeout;
    let watchdog = tokio::spawn(systemd::watchdog(
        heartbeat,
        stats.clone(),
        stale_after,
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    systemd::stopping();
    let _ = watchdog.await;
    while collectors.join_next().await.is_some() {}
    let _ = pipeline.await;
    senders_drain.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while senders.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "remote not done within the shutdown grace; the rest stays buffered for the next start"
        );
        senders_stop.cancel();
        while senders.join_next().await.is_some() {}
    }
    status_stop.cancel();
    let _ = status_writer.await;
    // The last word on what was delivered, for `status` while the agent is stopped.
    if let Err(e) = crate::status::write(&status_file, &stats, started_ms) {
        tracing::warn!(error = %e, "cannot write {}", crate::status::FILE);
    }
    tracing::info!("stopped");
    Ok(())
}
