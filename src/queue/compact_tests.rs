//! Packing sealed segments: every block's data survives, in order, exactly once; the segment
//! the reader is in, a record in flight and a damaged segment are left alone; and a crash
//! after any step of a compaction loses and repeats nothing.

use bytes::Bytes;

use super::compact::{CRASH_AFTER, Step};
use super::tests::{NOW, block, opts};
use super::*;

/// Concatenates the bodies of up to 4 blocks: enough to see the records and their headers
/// shrink, and the order of what went in.
#[derive(Default)]
struct Concat {
    data: Vec<u8>,
    blocks: usize,
    samples: u32,
    min: i64,
    max: i64,
}

impl Packer for Concat {
    fn add(&mut self, block: &Block) -> Result<(), String> {
        if self.blocks == 0 {
            (self.min, self.max) = (block.min_timestamp_ms, block.max_timestamp_ms);
        }
        self.data.extend_from_slice(&block.data);
        self.blocks += 1;
        self.samples += block.samples;
        self.min = self.min.min(block.min_timestamp_ms);
        self.max = self.max.max(block.max_timestamp_ms);
        Ok(())
    }
    fn is_full(&self) -> bool {
        self.blocks >= 4
    }
    fn take(&mut self) -> Option<Block> {
        let taken = std::mem::take(self);
        (taken.blocks > 0).then(|| Block {
            data: Bytes::from(taken.data),
            samples: taken.samples,
            min_timestamp_ms: taken.min,
            max_timestamp_ms: taken.max,
        })
    }
}

fn concat() -> Box<dyn Packer> {
    Box::new(Concat::default())
}

fn open(dir: &Path) -> (Queue, Arc<RemoteStats>) {
    let stats = Arc::new(RemoteStats::default());
    let queue = Queue::open(dir, opts(), stats.clone()).unwrap();
    queue.pack_with(concat);
    (queue, stats)
}

/// The numbers of the test blocks in a (packed) body: each says its number three times.
fn block_ids(block: &Block) -> Vec<u32> {
    let text = String::from_utf8(block.data.to_vec()).unwrap();
    let numbers: Vec<u32> = text
        .split("block number ")
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    numbers.into_iter().step_by(3).collect()
}

/// The block numbers in the bodies delivered, and the samples delivered.
fn drain_ids(queue: &Queue) -> (Vec<u32>, u64) {
    let (mut ids, mut samples) = (Vec::new(), 0);
    while let Some(p) = queue.peek(NOW).unwrap() {
        ids.extend(block_ids(&p.block));
        samples += u64::from(p.block.samples);
        queue.ack(&p);
    }
    (ids, samples)
}

/// Takes up to `n` blocks oldest first, as one sender does.
fn taken(queue: &Queue, n: usize) -> Vec<Pending> {
    match queue.take(NOW, n, usize::MAX, false).unwrap() {
        Take::Batch(batch) => batch,
        other => panic!("nothing to take: {other:?}"),
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    segment::list(dir).unwrap().iter().map(|s| s.len).sum()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".packing"))
        .collect()
}

const ALL_SAMPLES: u64 = 40 * 41 / 2;
/// A full 1 KiB segment of unpacked test blocks: 11 records of 90 bytes.
const FULL_UNPACKED: u64 = 11 * 90;

#[test]
fn sealed_segments_behind_the_reader_are_packed_and_deliver_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, stats) = open(dir.path());
    let unpacked = {
        let plain = tempfile::tempdir().unwrap();
        let q = Queue::open(plain.path(), opts(), Arc::new(RemoteStats::default())).unwrap();
        for n in 1..=40 {
            q.append(block(n));
        }
        segment_bytes(plain.path())
    };
    for n in 1..=40 {
        queue.append(block(n));
    }
    let packed = segment_bytes(dir.path());
    assert!(packed < unpacked, "{packed} bytes packed, {unpacked} not");
    let gauges = stats.buffer();
    assert_eq!(gauges.bytes, packed, "bytes count records, not offset gaps");
    assert!(gauges.blocks < 40, "{} records left", gauges.blocks);
    assert_eq!(
        inspect::backlog(dir.path()).unwrap().bytes,
        packed,
        "status reads the same"
    );
    assert_eq!(inspect::backlog(dir.path()).unwrap().samples, ALL_SAMPLES);
    // Across a restart too: the gaps between packed segments are crossed.
    drop(queue);
    let (queue, stats) = open(dir.path());
    assert_eq!(stats.buffer().blocks, gauges.blocks);
    assert_eq!(drain_ids(&queue), ((1..=40).collect(), ALL_SAMPLES));
    assert_eq!(stats.buffer().bytes, 0);
    assert_eq!(
        stats
            .dropped_by_reason()
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>(),
        0
    );
}

