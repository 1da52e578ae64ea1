//! What kind of receiver a remote is, and the delivery order that follows from it.
//!
//! | `kind` | `concurrency` default | `newest_first` default | why |
//! |---|---|---|---|
//! | `victoriametrics` (default; also vmagent, vmauth in front of VictoriaMetrics) | 4 | true | it stores samples in any order, so a backlog may go over several connections at once and the current cycle may go before it |
//! | `prometheus` (`--web.enable-remote-write-receiver`) | 1 | false | it refuses a sample older than the newest of its series (out of order), so blocks go one request at a time, oldest first |
//!
//! Both can be set per remote: a Prometheus with `out_of_order_time_window` wide enough for
//! the backlog may take `newest_first = true`; `concurrency` greater than 1 sends a backlog's
//! blocks out of order too.

use serde::Deserialize;

/// The largest `concurrency`: each request holds up to 1 MiB of blocks in memory.
pub const MAX_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    #[default]
    VictoriaMetrics,
    Prometheus,
}

impl ReceiverKind {
    pub fn default_concurrency(self) -> usize {
        match self {
            ReceiverKind::VictoriaMetrics => 4,
            ReceiverKind::Prometheus => 1,
        }
    }

    pub fn default_newest_first(self) -> bool {
        match self {
            ReceiverKind::VictoriaMetrics => true,
            ReceiverKind::Prometheus => false,
        }
    }
}

/// How one remote's sender takes blocks from its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOrder {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The newest block goes before the backlog (and, while the link is down, it is the only
    /// one tried).
    pub newest_first: bool,
}
