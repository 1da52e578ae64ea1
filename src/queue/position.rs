//! The reader position and the ledger of blocks settled out of order beyond it
//! ([`super::ledger`]), in the file `position`: two checksummed, sequence-numbered slots,
//! each save overwriting the older one in place (pwrite, then fdatasync). The file's size and
//! name never change after it is made, so a save needs no rename, no fsync of the folder and
//! no new inode: one write and one data sync, where `meta.json` (before) took a temporary
//! file, two fsyncs and a rename each time the buffer ran empty.
//!
//! A crash tears at most the slot being written; the other still holds the save before, whole
//! and checksummed, so a load takes the valid slot with the higher sequence number: the last
//! save or the one before it (blocks acknowledged in between are sent again, never skipped).
//! A save that failed is retried into the same slot, so the newest state known to be on disk
//! is never the one overwritten.
//!
//! ```text
//! slot (at 0 and at slot_len; slot_len = file size / 2, a multiple of 4 KiB)
//! offset size field
//!      0    4 magic        b"JPQP"
//!      4    4 version      u32 LE, 1
//!      8    8 seq          u64 LE, one more than the save before
//!     16    8 read_offset  u64 LE
//!     24    4 spans        u32 LE, how many follow
//!     28    4 reserved     0
//!     32 32*n span         start, end, blocks, samples: u64 LE each
//!  32+32n   4 crc          CRC32C of bytes 0..32+32n
//! ```
//!
//! 4 KiB slots hold 126 spans (a few are usual). A ledger that outgrows them makes a file with
//! larger slots, replaced atomically (write, fsync, rename, fsync the folder), up to 1 MiB a
//! slot (32,766 spans); past that the save fails, logged, and the previous one stands.
//!
//! Upgrade: a queue that has only `meta.json` (the format before) is read from it once; the
//! first save makes `position` and then deletes `meta.json`, so a stale `meta.json` is never
//! read after `position` exists (its spans may name offsets a packing has since rewritten).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::ledger::Span;
use super::meta;

pub const FILE: &str = "position";
const MAGIC: [u8; 4] = *b"JPQP";
const VERSION: u32 = 1;
const HEAD: usize = 32;
const SPAN: usize = 32;
const CRC: usize = 4;
const MIN_SLOT: usize = 4096;
const MAX_SLOT: usize = 1 << 20;

/// A saved reader position and ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub read_offset: u64,
    pub acked: Vec<Span>,
}

/// Where the newest state is, so that the next save overwrites the other slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots {
    slot_len: usize,
    /// The slot holding the newest valid state, and its sequence number.
    newest: usize,
    seq: u64,
}

/// The position file of one queue, open for saving.
pub struct Position {
    file: Option<File>,
    slots: Option<Slots>,
    /// `meta.json` is still there, to be deleted once `position` holds a save.
    legacy: bool,
    /// The slot being built, kept to save without allocating.
    buf: Vec<u8>,
}

/// The saved state of the queue in `dir`, for those who only read it (`status`): Ok(None)
/// when nothing was saved yet; an unreadable file is an error naming it.
pub fn load(dir: &Path) -> Result<Option<Saved>, String> {
    Ok(read(dir)?.map(|(saved, _)| saved))
}

/// The saved state: from `position`, or from `meta.json` when there is no `position` yet.
fn read(dir: &Path) -> Result<Option<(Saved, Option<Slots>)>, String> {
    let path = dir.join(FILE);
    let bytes = match crate::state_file::read_capped(&path, 2 * MAX_SLOT as u64) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(meta::load(dir)?.map(|m| {
                let saved = Saved {
                    read_offset: m.read_offset,
                    acked: m.acked,
                };
                (saved, None)
            }));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let slot_len = bytes.len() / 2;
    if bytes.len() % (2 * MIN_SLOT) != 0 || slot_len == 0 {
        return Err(format!(
            "{} is damaged: {} bytes is not two slots of a multiple of {MIN_SLOT} bytes",
            path.display(),
            bytes.len()
        ));
    }
    let newest = (0..2)
        .filter_map(|i| parse_slot(&bytes[i * slot_len..(i + 1) * slot_len]).map(|s| (i, s)))
        .max_by_key(|(_, (seq, _))| *seq);
    match newest {
        Some((newest, (seq, saved))) => Ok(Some((
            saved,
            Some(Slots {
                slot_len,
                newest,
                seq,
            }),
        ))),
        None => Err(format!(
            "{} is damaged: neither slot passes its checksum",
            path.display()
        )),
    }
}

