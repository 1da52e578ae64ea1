//! The durable FIFO of compressed blocks, one per remote-write target, under
//! `<state_dir>/queue/<remote>/`.
//!
//! # Design constraints
//!
//! - A block is appended (and fsynced) before anything tries to send it, and leaves the queue
//!   only when the sender acknowledges it: after a 2xx, after a 400/409/415 (counted as
//!   `rejected`), or when it is dropped and counted (`too_old`, `buffer_full`, `corrupt`).
//!   The block in flight stays in the queue, so a crash at any instant loses nothing that was
//!   appended; at worst blocks acknowledged less than a second before a crash are sent again.
//! - Blocks are stored as they are sent (snappy-compressed WriteRequests): no re-encoding on
//!   the way out, and the queue never looks inside them. Only a segment sealed behind the
//!   reader (an outage's backlog) is rewritten, by a [`Packer`] the encoder supplies (see
//!   "Packing").
//! - Every record carries a CRC32C of its header and of its body ([`record`]). A record that
//!   fails its check is skipped and counted; the records after it are still delivered.
//! - Data lives in segment files of about `buffer.segment_size`, named by the queue offset
//!   of their first byte ([`segment`]). Records never span segments. A segment is deleted only
//!   when the reader has passed its last record, and the segment being written is never deleted.
//! - The reader position is kept in `meta.json` ([`meta`]), replaced atomically, at most once a
//!   second while draining, whenever the queue runs empty, and on shutdown.
//!
//! # fsync policy
//!
//! Data: every append is fsynced before `append` returns (an append happens a few times per
//! collection interval, so this costs little and a power cut loses nothing appended).
//! Reader position: at most once a second, when the queue runs empty and on shutdown; losing it
//! only means resending what was acknowledged since (VictoriaMetrics' deduplication absorbs it).
//!
//! # Recovery on open
//!
//! The last segment is scanned and a torn tail (an append cut short) is truncated. An
//! unreadable `meta.json` never wipes data: the reader then starts at the oldest segment. A
//! position outside the data is clamped into it.
//!
//! # Packing
//!
//! A cycle's WriteRequest repeats every series' labels for one sample each: 16.9 bytes per
//! sample on disk for a typical host. With a packer set ([`Queue::pack_with`], as the agent
//! does), the segment being written is sealed at [`PACKED_SEGMENT_SIZE`] and each sealed
//! segment is packed ([`compact`]): its records become a few records of up to 50,000 samples and
//! 30 minutes in which each series appears once (`remote_write::pack`), about 4 bytes per
//! sample, which are also the bytes sent while draining. Still CRC32C-framed records, still named by offset: the
//! packed file replaces the old one by write, fsync, rename, fsync the folder, so a crash at
//! any instant leaves one of the two whole, and a `.packing` leftover is deleted on open.
//!
//! Packing never touches the segment being written, the segment the reader is in (or has
//! passed), any record in flight, or a segment with damage (the reader's skip-and-count
//! stays the one way damage is handled). Records already acknowledged out of order are left
//! out through compaction's `is_acked` predicate. In normal operation the reader is at the
//! end of the segment sealed, so nothing is packed and nothing costs more; the first segment
//! of an outage (where the reader waits) stays unpacked.
//!
//! Trade-offs: a pack is dropped as a whole when all its samples are older than `max_age`
//! (its newest sample decides, so up to 30 minutes of older samples may still be sent),
//! and a pack is one request body: the sender splits a rejected pack back into one request
//! per timestamp, so a 400 still drops only the samples of the cycle that caused it.
//!
//! # When the disk refuses writes
//!
//! ENOSPC, EIO or a read-only folder: the block is kept in memory (up to
//! `buffer.memory_fallback_size`, oldest dropped as `buffer_full` beyond it) and sent from
//! there; the failure is logged once per incident and counted in
//! `jellyfin_pusher_buffer_write_errors_total`. Every later append first moves the memory
//! blocks to disk, in order, so the queue recovers by itself when space returns.

