//! Prometheus remote write 1.0: [`encode`] turns a batch into a snappy-compressed WriteRequest
//! once, as the queue's [`Block`](crate::queue::Block), and [`sender`] delivers blocks exactly
//! as stored, with the spec's retry rules. [`pack`] is the packer the queue rewrites an
//! outage's sealed segments with (each series once per pack), and splits a rejected pack back
//! into one request per cycle.

pub mod encode;
pub mod pack;
pub mod progress;
pub mod retry;
pub mod sender;
pub mod splice;
pub mod transport;
pub mod worker;

/// The generated prompb messages (see proto/remote.proto).
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

pub use encode::{DecodeError, decode, encode, merge};
pub use sender::{Delivery, Outcome, Probe, Sender, classify};
