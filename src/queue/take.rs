//! Handing blocks to senders: several may hold blocks at once (parallel requests to a
//! receiver that does not need order), and the newest blocks may go before the backlog (a
//! receiver that accepts out-of-order samples, so that dashboards show "now" first).
//!
//! Taken blocks are remembered until they are acknowledged or handed back; oldest-first
//! taking walks on from a cursor past them and past blocks settled out of order (the
//! ledger). With one sender taking oldest first, blocks go out strictly in order, as
//! receivers that need in-order samples per series (Prometheus) require.
//!
//! Newest-first taking walks back from the newest block over the last [`RECENT`] blocks
//! appended since the queue was opened (the file format reads forward only, and an index of
//! a whole backlog would cost memory), so a backlog drains from both ends: the newest hours
//! backwards, what is older (or was stored before a restart) forwards.

use super::{HEADER_LEN, Inner, Pending, Position, age_limit, record};
use crate::stats::{DropReason, RemoteStats};

/// How many of the newest blocks newest-first taking knows (24 bytes each).
pub const RECENT: usize = 4096;

/// A block appended since the queue was opened.
#[derive(Debug, Clone, Copy)]
pub struct Recent {
    pub offset: u64,
    pub next: u64,
    pub max_ts_ms: i64,
}

/// What [`super::Queue::take`] found.
#[derive(Debug)]
pub enum Take {
    /// Blocks for one request (never empty).
    Batch(Vec<Pending>),
    /// Blocks wait, but senders hold all of them.
    Held,
    /// Nothing waits.
    Empty,
}

