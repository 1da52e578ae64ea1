//! The agent's own counters and gauges. The pipeline, queues and senders update them; the
//! `pusher` collector reports them as `jellyfin_pusher_*` series, pushed like everything else,
//! so the monitoring host sees a backlog and its drops once the link is back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Why samples were given up; the `reason` label of `jellyfin_pusher_samples_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// The queue reached `buffer.max_size` (or the in-memory fallback its size) and the oldest
    /// blocks made room.
    BufferFull,
    /// Older than `buffer.max_age`: the receiver would discard them anyway.
    TooOld,
    /// The receiver answered 400, 409 or 415: resending cannot succeed.
    Rejected,
    /// A queue record failed its checksum.
    Corrupt,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::BufferFull,
        DropReason::TooOld,
        DropReason::Rejected,
        DropReason::Corrupt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::TooOld => "too_old",
            DropReason::Rejected => "rejected",
            DropReason::Corrupt => "corrupt",
        }
    }
}

/// State of one remote's buffer, set by its queue after every change.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BufferGauges {
    pub bytes: u64,
    pub blocks: u64,
    /// Timestamp (ms) of the oldest sample not yet delivered; None when the buffer is empty.
    pub oldest_sample_ms: Option<i64>,
}

/// Counters of one remote-write target.
#[derive(Debug, Default)]
pub struct RemoteStats {
    requests: Mutex<BTreeMap<String, u64>>,
    samples_sent: AtomicU64,
    retries: AtomicU64,
    dropped: Mutex<BTreeMap<DropReason, u64>>,
    buffer_write_errors: AtomicU64,
    last_success_ms: AtomicI64,
    last_error: Mutex<Option<LastError>>,
    buffer: Mutex<BufferGauges>,
    /// The sender's promise of progress, read by the systemd watchdog (see `sender_stuck`).
    sender_running: AtomicBool,
    /// Ms by which the sender's current attempt or backoff wait must be over; 0 while it
    /// waits for blocks (idle is healthy).
    sender_deadline_ms: AtomicI64,
}

/// The latest failure of a remote or a collector, as `status` shows it. The message is
/// already redacted (a receiver's answer has its credentials cut out before it gets here).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastError {
    pub at_ms: i64,
    pub message: String,
}

/// How one collector's runs went, for `status`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CollectorHealth {
    pub last_success_ms: Option<i64>,
    pub last_error: Option<LastError>,
    /// Failed runs in a row; 0 after a success.
    pub failures_in_a_row: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave a counter half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RemoteStats {
    /// Counts one request by its `code` label (HTTP status or `error`).
    pub fn request(&self, code: &str) {
        *lock(&self.requests).entry(code.to_string()).or_default() += 1;
    }
    pub fn delivered(&self, samples: u64, at_ms: i64) {
        self.samples_sent.fetch_add(samples, Ordering::Relaxed);
        self.last_success_ms.store(at_ms, Ordering::Relaxed);
    }
    /// Records a failed attempt (retried, or rejected) with the receiver's redacted message.
    pub fn failed(&self, message: &str, at_ms: i64) {
        *lock(&self.last_error) = Some(LastError {
            at_ms,
            message: message.to_string(),
        });
    }
    pub fn last_error(&self) -> Option<LastError> {
        lock(&self.last_error).clone()
    }
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped(&self, reason: DropReason, samples: u64) {
        *lock(&self.dropped).entry(reason).or_default() += samples;
    }
    pub fn buffer_write_error(&self) {
        self.buffer_write_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_buffer(&self, gauges: BufferGauges) {
        *lock(&self.buffer) = gauges;
    }

    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.requests).clone()
    }
    pub fn samples_sent(&self) -> u64 {
        self.samples_sent.load(Ordering::Relaxed)
    }
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Every reason, zeros included, so that alerts see the series before the first drop.
    pub fn dropped_by_reason(&self) -> Vec<(DropReason, u64)> {
        let map = lock(&self.dropped);
        DropReason::ALL
            .iter()
            .map(|r| (*r, map.get(r).copied().unwrap_or(0)))
            .collect()
    }
    pub fn buffer_write_errors(&self) -> u64 {
        self.buffer_write_errors.load(Ordering::Relaxed)
    }
    /// Milliseconds of the last 2xx, 0 before the first.
    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms.load(Ordering::Relaxed)
    }
    pub fn buffer(&self) -> BufferGauges {
        *lock(&self.buffer)
    }

    /// Marks the sender task running until the guard is dropped, which also happens when the
    /// task panics (unwinding drops it), so a dead sender is seen at once.
    pub fn sender_running(self: &std::sync::Arc<Self>) -> SenderRunning {
        self.sender_deadline_ms.store(0, Ordering::Relaxed);
        self.sender_running.store(true, Ordering::Relaxed);
        SenderRunning(self.clone())
    }
    /// The sender starts something that must be over by `deadline_ms` (an attempt, a wait).
    /// A sender sends several requests at once (`concurrency`): the latest deadline any of
    /// them set holds until the sender is idle, so one request's short wait never makes
    /// another's long attempt look late.
    pub fn sender_busy_until(&self, deadline_ms: i64) {
        self.sender_deadline_ms
            .fetch_max(deadline_ms, Ordering::Relaxed);
    }
    /// The sender waits for blocks (none waits, none is out): nothing to be late for.
    pub fn sender_idle(&self) {
        self.sender_deadline_ms.store(0, Ordering::Relaxed);
    }
    /// Why the sender is stuck at `now_ms`, or None: its task is not running (it died and
    /// waits for its restart), or it overran the deadline it set itself.
    pub fn sender_stuck(&self, now_ms: i64) -> Option<String> {
        if !self.sender_running.load(Ordering::Relaxed) {
            return Some("its task is not running".into());
        }
        let deadline = self.sender_deadline_ms.load(Ordering::Relaxed);
        (deadline != 0 && now_ms > deadline).then(|| {
            format!(
                "its attempt or backoff wait should have ended {} ms ago",
                now_ms - deadline
            )
        })
    }
}

