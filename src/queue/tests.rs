//! Queue tests on real files in a temporary folder.

use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::*;

pub(super) const NOW: i64 = 1_800_000_000_000;

pub(super) fn opts() -> Options {
    Options {
        max_size: 1024 * 1024,
        max_age: Duration::from_secs(3600),
        segment_size: 1024,
        memory_fallback_size: 4096,
    }
}

pub(super) fn block(n: u32) -> Block {
    Block {
        data: Bytes::from(format!("block number {n:04} ").repeat(3)),
        samples: n,
        min_timestamp_ms: NOW - 1000 + i64::from(n),
        max_timestamp_ms: NOW + i64::from(n),
    }
}

fn open(dir: &Path, opts: Options) -> (Queue, Arc<RemoteStats>) {
    let stats = Arc::new(RemoteStats::default());
    (Queue::open(dir, opts, stats.clone()).unwrap(), stats)
}

/// A repeatable stream of pseudo-random numbers for the randomised tests.
pub(super) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Peeks and acks everything, returning the sample counts (our block ids) in order.
pub(super) fn drain(queue: &Queue) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(p) = queue.peek(NOW).unwrap() {
        out.push(p.block.samples);
        queue.ack(&p);
    }
    out
}

fn dropped(stats: &RemoteStats, reason: DropReason) -> u64 {
    stats
        .dropped_by_reason()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| n)
}

#[test]
fn delivers_in_order_across_segments_and_restarts_and_deletes_sent_files() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, stats) = open(dir.path(), opts());
    for n in 1..=40 {
        queue.append(block(n));
    }
    assert!(
        segment::list(dir.path()).unwrap().len() > 3,
        "1 KiB segments rotate"
    );
    assert_eq!(stats.buffer().blocks, 40);
    assert_eq!(stats.buffer().oldest_sample_ms, Some(NOW - 999));
    // Take 10, then "crash" without sync: the reader position may lag (at most a second).
    for _ in 0..10 {
        let p = queue.peek(NOW).unwrap().unwrap();
        queue.ack(&p);
    }
    queue.sync();
    drop(queue);
    let (queue, stats) = open(dir.path(), opts());
    assert_eq!(stats.buffer().blocks, 30);
    assert_eq!(drain(&queue), (11..=40).collect::<Vec<_>>());
    assert_eq!(
        segment::list(dir.path()).unwrap().len(),
        1,
        "only the segment being written is kept"
    );
    assert_eq!(
        stats.buffer(),
        BufferGauges {
            bytes: 0,
            blocks: 0,
            oldest_sample_ms: None
        }
    );
}

#[test]
fn an_unacknowledged_block_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    queue.append(block(1));
    assert_eq!(queue.peek(NOW).unwrap().unwrap().block, block(1));
    drop(queue); // the block was in flight when the agent died
    let (queue, _) = open(dir.path(), opts());
    assert_eq!(queue.peek(NOW).unwrap().unwrap().block, block(1));
}

#[test]
fn a_torn_tail_is_truncated_and_the_queue_stays_appendable() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    queue.append(block(1));
    queue.append(block(2));
    drop(queue);
    let seg = segment::list(dir.path()).unwrap().pop().unwrap();
    let path = segment::path(dir.path(), seg.start);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(seg.len - 5).unwrap(); // the second append was cut short
    let (queue, _) = open(dir.path(), opts());
    queue.append(block(3));
    assert_eq!(drain(&queue), [1, 3]);
}

#[test]
fn a_damaged_body_is_skipped_and_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    for n in 1..=3 {
        queue.append(block(n));
    }
    drop(queue);
    let seg = segment::list(dir.path()).unwrap()[0];
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment::path(dir.path(), seg.start))
        .unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    // A byte in the middle of the second record's body.
    let at = record_len + HEADER_LEN as u64 + 10;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], at).unwrap();
    let (queue, stats) = open(dir.path(), opts());
    assert_eq!(drain(&queue), [1, 3]);
    assert_eq!(
        dropped(&stats, DropReason::Corrupt),
        2,
        "block 2 carried 2 samples"
    );
}

