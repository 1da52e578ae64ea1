//! The queue's record: an opaque body and the little the queue must know about it without
//! looking inside (how many samples it counts as delivered or dropped, how old its samples
//! are). The encoder (`remote_write::encode`) makes blocks, the sender sends their bodies.

use bytes::Bytes;

/// One request body, stored and sent exactly as it is, and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The request body (a snappy-compressed WriteRequest); the queue never looks inside.
    pub data: Bytes,
    pub samples: u32,
    /// Oldest and newest sample timestamps in the block, ms since the epoch.
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}