/// See [`RemoteStats::sender_running`].
pub struct SenderRunning(std::sync::Arc<RemoteStats>);

impl Drop for SenderRunning {
    fn drop(&mut self) {
        self.0.sender_running.store(false, Ordering::Relaxed);
    }
}

/// Everything the agent counts about itself.
#[derive(Debug, Default)]
pub struct PusherStats {
    samples_collected: AtomicU64,
    remotes: BTreeMap<String, std::sync::Arc<RemoteStats>>,
    collectors: Mutex<BTreeMap<String, CollectorHealth>>,
    /// Restarts of each supervised task (`jellyfin_pusher_task_restarts_total{task}`).
    task_restarts: Mutex<BTreeMap<String, u64>>,
}

impl PusherStats {
    pub fn new<'a>(remote_names: impl IntoIterator<Item = &'a str>) -> Self {
        PusherStats {
            samples_collected: AtomicU64::new(0),
            remotes: remote_names
                .into_iter()
                .map(|n| (n.to_string(), Default::default()))
                .collect(),
            collectors: Mutex::default(),
            task_restarts: Mutex::default(),
        }
    }
    /// Gives a supervised task its restart counter at 0, so the series exists before the first.
    pub fn register_task(&self, task: &str) {
        lock(&self.task_restarts)
            .entry(task.to_string())
            .or_default();
    }
    pub fn task_restarted(&self, task: &str) {
        *lock(&self.task_restarts)
            .entry(task.to_string())
            .or_default() += 1;
    }
    pub fn task_restarts(&self) -> BTreeMap<String, u64> {
        lock(&self.task_restarts).clone()
    }
    /// Records the outcome of one collector run (`error` already says what failed).
    pub fn collector_ran(&self, name: &str, error: Option<&str>, at_ms: i64) {
        let mut map = lock(&self.collectors);
        let health = map.entry(name.to_string()).or_default();
        match error {
            None => {
                health.last_success_ms = Some(at_ms);
                health.failures_in_a_row = 0;
            }
            Some(message) => {
                health.last_error = Some(LastError {
                    at_ms,
                    message: message.to_string(),
                });
                health.failures_in_a_row += 1;
            }
        }
    }
    pub fn collectors(&self) -> BTreeMap<String, CollectorHealth> {
        lock(&self.collectors).clone()
    }
    pub fn collected(&self, samples: u64) {
        self.samples_collected.fetch_add(samples, Ordering::Relaxed);
    }
    pub fn samples_collected(&self) -> u64 {
        self.samples_collected.load(Ordering::Relaxed)
    }
    pub fn remote(&self, name: &str) -> Option<std::sync::Arc<RemoteStats>> {
        self.remotes.get(name).cloned()
    }
    pub fn remotes(&self) -> impl Iterator<Item = (&String, &std::sync::Arc<RemoteStats>)> {
        self.remotes.iter()
    }
}
