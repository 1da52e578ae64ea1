//! The queue's recovery over arbitrary file contents: segments of random bytes with real
//! records mixed in, and any `meta.json` (from before the position file) or `position`. Opening never panics, and every intact record after
//! the reader position is delivered, in order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::queue::Block;
use crate::queue::record::frame;
use crate::queue::segment::path as segment_path;
use crate::queue::{Options, Queue};
use crate::stats::RemoteStats;

const NOW: i64 = 1_800_000_000_000;

fn block(n: u32) -> Block {
    Block {
        data: Bytes::from(format!("block {n}").repeat(3)),
        samples: n,
        min_timestamp_ms: NOW - 10,
        max_timestamp_ms: NOW,
    }
}

fn opts() -> Options {
    Options {
        max_size: 64 << 20,
        max_age: Duration::from_secs(3600),
        segment_size: 4096,
        memory_fallback_size: 1 << 20,
    }
}

/// One piece of a segment file: a real record (its block id) or garbage.
#[derive(Debug, Clone)]
enum Piece {
    Record(u32),
    Garbage(Vec<u8>),
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            (1u32..1000).prop_map(Piece::Record),
            prop::collection::vec(any::<u8>(), 1..80).prop_map(Piece::Garbage),
        ],
        0..12,
    )
}

/// What meta.json holds: nothing, arbitrary bytes, or a well-formed position anywhere.
fn meta() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        any::<u64>()
            .prop_map(|o| Some(format!("{{\"version\":1,\"read_offset\":{o}}}").into_bytes())),
        (0u64..2000)
            .prop_map(|o| Some(format!("{{\"version\":1,\"read_offset\":{o}}}").into_bytes())),
        Just(Some(b"{\"version\":1,\"read_offset\":-1}".to_vec())),
    ]
}

/// What the position file holds: nothing, arbitrary bytes, or a real save of a position
/// anywhere, whole or with one byte changed (`flip`: at that byte of the file, if inside).
#[derive(Debug, Clone)]
enum PositionFile {
    Absent,
    Bytes(Vec<u8>),
    Saved {
        read_offset: u64,
        flip: Option<usize>,
    },
}

fn position_file() -> impl Strategy<Value = PositionFile> {
    prop_oneof![
        Just(PositionFile::Absent),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(PositionFile::Bytes),
        (
            prop_oneof![any::<u64>(), 0u64..2000],
            prop::option::of(0usize..8192)
        )
            .prop_map(|(read_offset, flip)| PositionFile::Saved { read_offset, flip }),
    ]
}

fn write_position(dir: &std::path::Path, file: &PositionFile) {
    let path = dir.join(crate::queue::position::FILE);
    match file {
        PositionFile::Absent => {}
        PositionFile::Bytes(bytes) => std::fs::write(path, bytes).unwrap(),
        PositionFile::Saved { read_offset, flip } => {
            let (_, mut position) = crate::queue::position::Position::open(dir);
            position.save(dir, *read_offset, [].iter()).unwrap();
            if let Some(at) = flip {
                let mut bytes = std::fs::read(&path).unwrap();
                if let Some(b) = bytes.get_mut(*at) {
                    *b ^= 0x20;
                }
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(super::cases(128))]

    #[test]
    fn recovery_over_arbitrary_files_never_panics_and_delivers_a_suffix_in_order(
        segments in prop::collection::vec(pieces(), 1..4),
        meta in meta(),
        position in position_file(),
        junk_name in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut start = 0u64;
        let mut written = Vec::new();
        for pieces in &segments {
            let mut bytes = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Record(n) => {
                        bytes.extend(frame(&block(*n)));
                        written.push(*n);
                    }
                    Piece::Garbage(g) => bytes.extend(g),
                }
            }
            std::fs::write(segment_path(dir.path(), start), &bytes).unwrap();
            start += bytes.len() as u64 + 7; // a gap, as after a lost file
        }
        if let Some(meta) = &meta {
            std::fs::write(dir.path().join("meta.json"), meta).unwrap();
        }
        write_position(dir.path(), &position);
        if junk_name {
            std::fs::write(dir.path().join("notanumber.seg"), b"x").unwrap();
        }
        let queue = Queue::open(dir.path(), opts(), Arc::new(RemoteStats::default()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut delivered = Vec::new();
        while let Some(p) = queue.peek(NOW).map_err(|e| TestCaseError::fail(e.to_string()))? {
            delivered.push(p.block.samples);
            queue.ack(&p);
            prop_assert!(delivered.len() <= written.len(), "more delivered than written");
        }
        // A suffix of what was written (the reader position may skip a prefix), in order;
        // without a usable position, everything.
        prop_assert!(written.ends_with(&delivered), "written {written:?}, delivered {delivered:?}");
        let usable_meta = meta.as_ref().is_some_and(|m| m.starts_with(b"{\"version\":1,\"read_offset\":") && !m.ends_with(b"-1}"));
        // A save without spans fills the first 36 bytes of slot 0; the other slot is empty.
        let usable = match position {
            PositionFile::Absent => usable_meta,
            PositionFile::Bytes(_) => false,
            PositionFile::Saved { flip, .. } => flip.is_none_or(|at| at >= 36),
        };
        if !usable {
            prop_assert_eq!(&delivered, &written);
        }
        // And the queue still works.
        queue.append(block(5000));
        prop_assert_eq!(queue.peek(NOW).unwrap().map(|p| p.block.samples), Some(5000));
    }
}
