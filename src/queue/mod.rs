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
//! - The reader position is kept in the `position` file ([`position`]: two checksummed slots,
//!   the older overwritten in place by each save), saved a second after it first moves past
//!   the saved one ([`Queue::save_due`], which the sender follows) and on shutdown. A queue from before it is read once from
//!   `meta.json` ([`meta`]).
//! - Blocks are taken ([`Queue::take`]) by one or several senders at once, oldest first, or
//!   the newest first when the remote asks for it ([`take`]). A block settled while older ones
//!   are still out is kept in the ledger ([`ledger`]), saved with the reader position, so that
//!   the reader skips it and a restart does not send it again.
//!
//! # fsync policy
//!
//! Data: every append is fsynced before `append` / `append_all` returns, and no block can be
//! taken before then, so a power cut loses nothing appended. The pipeline appends a tick's
//! blocks together ([`Queue::append_all`]): one write and one fdatasync for all of them (one
//! more per data file sealed on the way), where it used to be one per block. The records just
//! appended stay in memory until the reader passes them ([`fresh`]), so that taking them reads
//! no disk ([`Queue::take_in_memory`]: the sender then takes on its own thread).
//! Reader position: a second after it moves (one save for every block acknowledged in that
//! second: a cycle's blocks together) and on shutdown, by one pwrite and one fdatasync; losing it only means resending what was acknowledged since
//! (VictoriaMetrics' deduplication absorbs it).
//!
//! # Recovery on open
//!
//! The last segment is scanned and a torn tail (an append cut short) is truncated. An
//! unreadable `position` file never wipes data: the reader then starts at the oldest segment. A
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
//! passed), any record a sender holds, a segment with damage (the reader's skip-and-count
//! stays the one way damage is handled), or one that a ledger span reaches beyond. Records
//! settled out of order inside it are left out through compaction's `is_acked` predicate;
//! their spans leave the ledger, saved into both slots, before the rename (a crash in between resends them,
//! never skips a pack), and the recent list gets the packs in place of the old records. In normal operation the reader is at the
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
mod fresh;
pub mod inspect;
mod ledger;
mod meta;
pub(crate) mod position;
pub mod record;
pub mod segment;
mod take;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::stats::{BufferGauges, DropReason, RemoteStats};
use ledger::{Ledger, Span};
use record::HEADER_LEN;
use segment::Segment;

pub use block::Block;
pub use compact::{NewPacker, Packer};
pub use take::Take;

/// With a packer, the segment being written is sealed at this size (or `segment_size` if
/// smaller) so that an outage's data is packed in steps of this size: the first segment of an
/// outage, where the reader sits, stays unpacked, so a smaller step wastes less there; a
/// larger one packs more cycles together.
pub const PACKED_SEGMENT_SIZE: u64 = 512 * 1024;

/// A moved reader position is saved within this: a crash resends at most what was
/// acknowledged in the last second (README, "The disk buffer").
pub const SAVE_WITHIN: Duration = Duration::from_secs(1);

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
    /// Counts appends, so that every waiting sender sees one.
    appends: watch::Sender<u64>,
    /// Signalled when the reader position moves past the saved one ([`Queue::next_save`]).
    unsaved: tokio::sync::Notify,
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
    /// When the reader position or the ledger first moved past what is saved: a save is due
    /// a second later ([`Queue::save_due`]).
    unsaved_since: Option<Instant>,
    fallback: VecDeque<(u64, Block)>,
    fallback_bytes: u64,
    next_seq: u64,
    /// The disk error of the current incident, so that it is logged once.
    disk_failure: Option<String>,
    /// Saving the reader position failed and has not worked since.
    position_unsaved: bool,
    /// Disk records the senders hold (offset to the next record's offset), and the memory
    /// block one of them holds (see `drop_for_space`).
    taken: BTreeMap<u64, u64>,
    memory_taken: Option<u64>,
    /// A taken memory block that an append has since moved to disk (seq, offset, next): its
    /// acknowledgement settles the disk copy, which no other sender may take meanwhile.
    moved: Option<(u64, u64, u64)>,
    /// Where taking oldest-first goes on: every record between the reader and here is taken
    /// or settled.
    cursor: u64,
    /// Records settled beyond the reader ([`ledger`]); `ledger_unsaved` while the saved copy
    /// differs.
    ledger: Ledger,
    ledger_unsaved: bool,
    /// The newest records appended since the queue was opened, oldest first, at most
    /// [`take::RECENT`]: what newest-first taking sends before the backlog, newest first.
    recent: VecDeque<take::Recent>,
    /// Packs sealed segments when set ([`Queue::pack_with`]).
    packer: Option<NewPacker>,
    /// Where the reader position and the ledger are saved ([`position`]).
    position: position::Position,
    /// The records of the latest appends, in memory until the reader passes them ([`fresh`]).
    fresh: fresh::Fresh,
}

