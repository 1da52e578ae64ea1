//! 64 bytes of JSON at once: where its quotes and brackets are, as bit masks (bit i for byte
//! i), the first stage of simdjson reduced to what skipping a value needs. With SSE2 (every
//! x86-64) 16 bytes per compare; elsewhere a plain loop that gives the same masks.

/// The quotes and brackets (`{`, `[`, `}`, `]`) of a block.
#[derive(Debug, PartialEq)]
pub struct Masks {
    pub quotes: u64,
    pub brackets: u64,
}

/// The masks of `block` (64 bytes), or `None` when it holds a backslash: escapes are left
/// to the byte-by-byte walk, and Jellyfin's answers hold few.
pub fn masks(block: &[u8]) -> Option<Masks> {
    let block: &[u8; 64] = block.try_into().ok()?;
    let (quotes, backslashes, brackets) = find(block);
    (backslashes == 0).then_some(Masks { quotes, brackets })
}

/// Bit i set for every bit at or below i that is set an odd number of times: from the
/// quotes, the bytes inside strings (the opening quote included, the closing one not).
pub fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// `{` and `[` differ only in the 0x20 bit, as do `}` and `]`: one compare each after
/// setting it.
const OPEN: u8 = b'{';
const CLOSE: u8 = b'}';

#[cfg(target_arch = "x86_64")]
fn find(block: &[u8; 64]) -> (u64, u64, u64) {
    use std::arch::x86_64::*;
    let (mut quotes, mut backslashes, mut brackets) = (0u64, 0u64, 0u64);
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86-64; the load is unaligned and reads the 16 bytes of
        // `chunk`.
        let (q, b, br) = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let mask =
                |c: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u16 as u64;
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let fmask = |c: u8| {
                _mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8(c as i8))) as u16 as u64
            };
            (mask(b'"'), mask(b'\\'), fmask(OPEN) | fmask(CLOSE))
        };
        quotes |= q << (16 * k);
        backslashes |= b << (16 * k);
        brackets |= br << (16 * k);
    }
    (quotes, backslashes, brackets)
}

#[cfg(not(target_arch = "x86_64"))]
fn find(block: &[u8; 64]) -> (u64, u64, u64) {
    let (mut quotes, mut backslashes, mut brackets) = (0u64, 0u64, 0u64);
    for (i, &byte) in block.iter().enumerate() {
        quotes |= u64::from(byte == b'"') << i;
        backslashes |= u64::from(byte == b'\\') << i;
        brackets |= u64::from(byte | 0x20 == OPEN || byte | 0x20 == CLOSE) << i;
    }
    (quotes, backslashes, brackets)
}

/// Where the first `"` or `\\` of 16 bytes is, if any: most keys and short values end within
/// the 16 bytes after their opening quote, where one compare finds the end sooner than
/// memchr2 is called and set up.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn quote_or_backslash(bytes: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; the load is unaligned and reads the 16 bytes given.
    let mask = unsafe {
        let v = _mm_loadu_si128(bytes.as_ptr().cast());
        let quotes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslashes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(quotes, backslashes)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn quote_or_backslash(bytes: &[u8; 16]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'"' || *b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks as a plain loop finds them.
    fn reference(block: &[u8]) -> Option<Masks> {
        let bit = |i: usize, yes: bool| u64::from(yes) << i;
        let mut m = Masks {
            quotes: 0,
            brackets: 0,
        };
        for (i, &b) in block.iter().enumerate() {
            if b == b'\\' {
                return None;
            }
            m.quotes |= bit(i, b == b'"');
            m.brackets |= bit(i, matches!(b, b'{' | b'[' | b'}' | b']'));
        }
        Some(m)
    }

    #[test]
    fn finds_quotes_and_brackets_in_every_lane() {
        let mut block = *br#"{"Name":"a [b] {c}","x":[1,2,{"y":null}],"z":"\u00e9","w":"#;
        let mut padded = [b' '; 64];
        padded[..block.len().min(64)].copy_from_slice(&block[..block.len().min(64)]);
        assert_eq!(masks(&padded), None, "a backslash");
        block
            .iter_mut()
            .filter(|b| **b == b'\\')
            .for_each(|b| *b = b'u');
        padded[..block.len().min(64)].copy_from_slice(&block[..block.len().min(64)]);
        assert_eq!(masks(&padded), reference(&padded));
        // Every byte value in every position (0x5B/0x7B and 0x5D/0x7D only are brackets).
        for value in 0..=255u8 {
            let block = [value; 64];
            assert_eq!(masks(&block), reference(&block), "{value:#x}");
        }
        assert_eq!(masks(&[b'{'; 63]), None, "not a block");
    }

    #[test]
    fn finds_the_first_quote_or_backslash() {
        for i in 0..16 {
            for byte in [b'"', b'\\'] {
                let mut bytes = [b'a'; 16];
                bytes[i] = byte;
                bytes[15] = b'"';
                assert_eq!(quote_or_backslash(&bytes), Some(i));
            }
        }
        assert_eq!(quote_or_backslash(&[b'{'; 16]), None);
    }

    #[test]
    fn inside_strings_from_the_quotes() {
        // `"ab" "c"`: quotes at 0, 3, 5 and 7; inside 0..=2 and 5..=6 (the opening quote
        // included, the closing one not).
        assert_eq!(prefix_xor(0b1010_1001), 0b0110_0111);
        assert_eq!(prefix_xor(1 << 63), 1 << 63);
        assert_eq!(prefix_xor(1), u64::MAX);
    }
}
