//! The record frame: a fixed header, checksummed on its own, then the block body.
//!
//! ```text
//! offset size field
//!      0    4 magic        b"JPB1"
//!      4    4 len          u32 LE, body length
//!      8    4 samples      u32 LE
//!     12    4 body_crc     u32 LE, CRC32C of the body
//!     16    8 min_ts_ms    i64 LE
//!     24    8 max_ts_ms    i64 LE
//!     32    4 header_crc   u32 LE, CRC32C of bytes 0..32
//!     36  len body         the snappy-compressed WriteRequest, exactly as sent
//! ```
//!
//! The header has its own checksum so that a damaged length is detected before it is trusted:
//! a bad body loses one record, a bad header makes the reader search for the next valid header.

use bytes::Bytes;

use super::Block;

pub const HEADER_LEN: usize = 36;
const MAGIC: [u8; 4] = *b"JPB1";
/// No block comes near this; a larger length can only be damage that slipped past the CRC.
pub const MAX_BODY_LEN: u32 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub samples: u32,
    pub body_crc: u32,
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
}

impl Header {
    /// Bytes the whole record takes on disk.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    pub fn into_block(self, body: Vec<u8>) -> Block {
        Block {
            data: Bytes::from(body),
            samples: self.samples,
            min_timestamp_ms: self.min_ts_ms,
            max_timestamp_ms: self.max_ts_ms,
        }
    }
}

/// The bytes to append for `block`.
pub fn frame(block: &Block) -> Vec<u8> {
    let mut out = Vec::with_capacity(framed_len(block));
    frame_into(&mut out, block);
    out
}

/// How many bytes `block` takes framed.
pub fn framed_len(block: &Block) -> usize {
    HEADER_LEN + block.data.len()
}

/// Appends `block`'s record to `out` (several records in one buffer, one allocation).
pub fn frame_into(out: &mut Vec<u8>, block: &Block) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(block.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&block.samples.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&block.data).to_le_bytes());
    out.extend_from_slice(&block.min_timestamp_ms.to_le_bytes());
    out.extend_from_slice(&block.max_timestamp_ms.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&block.data);
}

/// Parses a header; None when it is not one (wrong magic, bad checksum, absurd length).
pub fn parse_header(buf: &[u8]) -> Option<Header> {
    let buf: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        i64::from_le_bytes(b)
    };
    if buf[..4] != MAGIC || crc32c::crc32c(&buf[..32]) != u32_at(32) {
        return None;
    }
    let header = Header {
        len: u32_at(4),
        samples: u32_at(8),
        body_crc: u32_at(12),
        min_ts_ms: i64_at(16),
        max_ts_ms: i64_at(24),
    };
    (header.len <= MAX_BODY_LEN).then_some(header)
}

pub fn body_is_intact(header: &Header, body: &[u8]) -> bool {
    body.len() == header.len as usize && crc32c::crc32c(body) == header.body_crc
}

/// The position of the first valid header in `buf` at or after `from`, for resynchronising
/// after a damaged header.
pub fn find_header(buf: &[u8], from: usize) -> Option<usize> {
    // memchr's vectorised search keeps a scan of a large damaged stretch at memory speed.
    let finder = memchr::memmem::Finder::new(&MAGIC);
    let mut at = from;
    while at < buf.len() {
        let i = at + finder.find(&buf[at..])?;
        if i + HEADER_LEN > buf.len() {
            return None;
        }
        if parse_header(&buf[i..]).is_some() {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block {
            data: Bytes::from_static(b"compressed"),
            samples: 7,
            min_timestamp_ms: -5,
            max_timestamp_ms: 99,
        }
    }

    #[test]
    fn frame_round_trips() {
        let bytes = frame(&block());
        assert_eq!(bytes.len(), HEADER_LEN + 10);
        let header = parse_header(&bytes).unwrap();
        assert_eq!(
            (
                header.len,
                header.samples,
                header.min_ts_ms,
                header.max_ts_ms
            ),
            (10, 7, -5, 99)
        );
        assert!(body_is_intact(&header, &bytes[HEADER_LEN..]));
        assert_eq!(header.into_block(bytes[HEADER_LEN..].to_vec()), block());
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let bytes = frame(&block());
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let ok =
                parse_header(&damaged).is_some_and(|h| body_is_intact(&h, &damaged[HEADER_LEN..]));
            assert!(!ok, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn resync_finds_the_next_record() {
        let mut bytes = vec![0u8; 13];
        bytes.extend(frame(&block()));
        bytes.extend(frame(&block()));
        assert_eq!(find_header(&bytes, 0), Some(13));
        assert_eq!(find_header(&bytes, 14), Some(13 + HEADER_LEN + 10));
        assert_eq!(find_header(&bytes, 14 + HEADER_LEN + 10), None);
    }
}
