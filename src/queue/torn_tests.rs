//! Crashes at every write boundary: an append torn at every byte offset of its record (cut
//! short, or at full length with the rest never written), a save of the position file torn at
//! every byte offset (in place; the file cut short; the temporary file of the replace that
//! makes it), and a model test that crashes at random points, tears the tail and the position,
//! then reopens. The rules: no panic, nothing whose append returned is lost, a torn tail is
//! cut, the rest is delivered in order, and what is delivered again is only what was
//! acknowledged since a saved position.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::tests::{NOW, block, drain, opts, xorshift};
use super::*;

fn open(dir: &Path) -> Queue {
    Queue::open(dir, opts(), Arc::new(RemoteStats::default())).expect("reopen after a crash")
}

fn last_segment(dir: &Path) -> (PathBuf, u64) {
    let seg = segment::list(dir).unwrap().pop().expect("a segment");
    (segment::path(dir, seg.start), seg.len)
}

/// Blocks 1-5 appended, 1 and 2 delivered and the position saved: the state every tear hits.
fn five_appended_two_delivered(dir: &Path) {
    let queue = open(dir);
    for n in 1..=5 {
        queue.append(block(n));
    }
    for _ in 0..2 {
        let p = queue.peek(NOW).unwrap().unwrap();
        queue.ack(&p);
    }
    queue.sync();
}