mod block;
pub mod compact;
pub mod inspect;
mod meta;
pub mod record;
pub mod segment;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::stats::{BufferGauges, DropReason, RemoteStats};
use record::HEADER_LEN;
use segment::Segment;

pub use block::Block;
pub use compact::{NewPacker, Packer};

/// With a packer, the segment being written is sealed at this size (or `segment_size` if
/// smaller) so that an outage's data is packed in steps of this size: the first segment of an
/// outage, where the reader sits, stays unpacked, so a smaller step wastes less there; a
/// larger one packs more cycles together.
pub const PACKED_SEGMENT_SIZE: u64 = 512 * 1024;

/// Limits of one queue, from the `[buffer]` config table.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_size: u64,
    pub max_age: Duration,
    pub segment_size: u64,
    pub memory_fallback_size: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("buffer {dir}: {source}")]
pub struct QueueError {
    dir: PathBuf,
    source: io::Error,
}

/// A block taken from the head of the queue, to be acknowledged once its fate is known.
#[derive(Debug, Clone)]
pub struct Pending {
    pub block: Block,
    position: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A record at `offset`; the next one starts at `next`.
    Disk { offset: u64, next: u64 },
    /// The head of the in-memory fallback, identified by its sequence number.
    Memory { seq: u64 },
}

pub struct Queue {
    inner: Mutex<Inner>,
    appended: Notify,
    stats: Arc<RemoteStats>,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    /// Oldest first; never empty: the last one is the segment being written.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    reader: Option<(u64, File)>,
    read_offset: u64,
    /// Records between the reader and the writer (damaged stretches count as one).
    disk_blocks: u64,
    saved_offset: u64,
    saved_at: Instant,
    fallback: VecDeque<(u64, Block)>,
    fallback_bytes: u64,
    next_seq: u64,
    /// The disk error of the current incident, so that it is logged once.
    disk_failure: Option<String>,
    /// Saving the reader position failed and has not worked since.
    position_unsaved: bool,
    /// The block the sender holds (see `drop_for_space`).
    in_flight: InFlight,
    /// Packs sealed segments when set ([`Queue::pack_with`]).
    packer: Option<NewPacker>,
}

/// What the sender holds: a run of disk records (offsets of the first and the last) or one
/// memory block.
#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    disk: Option<(u64, u64)>,
    memory: Option<u64>,
}

impl InFlight {
    fn contains(&self, position: Position) -> bool {
        match position {
            Position::Disk { offset, .. } => {
                self.disk.is_some_and(|(a, b)| (a..=b).contains(&offset))
            }
            Position::Memory { seq } => self.memory == Some(seq),
        }
    }
}

