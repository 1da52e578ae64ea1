//! What a queue holds, read from its files without opening it: `status` runs beside the agent
//! (or without it) and must neither take the queue's lock nor change a byte.
//!
//! The reader position comes from the `position` file (or `meta.json`, if the agent has not
//! saved since an upgrade), which the agent saves within a second of every move, so a backlog
//! being sent may show up to a second's worth of blocks too many.
//! Blocks settled out of order (the ledger saved with the position) are not counted; the
//! oldest sample is read from the records' headers, those blocks' included.
//! Blocks the agent holds in memory because the disk refused them are not on disk and not
//! counted here.

use std::fs::File;
use std::io;
use std::path::Path;

use super::ledger::Ledger;
use super::{position, segment};

/// A queue's backlog on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    pub blocks: u64,
    pub bytes: u64,
    pub samples: u64,
    /// Timestamp (ms) of the oldest buffered sample; None when the backlog is empty.
    pub oldest_sample_ms: Option<i64>,
}

/// Reads the backlog of the queue in `dir`; an empty backlog when the folder does not exist
/// (the agent has not run yet).
pub fn backlog(dir: &Path) -> io::Result<Backlog> {
    if !dir.exists() {
        return Ok(Backlog::default());
    }
    // The running agent deletes a sent segment at any moment, possibly between the listing
    // and a read: that only means the listing is stale, so read again.
    let mut attempts = 0;
    loop {
        match read(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            result => return result,
        }
    }
}

fn read(dir: &Path) -> io::Result<Backlog> {
    let segments = segment::list(dir)?;
    let first = segments.first().map_or(0, |s| s.start);
    let end = segments.last().map_or(0, segment::Segment::end);
    let saved = position::load(dir).ok().flatten();
    let read_offset = saved
        .as_ref()
        .map_or(first, |m| m.read_offset)
        .clamp(first, end);
    let settled = Ledger::restore(
        saved.as_ref().map_or(&[][..], |m| &m.acked),
        read_offset,
        end,
    );
    let (settled_blocks, settled_bytes, settled_samples) = settled.totals();
    let mut backlog = Backlog::default();
    for seg in segments.iter().filter(|s| s.end() > read_offset) {
        // Packed segments are shorter than the offsets between them: count their bytes.
        backlog.bytes += seg.end() - read_offset.max(seg.start);
        let from = read_offset.saturating_sub(seg.start);
        let file = File::open(segment::path(dir, seg.start))?;
        let scan = segment::scan(&file, seg.len, from)?;
        backlog.blocks += scan.records + scan.damaged_stretches;
        backlog.samples += scan.samples;
        backlog.oldest_sample_ms = match (backlog.oldest_sample_ms, scan.oldest_sample_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    backlog.bytes = backlog.bytes.saturating_sub(settled_bytes);
    backlog.blocks = backlog.blocks.saturating_sub(settled_blocks);
    backlog.samples = backlog.samples.saturating_sub(settled_samples);
    Ok(backlog)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::queue::{Block, Options, Queue};

    #[test]
    fn counts_what_is_unsent_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let qdir = dir.path().join("q");
        assert_eq!(backlog(&qdir).unwrap(), Backlog::default());
        let queue = Queue::open(
            &qdir,
            Options {
                max_size: 1 << 20,
                max_age: Duration::from_secs(3600 * 24 * 365 * 100),
                segment_size: 64 * 1024,
                memory_fallback_size: 1 << 20,
            },
            Arc::default(),
        )
        .unwrap();
        for (i, samples) in [(0i64, 3u32), (1, 5), (2, 7)] {
            queue.append(Block {
                data: Bytes::from(vec![1u8; 100]),
                samples,
                min_timestamp_ms: 1000 + i,
                max_timestamp_ms: 2000 + i,
            });
        }
        let head = queue.peek(3000).unwrap().unwrap();
        queue.ack(&head);
        queue.sync();
        let files_before: Vec<_> = std::fs::read_dir(&qdir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        assert_eq!(
            backlog(&qdir).unwrap(),
            Backlog {
                blocks: 2,
                bytes: 2 * (36 + 100),
                samples: 12,
                oldest_sample_ms: Some(1001),
            }
        );
        let files_after: Vec<_> = std::fs::read_dir(&qdir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        assert_eq!(files_before, files_after);
    }
}
