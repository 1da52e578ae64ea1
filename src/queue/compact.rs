//! Compaction of sealed segments: the records of a segment nobody is reading are re-packed
//! into fewer, denser records, so that a long outage costs a few bytes per sample on disk
//! instead of a whole WriteRequest (labels included) per cycle.
//!
//! The queue never looks inside a block; a [`Packer`] (made by `remote_write::pack`, which
//! knows the format) does. Compaction only decides which records go in and writes what comes
//! out, crash-safely:
//!
//! 1. every record of the segment is read and its header and body checked; a segment with any
//!    damage is left exactly as it is (the reader's skip-and-count handles it as before);
//! 2. the packed records are written to `<segment>.packing` (0600, `O_EXCL`, `O_NOFOLLOW`)
//!    and fsynced;
//! 3. that file is renamed over the segment, and the folder fsynced before the queue goes on.
//!
//! A crash before step 3's rename leaves the old segment whole (the `.packing` file is deleted
//! on open); after it, the new one, whole, with the same name: either way every sample is
//! there exactly once. The folder is fsynced before the reader can enter the new file, so a
//! saved reader position never points into a layout a power cut could undo.
//!
//! The packed segment keeps its name (the queue offset of its first byte) and is shorter than
//! before: queue offsets stay monotonic, with a gap up to the next segment's start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Block;
use super::record::{self, HEADER_LEN};
use super::segment::{self, Segment};

/// Re-packs blocks, in order, into fewer blocks holding the same samples.
pub trait Packer {
    /// Takes in one block; an error (an unreadable body) leaves the segment as it is.
    fn add(&mut self, block: &Block) -> Result<(), String>;
    /// True when the next pack should be taken before adding more.
    fn is_full(&self) -> bool;
    /// The pack of everything added since the last take; None when nothing was added.
    fn take(&mut self) -> Option<Block>;
}

/// Makes a fresh packer for one segment.
pub type NewPacker = fn() -> Box<dyn Packer>;

/// Suffix of the file a packed segment is written to before it replaces the segment.
const PACKING_SUFFIX: &str = ".packing";

fn packing_path(dir: &Path, start: u64) -> PathBuf {
    let mut name = segment::path(dir, start).into_os_string();
    name.push(PACKING_SUFFIX);
    PathBuf::from(name)
}

/// Deletes what an interrupted compaction left (called on open, before anything else).
pub fn remove_leftovers(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(PACKING_SUFFIX))
        {
            tracing::info!(file = %entry.path().display(), "deleting an interrupted buffer compaction");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The segment after compaction (same start, new length).
    pub segment: Segment,
    /// The packed records: queue offset, the next record's offset, newest sample (ms).
    pub records: Vec<(u64, u64, i64)>,
}

/// The steps of a compaction, for the crash tests: stop after one as if the process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first packed record written, nothing synced.
    HalfWritten,
    Written,
    Synced,
    Renamed,
}

#[cfg(test)]
thread_local! {
    /// The step after which compactions on this thread "crash" (tests only).
    pub static CRASH_AFTER: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn crash_after(step: Step) -> bool {
    CRASH_AFTER.with(|c| c.get() == Some(step))
}

#[cfg(not(test))]
fn crash_after(_: Step) -> bool {
    false
}

/// The error of a compaction a test stopped on purpose.
fn crashed() -> io::Error {
    io::Error::other("compaction stopped by a test")
}

/// Compacts `seg` (sealed; neither written, read nor in flight: the caller checks). Records
/// for which `is_acked(offset)` holds are already acknowledged and are dropped. Ok(None)
/// when the segment was left as it is (damage, an unreadable body, or nothing to gain).
pub fn compact(
    dir: &Path,
    seg: Segment,
    new_packer: NewPacker,
    is_acked: &dyn Fn(u64) -> bool,
) -> io::Result<Option<Compacted>> {
    let file = File::open(segment::path(dir, seg.start))?;
    let mut packer = new_packer();
    let mut packs = Vec::new();
    let mut pos = 0;
    let mut header_buf = [0u8; HEADER_LEN];
    while pos < seg.len {
        if seg.len - pos < HEADER_LEN as u64 {
            return Ok(None);
        }
        file.read_exact_at(&mut header_buf, pos)?;
        let Some(header) =
            record::parse_header(&header_buf).filter(|h| pos + h.record_len() <= seg.len)
        else {
            return Ok(None);
        };
        let offset = seg.start + pos;
        pos += header.record_len();
        if is_acked(offset) {
            continue;
        }
        let mut body = vec![0u8; header.len as usize];
        file.read_exact_at(&mut body, offset - seg.start + HEADER_LEN as u64)?;
        if !record::body_is_intact(&header, &body) {
            return Ok(None);
        }
        if packer.is_full() {
            packs.extend(packer.take().map(|b| record::frame(&b)));
        }
        if let Err(e) = packer.add(&header.into_block(body)) {
            tracing::warn!(segment = seg.start, error = %e, "cannot pack a buffer record; the segment stays as it is");
            return Ok(None);
        }
    }
    packs.extend(packer.take().map(|b| record::frame(&b)));
    let len: u64 = packs.iter().map(|p| p.len() as u64).sum();
    if len >= seg.len {
        return Ok(None);
    }
    let mut records = Vec::with_capacity(packs.len());
    let mut offset = seg.start;
    for pack in &packs {
        let newest = record::parse_header(pack).map_or(i64::MAX, |h| h.max_ts_ms);
        records.push((offset, offset + pack.len() as u64, newest));
        offset += pack.len() as u64;
    }
    replace(dir, seg.start, &packs)?;
    Ok(Some(Compacted {
        segment: Segment {
            start: seg.start,
            len,
        },
        records,
    }))
}

/// Writes `records` to the packing file and renames it over the segment at `start`.
fn replace(dir: &Path, start: u64, records: &[Vec<u8>]) -> io::Result<()> {
    let tmp = packing_path(dir, start);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let result = (|| {
        for (i, r) in records.iter().enumerate() {
            out.write_all(r)?;
            if i == 0 && crash_after(Step::HalfWritten) {
                return Err(crashed());
            }
        }
        if crash_after(Step::Written) {
            return Err(crashed());
        }
        out.sync_all()?;
        if crash_after(Step::Synced) {
            return Err(crashed());
        }
        fs::rename(&tmp, segment::path(dir, start))
    })();
    if let Err(e) = result {
        // A test's "crash" leaves the file as a real crash would; a real error cleans up.
        if ![Step::HalfWritten, Step::Written, Step::Synced]
            .into_iter()
            .any(crash_after)
        {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    if crash_after(Step::Renamed) {
        return Err(crashed());
    }
    crate::state_file::sync_dir(dir)
}