/// Ms since the epoch before which a block is too old to send.
fn age_limit(max_age: Duration, now_ms: i64) -> i64 {
    now_ms.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX))
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, recovering from whatever a crash left.
    pub fn open(dir: &Path, opts: Options, stats: Arc<RemoteStats>) -> Result<Queue, QueueError> {
        let err = |source| QueueError {
            dir: dir.to_path_buf(),
            source,
        };
        let mut inner = Inner::open(dir, opts).map_err(err)?;
        // The limits may have shrunk since the data was written.
        inner.enforce_limits(&stats);
        let queue = Queue {
            inner: Mutex::new(inner),
            appended: Notify::new(),
            stats,
        };
        queue.publish(&mut queue.lock());
        Ok(queue)
    }

    /// Packs each segment sealed behind the reader with `packer` from now on ([`compact`]).
    pub fn pack_with(&self, packer: NewPacker) {
        self.lock().packer = Some(packer);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `block`. Never fails: when the disk refuses it the block waits in memory.
    /// Blocking (it fsyncs): call it from a blocking-capable thread.
    pub fn append(&self, block: Block) {
        let mut inner = self.lock();
        let result = inner.move_fallback_to_disk().and_then(|()| {
            if inner.fallback.is_empty() {
                inner.append_disk(&block)
            } else {
                Err(io::Error::other("earlier blocks are still in memory"))
            }
        });
        match result {
            Ok(()) => {
                if let Some(error) = inner.disk_failure.take() {
                    tracing::info!(dir = %inner.dir.display(), %error, "buffer writes work again");
                }
            }
            Err(e) => {
                self.stats.buffer_write_error();
                if inner.disk_failure.is_none() {
                    tracing::error!(dir = %inner.dir.display(), error = %e,
                        "cannot write to the buffer; keeping blocks in memory until the disk accepts them again");
                    inner.disk_failure = Some(e.to_string());
                }
                inner.push_fallback(block);
            }
        }
        inner.enforce_limits(&self.stats);
        self.publish(&mut inner);
        drop(inner);
        self.appended.notify_one();
    }

    /// The oldest deliverable block, or None when the queue is empty. Damaged records and
    /// blocks past `max_age` met on the way are dropped and counted.
    pub fn peek(&self, now_ms: i64) -> io::Result<Option<Pending>> {
        let mut inner = self.lock();
        let result = inner.peek(now_ms, &self.stats);
        self.publish(&mut inner);
        result
    }

    /// The oldest blocks, in order: the head as [`Queue::peek`] gives it, then the disk records
    /// that follow it while they are intact, not too old, and within `max_blocks` and
    /// `max_bytes` (compressed). Used to send a backlog several blocks per request.
    pub fn peek_batch(
        &self,
        now_ms: i64,
        max_blocks: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Pending>> {
        let mut inner = self.lock();
        let mut batch: Vec<Pending> = inner.peek(now_ms, &self.stats)?.into_iter().collect();
        let mut bytes = batch.first().map_or(0, |p| p.block.data.len());
        let too_old = age_limit(inner.opts.max_age, now_ms);
        while let Some(Pending {
            position: Position::Disk { next, .. },
            ..
        }) = batch.last()
        {
            if batch.len() >= max_blocks || bytes >= max_bytes {
                break;
            }
            match inner.record_at(*next, too_old)? {
                Some(pending) if bytes + pending.block.data.len() <= max_bytes => {
                    bytes += pending.block.data.len();
                    if let (Some((first, _)), Position::Disk { offset, .. }) =
                        (inner.in_flight.disk, pending.position)
                    {
                        inner.in_flight.disk = Some((first, offset));
                    }
                    batch.push(pending);
                }
                _ => break,
            }
        }
        self.publish(&mut inner);
        Ok(batch)
    }

    /// Removes a block whose fate is known (delivered, or dropped by the caller and counted
    /// with [`Queue::discard`]). A block that was meanwhile dropped for space is ignored.
    pub fn ack(&self, pending: &Pending) {
        let mut inner = self.lock();
        inner.remove(pending.position);
        self.publish(&mut inner);
    }

    /// Drops a pending block and counts its samples under `reason`.
    pub fn discard(&self, pending: &Pending, reason: DropReason) {
        self.stats.dropped(reason, u64::from(pending.block.samples));
        self.ack(pending);
    }

    pub fn is_too_old(&self, block: &Block, now_ms: i64) -> bool {
        block.max_timestamp_ms < age_limit(self.lock().opts.max_age, now_ms)
    }

    /// Waits until something is appended (returns at once if something was appended since the
    /// last wait).
    pub async fn appended(&self) {
        self.appended.notified().await;
    }

    /// Saves the reader position now if it moved (shutdown, and whenever the queue runs empty).
    pub fn sync(&self) {
        let mut inner = self.lock();
        inner.save_position(true);
    }

    /// Bytes and blocks waiting (disk and memory).
    pub fn gauges(&self) -> BufferGauges {
        self.lock().gauges()
    }

    fn publish(&self, inner: &mut Inner) {
        self.stats.set_buffer(inner.gauges());
    }
}

impl Inner {
    fn open(dir: &Path, opts: Options) -> io::Result<Inner> {
        crate::state_file::create_private_dir(dir)?;
        compact::remove_leftovers(dir)?;
        let mut segments: VecDeque<Segment> = segment::list(dir)?.into();
        let saved = match meta::load(dir) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "reader position lost; delivering the whole buffer again");
                None
            }
        };
        if segments.is_empty() {
            let start = saved.unwrap_or(0);
            segment::open_append(dir, start)?;
            meta::sync_dir(dir)?;
            segments.push_back(Segment { start, len: 0 });
        }
        // Truncate the torn tail of an append cut short by a crash.
        let last = segments.back_mut().expect("never empty");
        let file = segment::open_append(dir, last.start)?;
        let scan = segment::scan(&file, last.len, 0)?;
        if scan.valid_end < last.len {
            tracing::warn!(
                segment = last.start,
                bytes = last.len - scan.valid_end,
                "truncating a torn record left by an interrupted write"
            );
            file.set_len(scan.valid_end)?;
            file.sync_all()?;
            last.len = scan.valid_end;
        }
        let first_start = segments.front().map_or(0, |s| s.start);
        let write_end = segments.back().map_or(0, Segment::end);
        let read_offset = saved.unwrap_or(first_start).clamp(first_start, write_end);
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            opts,
            segments,
            writer: Some(file),
            reader: None,
            read_offset,
            disk_blocks: 0,
            saved_offset: saved.unwrap_or(u64::MAX),
            saved_at: Instant::now(),
            fallback: VecDeque::new(),
            fallback_bytes: 0,
            next_seq: 0,
            disk_failure: None,
            position_unsaved: false,
            in_flight: InFlight::default(),
            packer: None,
        };
        inner.disk_blocks = inner.count_records(&scan)?;
        Ok(inner)
    }

    /// Counts the records from the reader to the end (open only; reads headers, not bodies).
    /// `last` is the recovery scan of the last segment from its start, reused when the reader
    /// is there too, so that a large damaged segment is searched once, not twice.
    fn count_records(&mut self, last: &segment::Scan) -> io::Result<u64> {
        let mut total = 0;
        let last_start = self.segments.back().map(|s| s.start);
        for seg in self.segments.clone() {
            if seg.end() <= self.read_offset {
                continue;
            }
            let from = self.read_offset.saturating_sub(seg.start);
            if Some(seg.start) == last_start && from == 0 {
                total += last.records + last.damaged_stretches;
                continue;
            }
            let file = File::open(segment::path(&self.dir, seg.start))?;
            let scan = segment::scan(&file, seg.len, from)?;
            total += scan.records + scan.damaged_stretches;
        }
        Ok(total)
    }

    fn write_end(&self) -> u64 {
        self.segments.back().map_or(0, Segment::end)
    }

    /// Bytes of the records at and after the reader (packed segments leave gaps between
    /// segments: the offsets of the next one do not count).
    fn disk_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.end().saturating_sub(self.read_offset.max(s.start)))
            .sum()
    }

    fn gauges(&mut self) -> BufferGauges {
        let oldest = match self.head_header() {
            Ok(Some((_, header))) => Some(header.min_ts_ms),
            _ => self.fallback.front().map(|(_, b)| b.min_timestamp_ms),
        };
        BufferGauges {
            bytes: self.disk_bytes() + self.fallback_bytes,
            blocks: self.disk_blocks + self.fallback.len() as u64,
            oldest_sample_ms: oldest,
        }
    }

    fn append_disk(&mut self, block: &Block) -> io::Result<()> {
        let bytes = record::frame(block);
        let last = *self.segments.back().expect("never empty");
        let seal_at = match self.packer {
            Some(_) => self.opts.segment_size.min(PACKED_SEGMENT_SIZE),
            None => self.opts.segment_size,
        };
        if last.len > 0 && last.len + bytes.len() as u64 > seal_at {
            let start = last.end();
            let file = segment::open_append(&self.dir, start)?;
            meta::sync_dir(&self.dir)?;
            self.segments.push_back(Segment { start, len: 0 });
            self.writer = Some(file);
            self.pack_sealed();
        }
        let start = self.segments.back().expect("never empty").start;
        if self.writer.is_none() {
            self.writer = Some(segment::open_append(&self.dir, start)?);
        }
        let writer = self.writer.as_mut().expect("opened above");
        let before = self.segments.back().expect("never empty").len;
        match writer.write_all(&bytes).and_then(|()| writer.sync_data()) {
            Ok(()) => {
                self.segments.back_mut().expect("never empty").len += bytes.len() as u64;
                self.disk_blocks += 1;
                Ok(())
            }
            Err(e) => {
                // Take back a partial write so the next record starts on a clean boundary; if
                // even that fails, account for what is there (the reader skips it as damage).
                let len = match writer.set_len(before) {
                    Ok(()) => before,
                    Err(_) => writer.metadata().map_or(before, |m| m.len()),
                };
                self.segments.back_mut().expect("never empty").len = len;
                self.writer = None;
                Err(e)
            }
        }
    }

    /// Packs the segment just sealed, unless the reader is in it or has passed it, or a
    /// record of it is in flight. A failure leaves the data as it was, merely unpacked.
    fn pack_sealed(&mut self) {
        let (Some(packer), Some(&seg)) = (self.packer, self.segments.iter().rev().nth(1)) else {
            return;
        };
        let in_flight = self
            .in_flight
            .disk
            .is_some_and(|(first, last)| first < seg.end() && last >= seg.start);
        if self.read_offset >= seg.start || in_flight {
            return;
        }
        let Ok(records_in) = self.records_in(seg) else {
            return;
        };
        // An open reader handle would keep reading the replaced file.
        if self.reader.as_ref().is_some_and(|(s, _)| *s == seg.start) {
            self.reader = None;
        }
        let (packed, records_out) = match compact::compact(&self.dir, seg, packer, &|_| false) {
            Ok(None) => return,
            Ok(Some(done)) => (done.segment, done.records_out),
            Err(e) => {
                tracing::warn!(segment = seg.start, error = %e, "cannot pack a buffer segment; it stays as it is");
                // The rename may have happened before the error: trust what is on disk.
                match std::fs::metadata(segment::path(&self.dir, seg.start)) {
                    Ok(m) if m.len() != seg.len => {
                        let packed = Segment {
                            start: seg.start,
                            len: m.len(),
                        };
                        (packed, self.records_in(packed).unwrap_or(0))
                    }
                    _ => return,
                }
            }
        };
        if let Some(s) = self.segments.iter_mut().find(|s| s.start == seg.start) {
            *s = packed;
        }
        self.disk_blocks = (self.disk_blocks + records_out).saturating_sub(records_in);
    }

    /// Records (and damaged stretches) in a whole segment, from its headers.
    fn records_in(&self, seg: Segment) -> io::Result<u64> {
        let file = File::open(segment::path(&self.dir, seg.start))?;
        let scan = segment::scan(&file, seg.len, 0)?;
        Ok(scan.records + scan.damaged_stretches)
    }

    fn move_fallback_to_disk(&mut self) -> io::Result<()> {
        while let Some((_, block)) = self.fallback.front() {
            let block = block.clone();
            self.append_disk(&block)?;
            self.fallback.pop_front();
            self.fallback_bytes -= block.data.len() as u64;
        }
        Ok(())
    }

    fn push_fallback(&mut self, block: Block) {
        self.fallback_bytes += block.data.len() as u64;
        self.fallback.push_back((self.next_seq, block));
        self.next_seq += 1;
    }

    /// Drops the oldest blocks while the queue is over its limits.
    fn enforce_limits(&mut self, stats: &RemoteStats) {
        while self.fallback_bytes > self.opts.memory_fallback_size && self.fallback.len() > 1 {
            let Some((seq, block)) = self.fallback.front() else {
                break;
            };
            let (position, samples) = (Position::Memory { seq: *seq }, block.samples);
            self.drop_for_space(position, samples, stats);
        }
        while self.disk_bytes() + self.fallback_bytes > self.opts.max_size {
            let (position, samples) = match self.head_header() {
                Ok(Some((offset, header))) => {
                    let next = offset + header.record_len();
                    (Position::Disk { offset, next }, header.samples)
                }
                Ok(None) => match self.fallback.front() {
                    Some((seq, block)) => (Position::Memory { seq: *seq }, block.samples),
                    None => return,
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the buffer to make room");
                    return;
                }
            };
            self.drop_for_space(position, samples, stats);
        }
    }

    /// Drops the oldest block for space. The block the sender holds is not counted: its send
    /// may still succeed, and if it does not, the sender's discard counts it.
    fn drop_for_space(&mut self, position: Position, samples: u32, stats: &RemoteStats) {
        if !self.in_flight.contains(position) {
            stats.dropped(DropReason::BufferFull, u64::from(samples));
        }
        self.remove(position);
    }

    /// The header of the record at the reader, skipping segment ends and damaged stretches
    /// (those are counted in `disk_blocks` and leave it).
    fn head_header(&mut self) -> io::Result<Option<(u64, record::Header)>> {
        loop {
            if self.read_offset >= self.write_end() {
                return Ok(None);
            }
            let Some(seg) = self
                .segments
                .iter()
                .find(|s| s.end() > self.read_offset)
                .copied()
            else {
                return Ok(None);
            };
            if self.read_offset < seg.start {
                self.advance(seg.start, false);
                continue;
            }
            let pos = self.read_offset - seg.start;
            let file = self.reader_for(seg.start)?;
            let mut buf = [0u8; HEADER_LEN];
            let header = if seg.len - pos >= HEADER_LEN as u64 {
                file.read_exact_at(&mut buf, pos)?;
                record::parse_header(&buf).filter(|h| pos + h.record_len() <= seg.len)
            } else {
                None
            };
            if let Some(header) = header {
                return Ok(Some((self.read_offset, header)));
            }
            let next =
                segment::next_header(file, seg.len, pos + 1)?.map_or(seg.end(), |p| seg.start + p);
            tracing::error!(
                segment = seg.start,
                offset = pos,
                skipped_bytes = next - self.read_offset,
                "damaged record header in the buffer; skipping to the next valid record"
            );
            self.advance(next, true);
        }
    }

    fn peek(&mut self, now_ms: i64, stats: &RemoteStats) -> io::Result<Option<Pending>> {
        let too_old = age_limit(self.opts.max_age, now_ms);
        while let Some((offset, header)) = self.head_header()? {
            let next = offset + header.record_len();
            let position = Position::Disk { offset, next };
            if header.max_ts_ms < too_old {
                stats.dropped(DropReason::TooOld, u64::from(header.samples));
                self.remove(position);
                continue;
            }
            let seg_start = self
                .segments
                .iter()
                .find(|s| s.end() > offset)
                .map_or(0, |s| s.start);
            let mut body = vec![0u8; header.len as usize];
            self.reader_for(seg_start)?
                .read_exact_at(&mut body, offset - seg_start + HEADER_LEN as u64)?;
            if !record::body_is_intact(&header, &body) {
                tracing::error!(
                    segment = seg_start,
                    offset = offset - seg_start,
                    samples = header.samples,
                    "buffer record failed its checksum; dropped (samples_dropped_total{{reason=\"corrupt\"}})"
                );
                stats.dropped(DropReason::Corrupt, u64::from(header.samples));
                self.remove(position);
                continue;
            }
            self.in_flight = InFlight {
                disk: Some((offset, offset)),
                memory: None,
            };
            return Ok(Some(Pending {
                block: header.into_block(body),
                position,
            }));
        }
        while let Some((seq, block)) = self.fallback.front() {
            if block.max_timestamp_ms < too_old {
                stats.dropped(DropReason::TooOld, u64::from(block.samples));
                let seq = *seq;
                self.remove(Position::Memory { seq });
                continue;
            }
            let position = Position::Memory { seq: *seq };
            let pending = Pending {
                block: block.clone(),
                position,
            };
            self.in_flight = InFlight {
                disk: None,
                memory: Some(*seq),
            };
            return Ok(Some(pending));
        }
        Ok(None)
    }

    /// The intact, young-enough record at `offset` (crossing into the next segment at a
    /// segment's end), or None: anything unusual is left for `peek` to deal with at the head.
    fn record_at(&mut self, offset: u64, too_old: i64) -> io::Result<Option<Pending>> {
        let Some(seg) = self.segments.iter().find(|s| s.end() > offset).copied() else {
            return Ok(None);
        };
        let offset = offset.max(seg.start);
        let pos = offset - seg.start;
        if seg.len - pos < HEADER_LEN as u64 {
            return Ok(None);
        }
        let file = self.reader_for(seg.start)?;
        let mut buf = [0u8; HEADER_LEN];
        file.read_exact_at(&mut buf, pos)?;
        let Some(header) = record::parse_header(&buf).filter(|h| pos + h.record_len() <= seg.len)
        else {
            return Ok(None);
        };
        if header.max_ts_ms < too_old {
            return Ok(None);
        }
        let mut body = vec![0u8; header.len as usize];
        file.read_exact_at(&mut body, pos + HEADER_LEN as u64)?;
        if !record::body_is_intact(&header, &body) {
            return Ok(None);
        }
        let position = Position::Disk {
            offset,
            next: offset + header.record_len(),
        };
        Ok(Some(Pending {
            block: header.into_block(body),
            position,
        }))
    }

    fn remove(&mut self, position: Position) {
        match position {
            Position::Disk { offset, next } if offset == self.read_offset => {
                self.advance(next, true)
            }
            Position::Memory { seq } if self.fallback.front().is_some_and(|(s, _)| *s == seq) => {
                if let Some((_, block)) = self.fallback.pop_front() {
                    self.fallback_bytes -= block.data.len() as u64;
                }
            }
            _ => {} // already dropped to make room
        }
    }

    /// Moves the reader to `offset`, deleting the segments it has left behind.
    fn advance(&mut self, offset: u64, passed_record: bool) {
        self.read_offset = offset;
        if passed_record {
            self.disk_blocks = self.disk_blocks.saturating_sub(1);
        }
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end() <= self.read_offset)
        {
            let Some(done) = self.segments.pop_front() else {
                break;
            };
            if self
                .reader
                .as_ref()
                .is_some_and(|(start, _)| *start == done.start)
            {
                self.reader = None;
            }
            // Every record in it was acknowledged; if the reader position is lost later the
            // clamp on open starts at the next segment anyway.
            if let Err(e) = std::fs::remove_file(segment::path(&self.dir, done.start)) {
                tracing::warn!(segment = done.start, error = %e, "cannot delete a fully sent buffer file");
            }
        }
        self.save_position(false);
    }

    fn save_position(&mut self, now: bool) {
        if self.read_offset == self.saved_offset
            || (!now && self.saved_at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        match meta::save(&self.dir, self.read_offset) {
            Ok(()) => {
                self.saved_offset = self.read_offset;
                self.position_unsaved = false;
            }
            Err(e) if !self.position_unsaved => {
                // Logged once per incident; delivery goes on, at worst with duplicates later.
                tracing::warn!(error = %e, "cannot save the buffer's reader position");
                self.position_unsaved = true;
            }
            Err(_) => {}
        }
        self.saved_at = Instant::now();
    }

    fn reader_for(&mut self, start: u64) -> io::Result<&File> {
        if self.reader.as_ref().is_none_or(|(s, _)| *s != start) {
            self.reader = Some((start, File::open(segment::path(&self.dir, start))?));
        }
        Ok(&self.reader.as_ref().expect("opened above").1)
    }
}

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod torn_tests;