#[test]
fn an_append_torn_at_every_byte_offset_is_cut_and_the_rest_delivers_in_order() {
    let torn = record::frame(&block(6));
    for cut in 0..=torn.len() {
        for zero_filled in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            five_appended_two_delivered(dir.path());
            // The crash: block 6's append got `cut` bytes onto the disk; with `zero_filled`
            // the file also grew to the record's full length, the rest never written.
            let (path, len) = last_segment(dir.path());
            let mut bytes = torn[..cut].to_vec();
            if zero_filled {
                bytes.resize(torn.len(), 0);
            }
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&bytes, len).unwrap();
            drop(file);

            let queue = open(dir.path());
            let complete = cut == torn.len();
            let expected: Vec<u32> = if complete {
                vec![3, 4, 5, 6]
            } else {
                vec![3, 4, 5]
            };
            let case = format!("cut at {cut} of {}, zero-filled {zero_filled}", torn.len());
            // The queue takes new appends after the torn record, in order.
            queue.append(block(7));
            let mut got = drain(&queue);
            assert_eq!(got.pop(), Some(7), "{case}");
            assert_eq!(got, expected, "{case}");
            if !complete && (!zero_filled || cut < record::HEADER_LEN) {
                // A torn tail (no valid header left in it) is cut: block 7 follows block 5.
                let (_, len_after) = last_segment(dir.path());
                assert_eq!(
                    len_after,
                    len + record::frame(&block(7)).len() as u64,
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn a_torn_first_record_of_a_new_segment_is_cut_too() {
    let torn = record::frame(&block(6));
    for cut in 0..torn.len() {
        let dir = tempfile::tempdir().unwrap();
        five_appended_two_delivered(dir.path());
        // The crash came right after rotation: the new data file holds part of block 6.
        let (_, len) = last_segment(dir.path());
        let start = segment::list(dir.path()).unwrap().pop().unwrap().start + len;
        std::fs::write(segment::path(dir.path(), start), &torn[..cut]).unwrap();
        let queue = open(dir.path());
        queue.append(block(7));
        assert_eq!(drain(&queue), [3, 4, 5, 7], "cut at {cut}");
    }
}

/// Segment files as they are now, to start each case from the same data.
fn snapshot_segments(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segment::list(dir)
        .unwrap()
        .iter()
        .map(|s| {
            let path = segment::path(dir, s.start);
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn restore(segments: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in segments {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Each save overwrites the older slot in place: torn at every byte offset (its first bytes
/// written, or its last ones), the queue delivers from the save before, or from the new one
/// when it is whole. Two saves are torn: one into the empty slot, one over an older save.
#[test]
fn a_position_save_torn_at_every_byte_offset_resends_at_most_since_the_save_before() {
    let dir = tempfile::tempdir().unwrap();
    five_appended_two_delivered(dir.path());
    let path = dir.path().join(position::FILE);
    let segments = snapshot_segments(dir.path());
    for (acked_before, expected_before, expected_after) in
        [(2, vec![3, 4, 5], vec![4, 5]), (3, vec![4, 5], vec![5])]
    {
        let old = std::fs::read(&path).unwrap();
        // The next save: one more block acknowledged.
        {
            let queue = open(dir.path());
            let p = queue.peek(NOW).unwrap().unwrap();
            assert_eq!(p.block.samples, acked_before + 1);
            queue.ack(&p);
            queue.sync();
        }
        let new = std::fs::read(&path).unwrap();
        assert_eq!(old.len(), new.len(), "overwritten in place");
        let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
        let (first, end) = (changed[0], changed[changed.len() - 1] + 1);
        for cut in first..=end {
            for head_first in [true, false] {
                restore(&segments);
                let mut torn = old.clone();
                let range = if head_first { first..cut } else { cut..end };
                let whole = range == (first..end);
                torn[range.clone()].copy_from_slice(&new[range]);
                std::fs::write(&path, &torn).unwrap();
                let got = drain(&open(dir.path()));
                let expected = if whole {
                    &expected_after
                } else {
                    &expected_before
                };
                assert_eq!(&got, expected, "cut at {cut}, head first {head_first}");
            }
        }
        restore(&segments);
        std::fs::write(&path, &new).unwrap();
    }
}

/// The file itself cut short (every 61st length and the last ones; no save changes its
/// length, so this is damage, and any wrong length is refused the same way): never trusted;
/// the data is delivered again from the oldest file rather than lost.
#[test]
fn a_position_file_cut_short_at_every_length_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    five_appended_two_delivered(dir.path());
    let path = dir.path().join(position::FILE);
    let whole = std::fs::read(&path).unwrap();
    let segments = snapshot_segments(dir.path());
    for cut in (0..=whole.len())
        .step_by(61)
        .chain([whole.len() - 1, whole.len()])
    {
        restore(&segments);
        std::fs::write(&path, &whole[..cut]).unwrap();
        let got = drain(&open(dir.path()));
        if cut == whole.len() {
            assert_eq!(got, [3, 4, 5]);
        } else {
            assert_eq!(got, [1, 2, 3, 4, 5], "cut at {cut}");
        }
    }
}

/// The position file is made (first save, or a ledger outgrowing its slots) by an atomic
/// replace: a crash with its temporary file torn at every offset keeps what was saved before,
/// here an upgraded queue's `meta.json`, which the next save then replaces.
#[test]
fn a_crash_while_the_position_file_is_made_keeps_the_previous_position() {
    let dir = tempfile::tempdir().unwrap();
    five_appended_two_delivered(dir.path());
    let path = dir.path().join(position::FILE);
    let tmp_path = dir.path().join("position.tmp");
    let made = std::fs::read(&path).unwrap();
    // As an agent from before the position file left it: the same position in meta.json.
    let read_offset = 2 * record::frame(&block(1)).len();
    let legacy = format!("{{\"version\":1,\"read_offset\":{read_offset}}}");
    let segments = snapshot_segments(dir.path());
    for cut in (0..=made.len())
        .step_by(97)
        .chain([made.len() - 1, made.len()])
    {
        restore(&segments);
        let _ = std::fs::remove_file(&path);
        std::fs::write(dir.path().join("meta.json"), &legacy).unwrap();
        std::fs::write(&tmp_path, &made[..cut]).unwrap();
        let queue = open(dir.path());
        assert_eq!(drain(&queue), [3, 4, 5], "tmp cut at {cut}");
        queue.sync(); // the next save makes the file and retires meta.json
        assert!(path.exists() && !dir.path().join("meta.json").exists());
    }
}

/// Random appends, acks, clean restarts and crashes; a crash may tear the append in progress
/// at a random byte and damage the position file. Checked against a model of what must be delivered.
#[test]
fn model_check_with_crashes_at_random_write_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
    let mut queue = open(dir.path());
    // Appended and not acknowledged: must all come, in order.
    let mut model: VecDeque<u32> = VecDeque::new();
    // Acknowledged, oldest first: after a crash, a run of the newest may come again.
    let mut acked: Vec<u32> = Vec::new();
    let mut acked_since_sync: Vec<u32> = Vec::new();
    let mut n = 0;
    let mut crashes = 0;
    for step in 0..4000 {
        match next() % 20 {
            0..=8 => {
                n += 1;
                queue.append(block(n));
                model.push_back(n);
            }
            9..=15 => {
                let got = queue.peek(NOW).unwrap();
                assert_eq!(
                    got.as_ref().map(|p| p.block.samples),
                    model.front().copied()
                );
                if let Some(p) = got {
                    queue.ack(&p);
                    let id = model.pop_front().unwrap();
                    acked.push(id);
                    acked_since_sync.push(id);
                }
            }
            16 if next().is_multiple_of(2) => {
                assert_eq!(queue.gauges().blocks, model.len() as u64, "step {step}");
            }
            16 => {
                queue.sync();
                acked_since_sync.clear();
                drop(queue);
                queue = open(dir.path());
            }
            _ => {
                // The crash: no sync; maybe mid-append, maybe mid-save of the position.
                crashes += 1;
                drop(queue);
                if next().is_multiple_of(2) {
                    n += 1; // this append never returned: not in the model
                    let torn = record::frame(&block(n));
                    let cut = (next() % torn.len() as u64) as usize;
                    let (path, len) = last_segment(dir.path());
                    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
                    file.write_all(&torn[..cut]).unwrap();
                    assert_eq!(file.metadata().unwrap().len(), len + cut as u64);
                }
                let meta_torn = next().is_multiple_of(4);
                if meta_torn {
                    // Damage at a random byte of a random slot (or of the whole file), then
                    // the queue may fall back to an older save or to the oldest data.
                    let path = dir.path().join(position::FILE);
                    if let Ok(mut bytes) = std::fs::read(&path) {
                        let at = (next() % (bytes.len() as u64 + 1)) as usize;
                        if next().is_multiple_of(2) {
                            bytes.truncate(at);
                        } else if at < bytes.len() {
                            bytes[at] ^= 0x5a;
                        }
                        std::fs::write(&path, &bytes).unwrap();
                    }
                }
                queue = open(dir.path());
                // What comes before the model's head must be acknowledged blocks coming again:
                // the newest ones, in order; without a torn position only those acknowledged
                // since the last explicit save (the queue saves on its own in between).
                let mut again = Vec::new();
                loop {
                    let p = queue.peek(NOW).unwrap();
                    let id = p.as_ref().map(|p| p.block.samples);
                    if id == model.front().copied() {
                        break;
                    }
                    let p = p.unwrap_or_else(|| panic!("step {step}: {:?} lost", model.front()));
                    again.push(p.block.samples);
                    queue.ack(&p);
                }
                let allowed = if meta_torn { &acked } else { &acked_since_sync };
                assert!(
                    allowed.ends_with(&again),
                    "step {step}: delivered again {again:?}, acknowledged {allowed:?}"
                );
                acked_since_sync.clear();
                acked_since_sync.extend(&again);
            }
        }
    }
    assert!(crashes > 100, "{crashes} crashes");
    assert_eq!(drain(&queue), Vec::from(model));
}
