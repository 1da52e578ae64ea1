//! Data files ("segments"), named after the queue offset of their first byte, and the scan
//! that recovers one after a crash.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{self, HEADER_LEN};

const SUFFIX: &str = ".seg";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Queue offset of the segment's first byte.
    pub start: u64,
    /// Bytes in the file.
    pub len: u64,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

pub fn path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}{SUFFIX}"))
}

/// The segments in `dir`, oldest first. Files of other names are left alone.
pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        segments.push(Segment {
            start,
            len: entry.metadata()?.len(),
        });
    }
    segments.sort_by_key(|s| s.start);
    Ok(segments)
}

pub fn open_append(dir: &Path, start: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path(dir, start))
}

/// What a walk over a segment's records found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Records whose header is valid (their bodies are checked when read).
    pub records: u64,
    /// Where the last complete record ends, or the file's end when it ends with one.
    pub valid_end: u64,
    /// Stretches with a damaged header that were skipped to the next valid header.
    pub damaged_stretches: u64,
    /// Samples in the records found, and the oldest of their timestamps (for `status`).
    pub samples: u64,
    pub oldest_sample_ms: Option<i64>,
}

/// Walks the records of `file` (of `len` bytes) from byte `from` by their headers.
/// Everything after the last complete record that holds no further valid header is the
/// torn tail of an interrupted append: `valid_end` stops before it.
pub fn scan(file: &File, len: u64, from: u64) -> io::Result<Scan> {
    let mut scan = Scan {
        valid_end: from,
        ..Scan::default()
    };
    let mut pos = from;
    let mut header = [0u8; HEADER_LEN];
    while pos < len {
        let readable =
            len - pos >= HEADER_LEN as u64 && file.read_exact_at(&mut header, pos).is_ok();
        let complete = readable
            .then(|| record::parse_header(&header))
            .flatten()
            .filter(|h| pos + h.record_len() <= len);
        if let Some(h) = complete {
            pos += h.record_len();
            scan.records += 1;
            scan.samples += u64::from(h.samples);
            scan.oldest_sample_ms = Some(
                scan.oldest_sample_ms
                    .map_or(h.min_ts_ms, |o| o.min(h.min_ts_ms)),
            );
            scan.valid_end = pos;
            continue;
        }
        match next_header(file, len, pos + 1)? {
            Some(next) => {
                scan.damaged_stretches += 1;
                pos = next;
            }
            None => break,
        }
    }
    Ok(scan)
}

/// The offset (in the file) of the first valid header at or after `from`.
pub fn next_header(file: &File, len: u64, from: u64) -> io::Result<Option<u64>> {
    if from >= len {
        return Ok(None);
    }
    let mut rest = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut rest, from)?;
    Ok(record::find_header(&rest, 0).map(|i| from + i as u64))
}