impl Inner {
    pub(super) fn take(
        &mut self,
        now_ms: i64,
        max_blocks: usize,
        max_bytes: usize,
        newest_first: bool,
        stats: &RemoteStats,
    ) -> std::io::Result<Take> {
        let too_old = age_limit(self.opts.max_age, now_ms);
        // Held blocks that were meanwhile dropped for space.
        self.taken = self.taken.split_off(&self.read_offset);
        if let Some(seq) = self.memory_taken
            && !self.fallback.iter().any(|(s, _)| *s == seq)
        {
            self.memory_taken = None;
        }
        if newest_first {
            let newest = self.take_newest(too_old, None, max_blocks, max_bytes)?;
            if !newest.is_empty() {
                return Ok(Take::Batch(newest));
            }
        }
        let mut batch: Vec<Pending> = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_blocks && bytes < max_bytes {
            if let Some(next) = self
                .taken
                .get(&self.cursor)
                .copied()
                .or_else(|| self.ledger.end_of(self.cursor))
            {
                self.cursor = next;
                continue;
            }
            let Some((offset, header)) = self.header_from(self.cursor)? else {
                break;
            };
            let next = offset + header.record_len();
            if self.ledger.contains(offset) || self.taken.contains_key(&offset) {
                self.cursor = next; // a damaged stretch skipped over into a settled block
                continue;
            }
            if header.max_ts_ms < too_old {
                stats.dropped(DropReason::TooOld, u64::from(header.samples));
                self.settle(offset, next, u64::from(header.samples));
                self.cursor = self.cursor.max(next);
                continue;
            }
            if !batch.is_empty() && bytes + header.len as usize > max_bytes {
                break;
            }
            if let Some(kept) = self.fresh.get(offset) {
                let block = kept.block.clone();
                self.cursor = self.cursor.max(next);
                self.taken.insert(offset, next);
                bytes += block.data.len();
                batch.push(Pending {
                    block,
                    position: Position::Disk { offset, next },
                });
                continue;
            }
            let seg_start = self
                .segments
                .iter()
                .find(|s| s.end() > offset)
                .map_or(0, |s| s.start);
            let mut body = vec![0u8; header.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(
                self.reader_for(seg_start)?,
                &mut body,
                offset - seg_start + HEADER_LEN as u64,
            )?;
            self.cursor = self.cursor.max(next);
            if !record::body_is_intact(&header, &body) {
                tracing::error!(
                    segment = seg_start,
                    offset = offset - seg_start,
                    samples = header.samples,
                    "buffer record failed its checksum; dropped (samples_dropped_total{{reason=\"corrupt\"}})"
                );
                stats.dropped(DropReason::Corrupt, u64::from(header.samples));
                self.settle(offset, next, u64::from(header.samples));
                continue;
            }
            self.taken.insert(offset, next);
            bytes += body.len();
            batch.push(Pending {
                block: header.into_block(body),
                position: Position::Disk { offset, next },
            });
        }
        if !batch.is_empty() {
            return Ok(Take::Batch(batch));
        }
        // The memory fallback holds blocks newer than any on disk; one sender at a time.
        if self.memory_taken.is_none() {
            while let Some((seq, block)) = self.fallback.front() {
                let (seq, samples) = (*seq, block.samples);
                if block.max_timestamp_ms < too_old {
                    stats.dropped(DropReason::TooOld, u64::from(samples));
                    self.remove(Position::Memory { seq }, samples);
                    continue;
                }
                let pending = Pending {
                    block: block.clone(),
                    position: Position::Memory { seq },
                };
                self.memory_taken = Some(seq);
                return Ok(Take::Batch(vec![pending]));
            }
        }
        Ok(if self.taken.is_empty() && self.memory_taken.is_none() {
            Take::Empty
        } else {
            Take::Held
        })
    }

    /// Untaken, unsettled blocks from the newest back, within `max_blocks` and `max_bytes`
    /// (one block may be larger). With `window_ms`: only when the newest block itself is
    /// free, and only blocks stored within `window_ms` of it (its cycle). A block that is
    /// damaged or too old is left for oldest-first taking to settle.
    pub(super) fn take_newest(
        &mut self,
        too_old: i64,
        window_ms: Option<i64>,
        max_blocks: usize,
        max_bytes: usize,
    ) -> std::io::Result<Vec<Pending>> {
        while self
            .recent
            .front()
            .is_some_and(|r| r.offset < self.read_offset)
        {
            self.recent.pop_front();
        }
        let mut batch = Vec::new();
        let Some(newest) = self.recent.back().copied() else {
            return Ok(batch);
        };
        let mut bytes = 0usize;
        for i in (0..self.recent.len()).rev() {
            let r = self.recent[i];
            if batch.len() >= max_blocks
                || bytes >= max_bytes
                || window_ms.is_some_and(|w| r.max_ts_ms < newest.max_ts_ms - w)
            {
                break;
            }
            let free = r.offset >= self.read_offset
                && !self.taken.contains_key(&r.offset)
                && !self.ledger.contains(r.offset);
            if !free {
                if window_ms.is_some() && r.offset == newest.offset {
                    break; // the prober holds it already
                }
                continue;
            }
            if !batch.is_empty() && bytes + (r.next - r.offset) as usize > max_bytes {
                break;
            }
            if let Some(pending) = self.record_at(r.offset, too_old)? {
                bytes += pending.block.data.len();
                self.taken.insert(r.offset, r.next);
                batch.push(pending);
            }
        }
        Ok(batch)
    }

    pub(super) fn remember_recent(&mut self, recent: Recent) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(recent);
    }

    /// A taken block handed back unsent.
    pub(super) fn release(&mut self, position: Position) {
        match position {
            Position::Disk { offset, .. } => {
                if self.taken.remove(&offset).is_some() && offset >= self.read_offset {
                    self.cursor = self.cursor.min(offset);
                }
            }
            Position::Memory { seq } if self.memory_taken == Some(seq) => self.memory_taken = None,
            Position::Memory { .. } => {}
        }
    }

    pub(super) fn release_all(&mut self) {
        self.taken.clear();
        self.memory_taken = None;
        self.moved = None;
        self.cursor = self.read_offset;
    }
}