#[test]
fn the_reader_segment_and_records_in_flight_are_not_packed() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path());
    for n in 1..=5 {
        queue.append(block(n));
    }
    // The sender holds blocks 1-5 (and could hold more of the next segment's).
    let batch = taken(&queue, 100);
    assert_eq!(batch.len(), 5);
    for n in 6..=40 {
        queue.append(block(n));
    }
    let segments = segment::list(dir.path()).unwrap();
    assert_eq!(
        segments[0].len, FULL_UNPACKED,
        "the reader's segment is untouched"
    );
    assert!(segments[1].len < FULL_UNPACKED, "the next one is packed");
    for p in &batch {
        queue.ack(p);
    }
    assert_eq!(drain_ids(&queue).0, (6..=40).collect::<Vec<_>>());

    // A batch in flight that reaches into the next segment keeps that one as it is too.
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path());
    for n in 1..=14 {
        queue.append(block(n));
    }
    let segments = segment::list(dir.path()).unwrap();
    assert_eq!(segments.len(), 2);
    let batch = taken(&queue, 100);
    assert_eq!(batch.len(), 14, "the batch reaches into the second segment");
    for n in 15..=30 {
        queue.append(block(n));
    }
    let after = segment::list(dir.path()).unwrap();
    assert_eq!(
        after[1].len, FULL_UNPACKED,
        "the segment with records in flight is untouched"
    );
    for p in &batch {
        queue.ack(p);
    }
    assert_eq!(drain_ids(&queue).0, (15..=30).collect::<Vec<_>>());
}

#[test]
fn a_damaged_segment_is_left_as_it_is_and_its_damage_counted_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(RemoteStats::default());
    let queue = Queue::open(dir.path(), opts(), stats.clone()).unwrap();
    // Block 1 fills most of the first segment and stays there: the reader's segment.
    queue.append(Block {
        data: Bytes::from(vec![b'x'; 900]),
        ..block(1)
    });
    for n in 2..=12 {
        queue.append(block(n));
    }
    let second = segment::list(dir.path()).unwrap()[1];
    // Damage a body in the second segment (sealed next), then let the packer see it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment::path(dir.path(), second.start))
        .unwrap();
    file.write_all_at(b"!", record::HEADER_LEN as u64 + 3)
        .unwrap();
    queue.pack_with(concat);
    for n in 13..=30 {
        queue.append(block(n));
    }
    assert_eq!(segment::list(dir.path()).unwrap()[1], second, "not packed");
    let (ids, _) = drain_ids(&queue);
    // Block 1's body holds no number; the damaged block 2 is dropped.
    assert_eq!(ids, (3..=30).collect::<Vec<_>>());
    let corrupt = stats
        .dropped_by_reason()
        .into_iter()
        .find(|(r, _)| *r == DropReason::Corrupt)
        .map_or(0, |(_, n)| n);
    assert_eq!(corrupt, 2);
}

#[test]
fn a_crash_after_any_step_of_a_compaction_loses_and_repeats_nothing() {
    for step in [
        Step::HalfWritten,
        Step::Written,
        Step::Synced,
        Step::Renamed,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path());
        for n in 1..=12 {
            queue.append(block(n));
        }
        CRASH_AFTER.with(|c| c.set(Some(step)));
        // Seals the second segment: its compaction "dies" after `step`.
        for n in 13..=24 {
            queue.append(block(n));
        }
        CRASH_AFTER.with(|c| c.set(None));
        let during = segment::list(dir.path()).unwrap();
        let renamed = during[1].len < FULL_UNPACKED;
        assert_eq!(renamed, step == Step::Renamed, "{step:?}");
        assert_eq!(
            leftovers(dir.path()).is_empty(),
            step == Step::Renamed,
            "{step:?}"
        );
        drop(queue);

        // The restart: no packer yet, so what is delivered is exactly what the crash left.
        let stats = Arc::new(RemoteStats::default());
        let queue = Queue::open(dir.path(), opts(), stats.clone()).unwrap();
        assert!(
            leftovers(dir.path()).is_empty(),
            "{step:?}: cleaned on open"
        );
        assert_eq!(
            drain_ids(&queue),
            ((1..=24).collect(), 24 * 25 / 2),
            "{step:?}"
        );
        assert_eq!(stats.buffer().blocks, 0, "{step:?}");
    }
}

