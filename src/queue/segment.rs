//! Data files ("segments"), named after the queue offset of their first byte, and the scan
//! that recovers one after a crash.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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

/// Opens a segment for appending, creating it private (0600); a symlink is refused.
pub fn open_append(dir: &Path, start: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
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

/// How much of a segment a search for the next valid header holds in memory at once.
const SEARCH_WINDOW: usize = 1024 * 1024;

/// The offset (in the file) of the first valid header at or after `from`. The file is read in
/// windows of [`SEARCH_WINDOW`] bytes, each overlapping the last by a header's length less
/// one byte, so a damaged stretch of any size costs one window of memory.
pub fn next_header(file: &File, len: u64, from: u64) -> io::Result<Option<u64>> {
    let mut window = Vec::new();
    let mut start = from;
    while start < len {
        let size = (len - start).min(SEARCH_WINDOW as u64) as usize;
        window.resize(size, 0);
        file.read_exact_at(&mut window, start)?;
        if let Some(i) = record::find_header(&window, 0) {
            return Ok(Some(start + i as u64));
        }
        if start + size as u64 >= len {
            break;
        }
        start += (size - (HEADER_LEN - 1)) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Block;

    /// Headers straddling every window boundary are found, and nothing past the file's end.
    #[test]
    fn the_windowed_search_finds_headers_across_window_boundaries() {
        let record = record::frame(&Block {
            data: bytes::Bytes::from_static(b"body"),
            samples: 1,
            min_timestamp_ms: 1,
            max_timestamp_ms: 2,
        });
        let dir = tempfile::tempdir().unwrap();
        for at in [
            0,
            1,
            SEARCH_WINDOW - HEADER_LEN,
            SEARCH_WINDOW - 10,
            SEARCH_WINDOW - 1,
            SEARCH_WINDOW,
            2 * SEARCH_WINDOW - 20,
        ] {
            let mut data = vec![0u8; at];
            data.extend_from_slice(&record);
            data.extend(vec![7u8; 100]);
            let path = dir.path().join(format!("{at}"));
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            let len = data.len() as u64;
            assert_eq!(
                next_header(&file, len, 0).unwrap(),
                Some(at as u64),
                "at {at}"
            );
            assert_eq!(
                next_header(&file, len, at as u64 + 1).unwrap(),
                None,
                "after {at}"
            );
        }
    }
}