#[test]
fn a_damaged_header_is_resynchronised_past() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    for n in 1..=3 {
        queue.append(block(n));
    }
    drop(queue);
    let seg = segment::list(dir.path()).unwrap()[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment::path(dir.path(), seg.start))
        .unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    file.write_all_at(b"XXXX", record_len + 4).unwrap(); // the length field of record 2
    let (queue, _) = open(dir.path(), opts());
    assert_eq!(drain(&queue), [1, 3]);
}

#[test]
fn damaged_metadata_never_wipes_data() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    for n in 1..=3 {
        queue.append(block(n));
    }
    let p = queue.peek(NOW).unwrap().unwrap();
    queue.ack(&p);
    queue.sync();
    drop(queue);
    std::fs::write(dir.path().join(position::FILE), b"\0\0garbage").unwrap();
    let (queue, _) = open(dir.path(), opts());
    assert_eq!(drain(&queue), [1, 2, 3], "delivered again rather than lost");
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    let small = Options {
        max_size: record_len * 5,
        ..opts()
    };
    let (queue, stats) = open(dir.path(), small);
    for n in 1..=8 {
        queue.append(block(n));
    }
    assert_eq!(drain(&queue), [4, 5, 6, 7, 8]);
    assert_eq!(dropped(&stats, DropReason::BufferFull), 1 + 2 + 3);
}

#[test]
fn blocks_past_max_age_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, stats) = open(dir.path(), opts());
    let old = Block {
        max_timestamp_ms: NOW - 3_600_001,
        ..block(5)
    };
    queue.append(old.clone());
    queue.append(block(6));
    assert!(queue.is_too_old(&old, NOW));
    assert_eq!(drain(&queue), [6]);
    assert_eq!(dropped(&stats, DropReason::TooOld), 5);
}

#[test]
fn a_block_dropped_for_space_while_in_flight_is_not_acknowledged_twice() {
    let dir = tempfile::tempdir().unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    let (queue, _) = open(
        dir.path(),
        Options {
            max_size: record_len * 2,
            ..opts()
        },
    );
    queue.append(block(1));
    let in_flight = queue.peek(NOW).unwrap().unwrap();
    queue.append(block(2));
    queue.append(block(3)); // pushes block 1 out
    queue.ack(&in_flight);
    assert_eq!(
        drain(&queue),
        [2, 3],
        "acking the dropped block must not drop block 2"
    );
}

// The model test (appends, acks, restarts and crashes against a VecDeque) is in torn_tests.rs.

#[test]
fn a_smaller_max_size_on_reopen_drops_the_oldest_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = open(dir.path(), opts());
    for n in 1..=10 {
        queue.append(block(n));
    }
    drop(queue);
    let record_len = record::frame(&block(1)).len() as u64;
    let (queue, stats) = open(
        dir.path(),
        Options {
            max_size: record_len * 3,
            ..opts()
        },
    );
    assert_eq!(
        dropped(&stats, DropReason::BufferFull),
        (1..=7).sum::<u64>()
    );
    assert_eq!(drain(&queue), [8, 9, 10]);
}

#[test]
fn the_block_in_flight_is_not_counted_when_dropped_for_space_unless_then_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    let (queue, stats) = open(
        dir.path(),
        Options {
            max_size: record_len * 2,
            ..opts()
        },
    );
    queue.append(block(1));
    queue.append(block(2));
    let first = queue.peek(NOW).unwrap().unwrap();
    queue.append(block(3)); // drops block 1, which is being sent
    assert_eq!(
        dropped(&stats, DropReason::BufferFull),
        0,
        "its send may still succeed"
    );
    queue.ack(&first);
    let second = queue.peek(NOW).unwrap().unwrap();
    queue.append(block(4)); // drops block 2 while in flight; the send then fails for good
    queue.discard(&second, DropReason::Rejected);
    assert_eq!(dropped(&stats, DropReason::Rejected), 2);
    assert_eq!(dropped(&stats, DropReason::BufferFull), 0);
    queue.append(block(5)); // drops block 3, not in flight: counted
    assert_eq!(dropped(&stats, DropReason::BufferFull), 3);
    assert_eq!(drain(&queue), [4, 5]);
}