#[test]
fn blocks_settled_out_of_order_are_left_out_and_newest_first_takes_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, stats) = open(dir.path());
    for n in 1..=12 {
        queue.append(block(n));
    }
    // Block 12 (in the second segment) is delivered while 1-11 are handed back unsent.
    let batch = taken(&queue, 100);
    assert_eq!(batch.len(), 12);
    queue.ack(&batch[11]);
    queue.release(&batch[..11]);
    for n in 13..=30 {
        queue.append(block(n));
    }
    let segments = segment::list(dir.path()).unwrap();
    assert!(segments[1].len < FULL_UNPACKED, "packed: {segments:?}");
    // Newest first: the newest block, then the packs backwards, then the rest; each once.
    let mut ids: Vec<u32> = Vec::new();
    while let Take::Batch(batch) = queue.take(NOW, 1, usize::MAX, true).unwrap() {
        for p in &batch {
            ids.extend(block_ids(&p.block));
            queue.ack(p);
        }
    }
    assert_eq!(ids[0], 30, "the newest first");
    ids.sort();
    let want: Vec<u32> = (1..=30).filter(|n| *n != 12).collect();
    assert_eq!(ids, want, "block 12 is not sent again, nothing twice");
    assert_eq!(stats.buffer().blocks, 0);
    assert_eq!(stats.buffer().bytes, 0);
    queue.sync();
    drop(queue);
    let (queue, _) = open(dir.path());
    assert_eq!(
        drain_ids(&queue).0,
        Vec::<u32>::new(),
        "nothing left after a restart"
    );
}

#[test]
fn a_crash_after_packing_away_settled_blocks_neither_skips_nor_loses_packed_ones() {
    for step in [Step::Synced, Step::Renamed] {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = open(dir.path());
        for n in 1..=12 {
            queue.append(block(n));
        }
        let batch = taken(&queue, 100);
        queue.ack(&batch[11]); // block 12, settled out of order
        queue.release(&batch[..11]);
        CRASH_AFTER.with(|c| c.set(Some(step)));
        for n in 13..=24 {
            queue.append(block(n));
        }
        CRASH_AFTER.with(|c| c.set(None));
        drop(queue);
        let stats = Arc::new(RemoteStats::default());
        let queue = Queue::open(dir.path(), opts(), stats).unwrap();
        let (ids, _) = drain_ids(&queue);
        // Before the rename block 12 may come again (at least once); after it, it is gone.
        let want: Vec<u32> = (1..=24)
            .filter(|n| *n != 12 || step == Step::Synced)
            .collect();
        assert_eq!(ids, want, "{step:?}");
    }
}

#[test]
fn records_settled_past_gaps_after_packed_segments_are_not_taken_again() {
    // Two senders: one holds the records up to the end of the first packed segment, the
    // other everything from the second packed segment to the first record of the segment
    // after it, and is answered first. The reader then crosses two gaps packing left over
    // settled records, and must resume behind them, not hand the first record past the
    // second gap out again (4 lanes sent it twice: `cargo bench --bench drain`).
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path());
    for n in 1..=40 {
        queue.append(block(n));
    }
    let segments = segment::list(dir.path()).unwrap();
    assert!(
        segments[1].end() < segments[2].start,
        "a gap after a packed segment"
    );
    assert!(
        segments[2].end() < segments[3].start,
        "and after the next one"
    );
    let offset = |p: &Pending| match p.position {
        Position::Disk { offset, .. } => offset,
        Position::Memory { .. } => panic!("in memory"),
    };
    let (mut first, mut second) = (Vec::new(), Vec::new());
    loop {
        let p = taken(&queue, 1).remove(0);
        let at = offset(&p);
        if at < segments[2].start {
            first.push(p);
        } else {
            second.push(p);
            if at >= segments[3].start {
                break;
            }
        }
    }
    for p in second.iter().chain(&first) {
        queue.ack(p);
    }
    let sent: Vec<u32> = first
        .iter()
        .chain(&second)
        .flat_map(|p| block_ids(&p.block))
        .collect();
    let (rest, _) = drain_ids(&queue);
    let all: Vec<u32> = sent.iter().chain(&rest).copied().collect();
    assert_eq!(all, (1..=40).collect::<Vec<_>>(), "{rest:?} after {sent:?}");
}
