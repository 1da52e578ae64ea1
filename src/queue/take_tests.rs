//! Taking by several senders at once and newest first: disjoint blocks, out-of-order
//! acknowledgements kept across a restart, nothing lost, nothing sent twice.

use super::tests::{NOW, block, drain, opts, xorshift};
use super::*;

fn open(dir: &Path) -> Queue {
    Queue::open(dir, opts(), Arc::new(RemoteStats::default())).unwrap()
}

fn ids(take: Take) -> Vec<u32> {
    match take {
        Take::Batch(batch) => batch.iter().map(|p| p.block.samples).collect(),
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn batch(take: Take) -> Vec<Pending> {
    match take {
        Take::Batch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

#[test]
fn parallel_takes_are_disjoint_and_out_of_order_acks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    for n in 1..=40 {
        queue.append(block(n));
    }
    let a = batch(queue.take(NOW, 5, usize::MAX, false).unwrap());
    let b = batch(queue.take(NOW, 5, usize::MAX, false).unwrap());
    let c = batch(queue.take(NOW, 5, usize::MAX, false).unwrap());
    let got = |v: &[Pending]| v.iter().map(|p| p.block.samples).collect::<Vec<_>>();
    assert_eq!(
        (got(&a), got(&b), got(&c)),
        (
            vec![1, 2, 3, 4, 5],
            vec![6, 7, 8, 9, 10],
            vec![11, 12, 13, 14, 15]
        )
    );
    for p in c.iter().chain(&b) {
        queue.ack(p);
    }
    assert_eq!(queue.gauges().blocks, 30);
    assert!(queue.is_acknowledged(match b[0].position {
        Position::Disk { offset, .. } => offset,
        Position::Memory { .. } => unreachable!(),
    }));
    queue.sync();
    drop(queue); // `a` was never acknowledged: it comes again, b and c do not
    let queue = open(dir.path());
    assert_eq!(queue.gauges().blocks, 30);
    let status = inspect::backlog(dir.path()).unwrap();
    assert_eq!(status.blocks, 30);
    let expected: Vec<u32> = (1..=5).chain(16..=40).collect();
    assert_eq!(drain(&queue), expected);
    // Everything settled: the reader has swallowed the ledger, the sent files are gone.
    assert_eq!(queue.gauges().blocks, 0);
    assert_eq!(queue.gauges().bytes, 0);
    assert_eq!(segment::list(dir.path()).unwrap().len(), 1);
}

#[test]
fn newest_first_drains_recent_blocks_backwards_and_settles_them_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    for n in 1..=6 {
        queue.append(block(n));
    }
    let newest = batch(queue.take(NOW, 2, usize::MAX, true).unwrap());
    assert_eq!(
        newest.iter().map(|p| p.block.samples).collect::<Vec<_>>(),
        vec![6, 5]
    );
    // The next cycle arrives while the backlog drains: it goes next, then on backwards.
    queue.append(block(7));
    assert_eq!(
        ids(queue.take(NOW, 2, usize::MAX, true).unwrap()),
        vec![7, 4]
    );
    assert_eq!(
        ids(queue.take(NOW, 10, usize::MAX, true).unwrap()),
        vec![3, 2, 1]
    );
    assert!(matches!(
        queue.take(NOW, 10, usize::MAX, true).unwrap(),
        Take::Held
    ));
    for p in &newest {
        queue.ack(p);
    }
    queue.sync();
    drop(queue); // crash with 7 and the backlog unacknowledged
    let queue = open(dir.path());
    assert_eq!(drain(&queue), vec![1, 2, 3, 4, 7]);
    assert!(matches!(
        queue.take(NOW, 10, usize::MAX, true).unwrap(),
        Take::Empty
    ));
}

#[test]
fn while_the_link_is_down_only_the_newest_cycle_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    for n in 1..=5 {
        queue.append(block(n));
    }
    // block(n) ends at NOW + n: a window of 1 ms holds blocks 5 and 4.
    assert_eq!(ids(queue.take_newest(NOW, 1).unwrap()), vec![5, 4]);
    assert!(matches!(queue.take_newest(NOW, 1).unwrap(), Take::Held));
}

#[test]
fn a_released_block_is_taken_again_in_its_place_and_newer_than_sees_newer_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    for n in 1..=3 {
        queue.append(block(n));
    }
    let old = batch(queue.take(NOW, 2, usize::MAX, false).unwrap());
    assert!(queue.newer_than(&old), "3 is newer than 1 and 2");
    let Take::Batch(newest) = queue.take_newest(NOW, 0).unwrap() else {
        panic!("the newest is free")
    };
    assert!(!queue.newer_than(&newest));
    assert!(matches!(queue.take_newest(NOW, 0).unwrap(), Take::Held));
    queue.release(&old);
    queue.release(&newest);
    assert_eq!(drain(&queue), vec![1, 2, 3]);
}