impl Inner {
    /// Whether every record a take could read is in memory: all from the reader to the writer
    /// ([`fresh`]; the memory fallback is memory anyway).
    fn reads_no_disk(&self) -> bool {
        self.fresh.covers(self.read_offset, self.write_end())
    }

    /// Whether a sender holds the block at `position`.
    fn is_taken(&self, position: Position) -> bool {
        match position {
            Position::Disk { offset, .. } => self.taken.contains_key(&offset),
            Position::Memory { seq } => self.memory_taken == Some(seq),
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
            appends: watch::channel(0).0,
            unsaved: tokio::sync::Notify::new(),
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

    /// The lock when it is free now. For the calls a sender makes on the runtime's own
    /// thread: an append or a position save holds the lock across its fdatasync on the
    /// blocking pool, and waiting for it there would stall every task for that sync.
    fn lock_if_free(&self) -> Option<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(inner) => Some(inner),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Stores `block`. Never fails: when the disk refuses it the block waits in memory.
    /// Blocking (it fsyncs): call it from a blocking-capable thread.
    pub fn append(&self, block: Block) {
        self.append_all(std::slice::from_ref(&block));
    }

    /// Stores `blocks` in order, each its own record, with one fdatasync for all of them (one
    /// more for each data file sealed on the way): a cycle's blocks cost one disk sync where
    /// they used to cost one each. None can be taken before all are synced (the queue stays
    /// locked until then), and a crash in the middle keeps the whole records before the tear.
    /// Never fails: the blocks the disk refuses wait in memory. Blocking (it fsyncs).
    pub fn append_all(&self, blocks: &[Block]) {
        if blocks.is_empty() {
            return;
        }
        let mut inner = self.lock();
        // On an error: how many of `blocks` are stored, and why the rest are not.
        let result = match inner.move_fallback_to_disk() {
            Err(e) => Err((0, e)),
            Ok(()) if !inner.fallback.is_empty() => {
                Err((0, io::Error::other("earlier blocks are still in memory")))
            }
            Ok(()) => inner.append_disk(blocks),
        };
        match result {
            Ok(()) => {
                if let Some(error) = inner.disk_failure.take() {
                    tracing::info!(dir = %inner.dir.display(), %error, "buffer writes work again");
                }
            }
            Err((stored, e)) => {
                self.stats.buffer_write_error();
                if inner.disk_failure.is_none() {
                    tracing::error!(dir = %inner.dir.display(), error = %e,
                        "cannot write to the buffer; keeping blocks in memory until the disk accepts them again");
                    inner.disk_failure = Some(e.to_string());
                }
                for block in &blocks[stored..] {
                    inner.push_fallback(block.clone());
                }
            }
        }
        inner.enforce_limits(&self.stats);
        self.publish(&mut inner);
        drop(inner);
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The oldest deliverable block, or None when the queue is empty. Damaged records and
    /// blocks past `max_age` met on the way are dropped and counted. For one sender at a
    /// time: whatever was taken before is handed out again.
    pub fn peek(&self, now_ms: i64) -> io::Result<Option<Pending>> {
        let mut inner = self.lock();
        inner.release_all();
        let result = inner.take(now_ms, 1, usize::MAX, false, &self.stats);
        self.publish(&mut inner);
        Ok(match result? {
            Take::Batch(mut batch) => batch.pop(),
            Take::Held | Take::Empty => None,
        })
    }

    /// Blocks no other sender holds, for one request: the newest block alone when
    /// `newest_first` and it is not out yet, else the oldest, up to `max_blocks` and
    /// `max_bytes` (compressed; one block may be larger). See [`take`].
    pub fn take(
        &self,
        now_ms: i64,
        max_blocks: usize,
        max_bytes: usize,
        newest_first: bool,
    ) -> io::Result<Take> {
        let mut inner = self.lock();
        let result = inner.take(now_ms, max_blocks, max_bytes, newest_first, &self.stats);
        self.publish(&mut inner);
        result
    }

    /// [`Queue::take`] when every block it could hand out is in memory (the latest appends,
    /// [`fresh`]): it then reads no disk, and a sender calls it on its own thread instead of
    /// going to the blocking pool. None (nothing taken) when it would read the disk, or when
    /// the queue is busy with a sync (the pool's [`Queue::take`] then waits for it).
    pub fn take_in_memory(
        &self,
        now_ms: i64,
        max_blocks: usize,
        max_bytes: usize,
        newest_first: bool,
    ) -> Option<io::Result<Take>> {
        let mut inner = self.lock_if_free()?;
        if !inner.reads_no_disk() {
            return None;
        }
        let result = inner.take(now_ms, max_blocks, max_bytes, newest_first, &self.stats);
        self.publish(&mut inner);
        Some(result)
    }

    /// What [`Queue::take`] would answer when it can be told without reading the disk:
    /// Empty when nothing waits, Held when every waiting block is out with a sender. None
    /// when a block may be free to take (or a damaged stretch waits to be skipped), which only
    /// `take` can find out. Lets a sender skip a trip to the blocking pool when it would only
    /// find nothing (in normal operation, after every delivery). None too while the queue
    /// is busy with a sync, which the pool's `take` waits for instead of the runtime.
    pub fn idle(&self) -> Option<Take> {
        let inner = self.lock_if_free()?;
        let held_on_disk = inner.taken.range(inner.read_offset..).count() as u64;
        let free_on_disk = inner.disk_blocks > held_on_disk;
        let free_in_memory = !inner.fallback.is_empty() && inner.memory_taken.is_none();
        if free_on_disk || free_in_memory {
            return None;
        }
        let nothing_waits = inner.disk_blocks == 0 && inner.fallback.is_empty();
        let nothing_out = held_on_disk == 0 && inner.memory_taken.is_none();
        Some(if nothing_waits && nothing_out {
            Take::Empty
        } else {
            Take::Held
        })
    }

    /// The blocks of the newest cycle (the newest block and those whose samples are at most
    /// `window` ms older), if no sender holds the newest yet: what a newest-first sender tries
    /// while the link is down.
    pub fn take_newest(&self, now_ms: i64, window_ms: i64) -> io::Result<Take> {
        self.take_newest_locked(&mut self.lock(), now_ms, window_ms)
    }

    /// [`Queue::take_newest`] when it reads no disk (see [`Queue::take_in_memory`]).
    pub fn take_newest_in_memory(&self, now_ms: i64, window_ms: i64) -> Option<io::Result<Take>> {
        let mut inner = self.lock_if_free()?;
        inner
            .reads_no_disk()
            .then(|| self.take_newest_locked(&mut inner, now_ms, window_ms))
    }

    fn take_newest_locked(
        &self,
        inner: &mut Inner,
        now_ms: i64,
        window_ms: i64,
    ) -> io::Result<Take> {
        let too_old = age_limit(inner.opts.max_age, now_ms);
        let result = inner
            .take_newest(too_old, Some(window_ms), usize::MAX, usize::MAX)
            .map(|newest| match newest {
                batch if !batch.is_empty() => Take::Batch(batch),
                _ if inner.disk_blocks == 0 && inner.fallback.is_empty() => Take::Empty,
                _ => Take::Held,
            });
        self.publish(inner);
        result
    }

    /// Forgets the latest appends kept in memory, as if they had been pushed out of it: what
    /// is taken next is read from disk (tests of the disk's damage).
    #[cfg(test)]
    pub(crate) fn forget_fresh(&self) {
        self.lock().fresh.clear();
    }

    /// Hands taken blocks back unsent (a sender that gave them up for newer ones): they are
    /// taken again later, in their place.
    pub fn release(&self, batch: &[Pending]) {
        let mut inner = self.lock();
        for pending in batch {
            let position = inner.resolve(pending.position);
            inner.release(position);
        }
    }

    /// Hands every taken block back (a sender starting, or restarted after a panic, resends
    /// what its predecessor held).
    pub fn release_all(&self) {
        self.lock().release_all();
    }

    /// Whether the record at queue offset `offset` is settled (delivered, or dropped and
    /// counted): behind the reader or in the ledger of blocks settled out of order. Compaction
    /// may leave such records out.
    pub fn is_acknowledged(&self, offset: u64) -> bool {
        let inner = self.lock();
        offset < inner.read_offset || inner.ledger.contains(offset)
    }

    /// Whether a block newer than every block of `batch` waits untaken, or `batch` is not the
    /// newest one (a newest-first sender holding an old block while the link is down gives it
    /// up for the newest).
    pub fn newer_than(&self, batch: &[Pending]) -> bool {
        let inner = self.lock();
        let Some(newest) = inner.recent.back().map(|r| r.offset) else {
            return false;
        };
        !batch.iter().any(|p| match p.position {
            Position::Disk { offset, .. } => offset >= newest,
            Position::Memory { .. } => true,
        })
    }

    /// Removes a block whose fate is known (delivered, or dropped by the caller and counted
    /// with [`Queue::discard`]). A block that was meanwhile dropped for space is ignored.
    pub fn ack(&self, pending: &Pending) {
        let mut inner = self.lock();
        let position = inner.resolve(pending.position);
        inner.release(position);
        inner.remove(position, pending.block.samples);
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

    /// Appends as they happen: `changed()` on the receiver returns when something was
    /// appended since the receiver last looked.
    pub fn appends(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// Saves the reader position now if it moved. Blocking (it syncs the file): the sender
    /// calls it when [`Queue::save_due`] says, and at shutdown.
    pub fn sync(&self) {
        self.lock().save_position();
    }

    /// When the reader position (or the ledger) must be saved: a second after it first moved
    /// past the saved one, so that one save covers every block acknowledged in that second
    /// (a fast cycle's blocks together) and a crash resends at most a second's worth. None
    /// while nothing is unsaved.
    pub fn save_due(&self) -> Option<Instant> {
        self.lock().unsaved_since.map(|since| since + SAVE_WITHIN)
    }

    /// Waits until something is unsaved, and returns when its save is due.
    pub async fn next_save(&self) -> Instant {
        loop {
            if let Some(due) = self.save_due() {
                return due;
            }
            self.unsaved.notified().await;
        }
    }

    /// Bytes and blocks waiting (disk and memory).
    pub fn gauges(&self) -> BufferGauges {
        self.lock().gauges()
    }

    fn publish(&self, inner: &mut Inner) {
        self.stats.set_buffer(inner.gauges());
        if inner.unsaved_since.is_some() {
            // One stored permit at most: wakes `next_save`, now or when it next waits.
            self.unsaved.notify_one();
        }
    }
}

impl Inner {
    fn open(dir: &Path, opts: Options) -> io::Result<Inner> {
        crate::state_file::create_private_dir(dir)?;
        compact::remove_leftovers(dir)?;
        let mut segments: VecDeque<Segment> = segment::list(dir)?.into();
        let (saved, position) = position::Position::open(dir);
        let saved = match saved {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "reader position lost; delivering the whole buffer again");
                None
            }
        };
        let saved_offset = saved.as_ref().map(|m| m.read_offset);
        if segments.is_empty() {
            let start = saved_offset.unwrap_or(0);
            segment::open_append(dir, start)?;
            crate::state_file::sync_dir(dir)?;
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
        let read_offset = saved_offset
            .unwrap_or(first_start)
            .clamp(first_start, write_end);
        let ledger = Ledger::restore(
            saved.as_ref().map_or(&[][..], |m| &m.acked),
            read_offset,
            write_end,
        );
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            opts,
            segments,
            writer: Some(file),
            reader: None,
            read_offset,
            disk_blocks: 0,
            saved_offset: saved_offset.unwrap_or(u64::MAX),
            unsaved_since: None,
            fallback: VecDeque::new(),
            fallback_bytes: 0,
            next_seq: 0,
            disk_failure: None,
            position_unsaved: false,
            taken: BTreeMap::new(),
            memory_taken: None,
            moved: None,
            cursor: read_offset,
            ledger,
            ledger_unsaved: false,
            recent: VecDeque::new(),
            packer: None,
            position,
            fresh: fresh::Fresh::default(),
        };
        let settled = inner.ledger.totals().0;
        inner.disk_blocks = inner.count_records(&scan)?.saturating_sub(settled);
        // A span the reader reached before the position was saved.
        inner.advance(inner.read_offset, false);
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
        let after_reader: u64 = self
            .segments
            .iter()
            .map(|s| s.end().saturating_sub(self.read_offset.max(s.start)))
            .sum();
        after_reader.saturating_sub(self.ledger.totals().1)
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

    /// Writes `blocks` as records and syncs them, a data file at a time. On an error, how many
    /// are stored (synced) and the error that stopped the rest.
    fn append_disk(&mut self, blocks: &[Block]) -> Result<(), (usize, io::Error)> {
        let mut stored = 0;
        while stored < blocks.len() {
            stored += self
                .append_run(&blocks[stored..])
                .map_err(|e| (stored, e))?;
        }
        Ok(())
    }

    /// Writes as many of `blocks` (at least one) as fit in the data file being written, sealing
    /// it first if even the first does not, in one write and one fdatasync. Returns how many.
    /// Nothing is accounted before the sync: until then no sender can take them.
    fn append_run(&mut self, blocks: &[Block]) -> io::Result<usize> {
        let first_len = record::framed_len(&blocks[0]);
        let last = *self.segments.back().expect("never empty");
        let seal_at = match self.packer {
            Some(_) => self.opts.segment_size.min(PACKED_SEGMENT_SIZE),
            None => self.opts.segment_size,
        };
        if last.len > 0 && last.len + first_len as u64 > seal_at {
            let start = last.end();
            let file = segment::open_append(&self.dir, start)?;
            crate::state_file::sync_dir(&self.dir)?;
            self.segments.push_back(Segment { start, len: 0 });
            self.writer = Some(file);
            // Packing may rewrite the sealed file's records under other offsets.
            self.fresh.clear();
            self.pack_sealed();
        }
        let Segment { start, len: before } = *self.segments.back().expect("never empty");
        // Where each record ends within `bytes`; records never span data files. One buffer
        // for the run (a buffer per record cost an allocation each, which glibc paid with a
        // consolidation of its free chunks in the collect bench's profile).
        let mut len = first_len;
        let mut ends = vec![len];
        for block in &blocks[1..] {
            let next = len + record::framed_len(block);
            if before + next as u64 > seal_at {
                break;
            }
            len = next;
            ends.push(len);
        }
        let mut bytes = Vec::with_capacity(len);
        for block in &blocks[..ends.len()] {
            record::frame_into(&mut bytes, block);
        }
        if self.writer.is_none() {
            self.writer = Some(segment::open_append(&self.dir, start)?);
        }
        let writer = self.writer.as_mut().expect("opened above");
        match writer.write_all(&bytes).and_then(|()| writer.sync_data()) {
            Ok(()) => {
                self.segments.back_mut().expect("never empty").len += bytes.len() as u64;
                let mut offset = start + before;
                let mut framed_at = 0;
                for (block, &end) in blocks.iter().zip(&ends) {
                    let next = start + before + end as u64;
                    self.disk_blocks += 1;
                    self.remember_recent(take::Recent {
                        offset,
                        next,
                        max_ts_ms: block.max_timestamp_ms,
                    });
                    if let Some(header) = record::parse_header(&bytes[framed_at..]) {
                        self.fresh.push(fresh::Record {
                            offset,
                            header,
                            block: block.clone(),
                        });
                    }
                    framed_at = end;
                    offset = next;
                }
                Ok(ends.len())
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

    /// Packs the segment just sealed, unless the reader is in it or has passed it, a sender
    /// holds one of its records, or a span of records settled out of order reaches beyond it
    /// (spans inside it are left out of the packs and leave the ledger). A failure leaves the
    /// data as it was, merely unpacked.
    fn pack_sealed(&mut self) {
        let (Some(packer), Some(&seg)) = (self.packer, self.segments.iter().rev().nth(1)) else {
            return;
        };
        let old_end = seg.end();
        let settled: Vec<Span> = self
            .ledger
            .spans()
            .into_iter()
            .filter(|s| s.start < old_end && s.end > seg.start)
            .collect();
        if self.read_offset >= seg.start
            || self.taken.range(seg.start..old_end).next().is_some()
            || settled
                .iter()
                .any(|s| s.start < seg.start || s.end > old_end)
        {
            return;
        }
        let Ok(records_in) = self.records_in(seg) else {
            return;
        };
        // The settled records leave the saved ledger before the file that no longer holds
        // them replaces the old one: a crash in between then resends them (at least once),
        // where the other order would have the old spans skip packed records after a restart.
        if !settled.is_empty() {
            for span in &settled {
                self.ledger.take_at(span.start);
            }
            self.ledger_unsaved = true;
            self.save_position();
            if !self.ledger_unsaved {
                // Into the other slot too: a damaged newest slot falls back to the older one,
                // whose spans would name offsets the packing rewrites.
                self.ledger_unsaved = true;
                self.save_position();
            }
            if self.ledger_unsaved {
                self.unsettle_nothing(&settled);
                return;
            }
        }
        // An open reader handle would keep reading the replaced file.
        if self.reader.as_ref().is_some_and(|(s, _)| *s == seg.start) {
            self.reader = None;
        }
        let is_settled = |offset: u64| settled.iter().any(|s| (s.start..s.end).contains(&offset));
        let (packed, records) = match compact::compact(&self.dir, seg, packer, &is_settled) {
            Ok(None) => {
                // Left as it was: its settled records are settled still.
                self.unsettle_nothing(&settled);
                return;
            }
            Ok(Some(done)) => (done.segment, done.records),
            Err(e) => {
                tracing::warn!(segment = seg.start, error = %e, "cannot pack a buffer segment; it stays as it is");
                // The rename may have happened before the error: trust what is on disk.
                match std::fs::metadata(segment::path(&self.dir, seg.start)) {
                    Ok(m) if m.len() != seg.len => (
                        Segment {
                            start: seg.start,
                            len: m.len(),
                        },
                        Vec::new(),
                    ),
                    _ => {
                        self.unsettle_nothing(&settled);
                        return;
                    }
                }
            }
        };
        let records_out = match records.len() {
            0 => self.records_in(packed).unwrap_or(0),
            n => n as u64,
        };
        if let Some(s) = self.segments.iter_mut().find(|s| s.start == seg.start) {
            *s = packed;
        }
        // The settled records are gone with their offsets; so is what took and remembered
        // the old offsets.
        let settled_blocks: u64 = settled.iter().map(|s| s.blocks).sum();
        self.disk_blocks = (self.disk_blocks + records_out)
            .saturating_sub(records_in - settled_blocks.min(records_in));
        self.cursor = self.cursor.min(seg.start);
        let mut recent: Vec<take::Recent> = self
            .recent
            .drain(..)
            .filter(|r| r.offset < seg.start || r.offset >= old_end)
            .collect();
        recent.extend(
            records
                .iter()
                .map(|&(offset, next, max_ts_ms)| take::Recent {
                    offset,
                    next,
                    max_ts_ms,
                }),
        );
        recent.sort_by_key(|r| r.offset);
        self.recent = recent.into();
    }

    /// Puts back spans taken out of the ledger for a packing that did not happen.
    fn unsettle_nothing(&mut self, spans: &[Span]) {
        for span in spans {
            self.ledger.insert(*span);
        }
        self.ledger_unsaved |= !spans.is_empty();
        self.note_unsaved();
    }

    /// Records (and damaged stretches) in a whole segment, from its headers.
    fn records_in(&self, seg: Segment) -> io::Result<u64> {
        let file = File::open(segment::path(&self.dir, seg.start))?;
        let scan = segment::scan(&file, seg.len, 0)?;
        Ok(scan.records + scan.damaged_stretches)
    }

    fn move_fallback_to_disk(&mut self) -> io::Result<()> {
        while let Some((seq, block)) = self.fallback.front() {
            let (seq, block) = (*seq, block.clone());
            self.append_disk(std::slice::from_ref(&block))
                .map_err(|(_, e)| e)?;
            self.fallback.pop_front();
            self.fallback_bytes -= block.data.len() as u64;
            if self.memory_taken == Some(seq)
                && let Some(r) = self.recent.back().copied()
            {
                // A sender holds it: the copy on disk is its, not sent a second time.
                self.taken.insert(r.offset, r.next);
                self.moved = Some((seq, r.offset, r.next));
                self.memory_taken = None;
            }
        }
        Ok(())
    }

    /// Where a pending block is now: a memory block moved to disk while a sender held it is
    /// its disk copy.
    fn resolve(&mut self, position: Position) -> Position {
        match (position, self.moved) {
            (Position::Memory { seq }, Some((moved, offset, next))) if moved == seq => {
                self.moved = None;
                Position::Disk { offset, next }
            }
            _ => position,
        }
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
        if !self.is_taken(position) {
            stats.dropped(DropReason::BufferFull, u64::from(samples));
        }
        self.remove(position, samples);
    }

    /// The header of the record at the reader (see [`Inner::header_from`]).
    fn head_header(&mut self) -> io::Result<Option<(u64, record::Header)>> {
        self.header_from(self.read_offset)
    }

    /// The first valid record header at or after `at`, skipping segment ends and damaged
    /// stretches (those are counted in `disk_blocks` and are settled on the way, as one block
    /// each).
    fn header_from(&mut self, mut at: u64) -> io::Result<Option<(u64, record::Header)>> {
        loop {
            if at >= self.write_end() {
                return Ok(None);
            }
            if let Some(kept) = self.fresh.get(at) {
                return Ok(Some((at, kept.header)));
            }
            let Some(seg) = self.segments.iter().find(|s| s.end() > at).copied() else {
                return Ok(None);
            };
            if at < seg.start {
                if at == self.read_offset {
                    // The reader crosses the gap, and on over records settled out of order
                    // beyond it: go on from where it stops, not from the settled records.
                    self.advance(seg.start, false);
                    at = self.read_offset;
                    continue;
                }
                at = seg.start;
                continue;
            }
            let pos = at - seg.start;
            let file = self.reader_for(seg.start)?;
            let mut buf = [0u8; HEADER_LEN];
            let header = if seg.len - pos >= HEADER_LEN as u64 {
                file.read_exact_at(&mut buf, pos)?;
                record::parse_header(&buf).filter(|h| pos + h.record_len() <= seg.len)
            } else {
                None
            };
            if let Some(header) = header {
                return Ok(Some((at, header)));
            }
            let next =
                segment::next_header(file, seg.len, pos + 1)?.map_or(seg.end(), |p| seg.start + p);
            tracing::error!(
                segment = seg.start,
                offset = pos,
                skipped_bytes = next - at,
                "damaged record header in the buffer; skipping to the next valid record"
            );
            self.settle(at, next, 0);
            at = next;
        }
    }

    /// The intact, young-enough record at `offset` (crossing into the next segment at a
    /// segment's end), or None: anything unusual is left for taking in order to deal with.
    fn record_at(&mut self, offset: u64, too_old: i64) -> io::Result<Option<Pending>> {
        if let Some(kept) = self.fresh.get(offset) {
            return Ok((kept.header.max_ts_ms >= too_old).then(|| Pending {
                block: kept.block.clone(),
                position: Position::Disk {
                    offset,
                    next: offset + kept.header.record_len(),
                },
            }));
        }
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

    /// A block whose fate is known leaves the queue (`samples` for the ledger's count).
    fn remove(&mut self, position: Position, samples: u32) {
        match position {
            Position::Disk { offset, next } => self.settle(offset, next, u64::from(samples)),
            Position::Memory { seq } if self.fallback.front().is_some_and(|(s, _)| *s == seq) => {
                if let Some((_, block)) = self.fallback.pop_front() {
                    self.fallback_bytes -= block.data.len() as u64;
                }
            }
            Position::Memory { .. } => {} // already dropped to make room
        }
    }

    /// The record (or damaged stretch) from `offset` to `next` is settled: the reader moves
    /// over it when it is the head, else the ledger keeps it.
    fn settle(&mut self, offset: u64, next: u64, samples: u64) {
        if offset < self.read_offset || self.ledger.contains(offset) {
            return; // already dropped to make room, or settled twice
        }
        if offset == self.read_offset {
            self.advance(next, true);
            return;
        }
        self.ledger.insert(Span {
            start: offset,
            end: next,
            blocks: 1,
            samples,
        });
        self.ledger_unsaved = true;
        self.disk_blocks = self.disk_blocks.saturating_sub(1);
        self.note_unsaved();
    }

    /// Moves the reader to `offset`, and on over the settled spans it meets, deleting the
    /// segments it has left behind.
    fn advance(&mut self, offset: u64, passed_record: bool) {
        self.read_offset = offset;
        if passed_record {
            self.disk_blocks = self.disk_blocks.saturating_sub(1);
        }
        while let Some(span) = self.ledger.take_at(self.read_offset) {
            self.read_offset = span.end;
            self.ledger_unsaved = true;
        }
        self.cursor = self.cursor.max(self.read_offset);
        self.fresh.forget_before(self.read_offset);
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
        self.note_unsaved();
    }

    /// Starts the second within which the moved position must be saved, unless one runs.
    fn note_unsaved(&mut self) {
        if self.read_offset != self.saved_offset || self.ledger_unsaved {
            self.unsaved_since.get_or_insert_with(Instant::now);
        }
    }

    /// Saves the reader position and the ledger if they moved since the last save.
    fn save_position(&mut self) {
        if self.read_offset == self.saved_offset && !self.ledger_unsaved {
            self.unsaved_since = None;
            return;
        }
        match self
            .position
            .save(&self.dir, self.read_offset, self.ledger.iter())
        {
            Ok(()) => {
                self.saved_offset = self.read_offset;
                self.ledger_unsaved = false;
                self.position_unsaved = false;
                self.unsaved_since = None;
            }
            Err(e) => {
                if !self.position_unsaved {
                    // Logged once per incident; delivery goes on, at worst with duplicates later.
                    tracing::warn!(error = %e, "cannot save the buffer's reader position");
                    self.position_unsaved = true;
                }
                // Tried again in a second, not at once.
                self.unsaved_since = Some(Instant::now());
            }
        }
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
mod position_tests;
#[cfg(test)]
mod take_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod torn_tests;