/// A slot's sequence number and state, or None when it is not a whole, valid slot.
fn parse_slot(slot: &[u8]) -> Option<(u64, Saved)> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(slot.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(slot.get(i..i + 8)?.try_into().ok()?));
    if slot.get(..4)? != MAGIC || u32_at(4)? != VERSION {
        return None;
    }
    let spans = usize::try_from(u32_at(24)?).ok()?;
    let end = spans.checked_mul(SPAN)?.checked_add(HEAD)?;
    if end.checked_add(CRC)? > slot.len() || crc32c::crc32c(&slot[..end]) != u32_at(end)? {
        return None;
    }
    let acked = (0..spans)
        .map(|i| {
            let at = HEAD + i * SPAN;
            Some(Span {
                start: u64_at(at)?,
                end: u64_at(at + 8)?,
                blocks: u64_at(at + 16)?,
                samples: u64_at(at + 24)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((
        u64_at(8)?,
        Saved {
            read_offset: u64_at(16)?,
            acked,
        },
    ))
}

impl Position {
    /// The saved state of the queue in `dir` (Err: unreadable, to be logged; the caller then
    /// starts from the oldest data) and the file to save the next states into. Opening changes
    /// nothing on disk: the first save does.
    pub fn open(dir: &Path) -> (Result<Option<Saved>, String>, Position) {
        let legacy = dir.join(meta::FILE).exists();
        let mut position = Position {
            file: None,
            slots: None,
            legacy,
            buf: Vec::with_capacity(MIN_SLOT),
        };
        let found = match read(dir) {
            Ok(Some((saved, slots))) => {
                position.slots = slots;
                Ok(Some(saved))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        (found, position)
    }

    /// Saves the reader position and the ledger: into the older slot in place, or, when
    /// there is no valid `position` file yet or the ledger outgrew its slots, as a new file
    /// replaced atomically.
    pub fn save<'a>(
        &mut self,
        dir: &Path,
        read_offset: u64,
        acked: impl ExactSizeIterator<Item = &'a Span>,
    ) -> io::Result<()> {
        let seq = self.slots.map_or(1, |s| s.seq.wrapping_add(1));
        encode(&mut self.buf, seq, read_offset, acked)?;
        match self.slots {
            Some(slots) if self.buf.len() <= slots.slot_len => {
                let target = 1 - slots.newest;
                if self.file.is_none() {
                    self.file = Some(open_rw(dir).inspect_err(|e| {
                        if e.kind() == io::ErrorKind::NotFound {
                            self.slots = None; // deleted under us: the next save makes it anew
                        }
                    })?);
                }
                let file = self.file.as_ref().expect("opened above");
                file.write_all_at(&self.buf, (target * slots.slot_len) as u64)?;
                // The size and name are unchanged: the data alone needs syncing.
                file.sync_data()?;
                self.slots = Some(Slots {
                    newest: target,
                    seq,
                    ..slots
                });
            }
            _ => self.replace(dir, seq)?,
        }
        if self.legacy {
            // `position` holds a save now; a stale meta.json must never be read again.
            match std::fs::remove_file(dir.join(meta::FILE)) {
                Ok(()) => crate::state_file::sync_dir(dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.legacy = false;
        }
        Ok(())
    }

    /// Writes a whole new file (the slot in `buf` first, the other empty), atomically.
    fn replace(&mut self, dir: &Path, seq: u64) -> io::Result<()> {
        let slot_len = self.buf.len().next_power_of_two().max(MIN_SLOT);
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.resize(2 * slot_len, 0);
        let written = crate::state_file::write_atomically(&dir.join(FILE), &bytes);
        bytes.clear();
        self.buf = bytes;
        written?;
        self.file = None; // the handle names the replaced file
        self.slots = Some(Slots {
            slot_len,
            newest: 0,
            seq,
        });
        Ok(())
    }
}

fn open_rw(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(FILE))
}

/// One slot's bytes into `buf` (cleared first).
fn encode<'a>(
    buf: &mut Vec<u8>,
    seq: u64,
    read_offset: u64,
    acked: impl ExactSizeIterator<Item = &'a Span>,
) -> io::Result<()> {
    let spans = acked.len();
    if HEAD + spans * SPAN + CRC > MAX_SLOT {
        return Err(io::Error::other(format!(
            "{spans} settled spans do not fit the position file's largest slot ({MAX_SLOT} bytes)"
        )));
    }
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&read_offset.to_le_bytes());
    buf.extend_from_slice(&(spans as u32).to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    for span in acked {
        for field in [span.start, span.end, span.blocks, span.samples] {
            buf.extend_from_slice(&field.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}