#[test]
fn a_damaged_record_met_behind_blocks_in_flight_is_settled_not_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, stats) = {
        let stats = Arc::new(RemoteStats::default());
        (
            Queue::open(dir.path(), opts(), stats.clone()).unwrap(),
            stats,
        )
    };
    for n in 1..=3 {
        queue.append(block(n));
    }
    let first = batch(queue.take(NOW, 1, usize::MAX, false).unwrap());
    // Flip a body byte of block 2 (the second record of the first segment).
    let record_len = record::frame(&block(1)).len() as u64;
    let seg = segment::list(dir.path()).unwrap()[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment::path(dir.path(), seg.start))
        .unwrap();
    file.write_at(b"X", record_len + HEADER_LEN as u64 + 3)
        .unwrap();
    // Taken from memory the blocks would be whole: read them from the damaged file.
    queue.forget_fresh();
    assert_eq!(ids(queue.take(NOW, 5, usize::MAX, false).unwrap()), vec![3]);
    assert_eq!(
        stats
            .dropped_by_reason()
            .into_iter()
            .find(|(r, _)| *r == DropReason::Corrupt)
            .map(|(_, n)| n),
        Some(2)
    );
    queue.ack(&first[0]);
    assert_eq!(queue.gauges().blocks, 1, "only 3 waits");
}

/// `idle` answers without reading only when `take` would find nothing too: checked after
/// every step of random appends, parallel takes (oldest and newest first), acknowledgements in
/// any order, hand-backs, and blocks dropped for space.
#[test]
fn idle_never_hides_a_block_that_take_would_hand_out() {
    let dir = tempfile::tempdir().unwrap();
    let record_len = record::frame(&block(1)).len() as u64;
    let queue = Queue::open(
        dir.path(),
        Options {
            max_size: record_len * 12,
            ..opts()
        },
        Arc::new(RemoteStats::default()),
    )
    .unwrap();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
    let mut out: Vec<Pending> = Vec::new();
    let (mut n, mut answered) = (0, [0u32; 3]);
    for step in 0..3000 {
        match next() % 8 {
            0 => {
                n += 1;
                queue.append(block(n));
            }
            1 | 2 if !out.is_empty() => {
                let p = out.swap_remove((next() % out.len() as u64) as usize);
                queue.ack(&p);
            }
            3 if !out.is_empty() => {
                let p = out.swap_remove((next() % out.len() as u64) as usize);
                queue.release(std::slice::from_ref(&p));
            }
            _ => {
                let idle = queue.idle();
                let took = queue
                    .take(
                        NOW,
                        1 + (next() % 3) as usize,
                        usize::MAX,
                        next().is_multiple_of(2),
                    )
                    .unwrap();
                match (&idle, &took) {
                    (None, _) => answered[0] += 1,
                    (Some(Take::Empty), Take::Empty) => answered[1] += 1,
                    (Some(Take::Held), Take::Held) => answered[2] += 1,
                    _ => panic!("step {step}: idle said {idle:?}, take found {took:?}"),
                }
                if let Take::Batch(batch) = took {
                    out.extend(batch);
                }
            }
        }
    }
    assert!(answered.iter().all(|&a| a > 50), "{answered:?}");
}

/// The latest appends are taken without reading the disk, as stored; blocks older than them
/// (a backlog from before a restart) are left to the disk read, and so is everything after
/// them until the reader has passed that backlog.
#[test]
fn the_latest_appends_are_taken_from_memory_and_a_backlog_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    for n in 1..=3 {
        queue.append(block(n));
    }
    let taken = batch(
        queue
            .take_in_memory(NOW, 64, usize::MAX, false)
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        taken.iter().map(|p| p.block.clone()).collect::<Vec<_>>(),
        (1..=3).map(block).collect::<Vec<_>>()
    );
    for p in &taken {
        queue.ack(p);
    }
    queue.append(block(4));
    queue.append(block(5));
    // Newest first, and the newest cycle only (window 0: the newest block alone).
    assert_eq!(
        ids(queue.take_newest_in_memory(NOW, 0).unwrap().unwrap()),
        vec![5]
    );
    queue.sync();
    drop(queue);

    let queue = open(dir.path());
    assert!(queue.take_in_memory(NOW, 64, usize::MAX, false).is_none());
    queue.append(block(6));
    assert!(queue.take_in_memory(NOW, 64, usize::MAX, true).is_none());
    assert!(queue.take_newest_in_memory(NOW, 0).is_none());
    let backlog = batch(queue.take(NOW, 2, usize::MAX, false).unwrap());
    assert_eq!(ids(Take::Batch(backlog.clone())), vec![4, 5]);
    for p in &backlog {
        queue.ack(p);
    }
    assert_eq!(
        ids(queue
            .take_in_memory(NOW, 64, usize::MAX, false)
            .unwrap()
            .unwrap()),
        vec![6]
    );
}

/// While an append or a position save holds the queue (across its fdatasync, on the blocking
/// pool), the calls a sender makes on the runtime's thread step aside instead of waiting:
/// the pool's `take` waits for the sync, and nothing is taken twice or lost meanwhile.
#[test]
fn the_runtime_side_calls_step_aside_while_the_queue_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path());
    queue.append(block(1));
    {
        let _syncing = queue.inner.lock().unwrap();
        assert!(queue.idle().is_none());
        assert!(queue.take_in_memory(NOW, 64, usize::MAX, false).is_none());
        assert!(queue.take_newest_in_memory(NOW, 0).is_none());
    }
    assert_eq!(
        ids(queue
            .take_in_memory(NOW, 64, usize::MAX, false)
            .unwrap()
            .unwrap()),
        vec![1]
    );
}
