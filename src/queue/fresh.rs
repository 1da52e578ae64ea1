//! The records of the latest appends, kept in memory until the reader passes them, so that a
//! sender takes the blocks just stored without reading them back from disk.
//!
//! In normal operation every block is taken right after its append: reading it back cost a
//! trip to the blocking pool (the read may wait for the disk) and two preads per block, for
//! bytes the pipeline still held. With them here, [`super::Queue::take_in_memory`] takes on
//! the caller's thread. The blocks are the pipeline's own (`Bytes` share them: no copy); they
//! were synced before they were put here, as before. A backlog older than these (an outage,
//! a restart) is read from disk as always.

use std::collections::VecDeque;

use super::Block;
use super::record::Header;

/// At most this many bytes of blocks are kept (the oldest go first): a fast tick of the
/// collect bench stores about 5 KiB; during an outage the records behind these are read
/// from disk anyway.
pub const MAX_BYTES: usize = 256 * 1024;

/// A record as stored: its queue offset, its header, its block.
#[derive(Debug)]
pub struct Record {
    pub offset: u64,
    pub header: Header,
    pub block: Block,
}

impl Record {
    fn end(&self) -> u64 {
        self.offset + self.header.record_len()
    }
}

/// Records one after the other in queue offsets, ending where the writer is.
#[derive(Debug, Default)]
pub struct Fresh {
    records: VecDeque<Record>,
    bytes: usize,
}

impl Fresh {
    /// Adds the record just stored at `offset`. One that does not follow the last (a new data
    /// file) starts afresh, so that what is kept stays one stretch.
    pub fn push(&mut self, record: Record) {
        if self
            .records
            .back()
            .is_some_and(|r| r.end() != record.offset)
        {
            self.clear();
        }
        self.bytes += record.block.data.len();
        self.records.push_back(record);
        while self.bytes > MAX_BYTES {
            self.pop_front();
        }
    }

    /// Forgets the records before `read_offset` (settled).
    pub fn forget_before(&mut self, read_offset: u64) {
        while self.records.front().is_some_and(|r| r.end() <= read_offset) {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    /// The record at `offset`, if kept.
    pub fn get(&self, offset: u64) -> Option<&Record> {
        let i = self
            .records
            .binary_search_by_key(&offset, |r| r.offset)
            .ok()?;
        self.records.get(i)
    }

    /// Whether every record from `from` up to `write_end` is kept (or there is none).
    pub fn covers(&self, from: u64, write_end: u64) -> bool {
        if from >= write_end {
            return true;
        }
        match (self.records.front(), self.records.back()) {
            (Some(first), Some(last)) => first.offset <= from && last.end() == write_end,
            _ => false,
        }
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.records.pop_front() {
            self.bytes -= r.block.data.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, len: usize) -> Record {
        let block = Block {
            data: vec![0u8; len].into(),
            samples: 1,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
        };
        let header = super::super::record::parse_header(&super::super::record::frame(&block))
            .expect("a header");
        Record {
            offset,
            header,
            block,
        }
    }

    #[test]
    fn keeps_one_stretch_up_to_the_writer_within_its_bytes() {
        let mut fresh = Fresh::default();
        assert!(fresh.covers(10, 10));
        assert!(!fresh.covers(0, 10));
        fresh.push(record(0, 64)); // ends at 100
        fresh.push(record(100, 14)); // ends at 150
        assert!(fresh.covers(0, 150) && fresh.covers(100, 150));
        assert!(
            !fresh.covers(0, 200),
            "a record written after them is not kept"
        );
        assert_eq!(fresh.get(100).map(|r| r.block.data.len()), Some(14));
        assert!(fresh.get(50).is_none());
        fresh.forget_before(100);
        assert!(fresh.get(0).is_none() && !fresh.covers(0, 150) && fresh.covers(100, 150));
        // Not following on (a new data file): only the new one is kept.
        fresh.push(record(1_000, 4));
        assert!(fresh.get(100).is_none() && fresh.covers(1_000, 1_040));
        // The oldest go beyond MAX_BYTES.
        fresh.push(record(1_040, MAX_BYTES));
        assert!(fresh.get(1_000).is_none());
        assert!(fresh.covers(1_040, 1_040 + 36 + MAX_BYTES as u64));
        fresh.push(record(1_076 + MAX_BYTES as u64, 1));
        assert!(fresh.get(1_040).is_none() && fresh.bytes == 1);
    }
}
