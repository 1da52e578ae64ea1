//! Passing over a value no DTO reads, stretch by stretch as the answer arrives: where a
//! string ends ([`StringEnd`]) and where a container closes ([`Scan`]). Both keep what they
//! need between two chunks (inside a string or not, a backslash just seen, the brackets still
//! open), so a value cut at a chunk's edge is taken up where it stopped; nothing is copied.

use super::blocks;

/// serde_json's limit for the values it reads. For a value skipped here it bounds the
/// brackets kept between chunks; serde_json itself skips a value of any depth, so the skim
/// is the stricter of the two there (no Jellyfin answer nests that deep).
pub const MAX_DEPTH: usize = 128;

/// Inside a string, from just after its opening quote.
#[derive(Default)]
pub struct StringEnd {
    /// The string holds an escape (a key spelt with one is kept whole: serde unescapes it).
    pub escaped: bool,
    /// The last byte seen was a backslash: the next one is taken with it.
    after_backslash: bool,
}

impl StringEnd {
    /// Past the closing quote in `bytes[from..]`, or `None` when the string goes on past
    /// them: 16 bytes at once first ([`blocks::quote_or_backslash`]), then memchr2 for a long
    /// string (a byte loop over the first 16 bytes was slower than memchr2).
    #[inline]
    pub fn end(&mut self, bytes: &[u8], from: usize) -> Option<usize> {
        let mut at = from;
        if self.after_backslash {
            if at >= bytes.len() {
                return None;
            }
            self.after_backslash = false;
            at += 1;
        }
        loop {
            at += match bytes.get(at..at + 16) {
                Some(sixteen) => match sixteen.try_into().ok().and_then(blocks::quote_or_backslash)
                {
                    Some(i) => i,
                    None => 16 + memchr::memchr2(b'"', b'\\', bytes.get(at + 16..)?)?,
                },
                None => memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?,
            };
            if bytes[at] == b'"' {
                return Some(at + 1);
            }
            self.escaped = true;
            if at + 1 == bytes.len() {
                self.after_backslash = true;
                return None;
            }
            at += 2;
        }
    }
}

/// Where a skipped container's walk is, from one stretch of bytes to the next.
#[derive(Default)]
pub struct Scan {
    in_string: bool,
    /// The last byte was a backslash inside a string.
    escaped: bool,
    /// The closing brackets still owed, innermost last (its allocation kept from value to
    /// value).
    open: Vec<u8>,
}

/// What a stretch of a skipped container held.
pub enum Found {
    /// The container closed just before this index.
    End(usize),
    /// Still open at the stretch's end.
    More,
}

impl Scan {
    /// Ready for a container opening at the next byte.
    pub fn reset(&mut self) {
        self.in_string = false;
        self.escaped = false;
        self.open.clear();
    }

    /// Through `bytes` (starting at the container's opening bracket, or where the last
    /// stretch stopped): 64 bytes at a time where they hold no backslash ([`blocks`]), byte
    /// by byte elsewhere. `Err(i)`: broken at byte i.
    pub fn stretch(&mut self, bytes: &[u8]) -> Result<Found, usize> {
        let mut at = 0;
        while let Some(block) = bytes.get(at..at + 64) {
            let found = match blocks::masks(block) {
                Some(masks) if !self.escaped => self.block(block, masks),
                _ => self.bytes(block),
            };
            match found {
                Ok(Found::End(end)) => return Ok(Found::End(at + end)),
                Ok(Found::More) => at += 64,
                Err(i) => return Err(at + i),
            }
        }
        match self.bytes(&bytes[at..]) {
            Ok(Found::End(end)) => Ok(Found::End(at + end)),
            Ok(Found::More) => Ok(Found::More),
            Err(i) => Err(at + i),
        }
    }

    /// Byte by byte; checks too that only what JSON allows stands between strings.
    fn bytes(&mut self, bytes: &[u8]) -> Result<Found, usize> {
        for (i, &byte) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' | b'}' | b']' => match self.bracket(byte) {
                    Some(true) => return Ok(Found::End(i + 1)),
                    Some(false) => {}
                    None => return Err(i),
                },
                _ if BETWEEN[usize::from(byte)] => {}
                _ => return Err(i),
            }
        }
        Ok(Found::More)
    }

    /// 64 bytes without a backslash at once: strings from the quotes' running parity, then
    /// only the brackets outside strings are looked at.
    fn block(&mut self, block: &[u8], masks: blocks::Masks) -> Result<Found, usize> {
        let mut inside = blocks::prefix_xor(masks.quotes);
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 == 1;
        let mut brackets = masks.brackets & !inside;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            match self.bracket(block[i]) {
                Some(true) => return Ok(Found::End(i + 1)),
                Some(false) => {}
                None => return Err(i),
            }
        }
        Ok(Found::More)
    }

    /// A bracket outside strings: opens (depth at most [`MAX_DEPTH`]) or closes the innermost
    /// open one of its kind; `Some(true)` when that closed the outermost.
    fn bracket(&mut self, byte: u8) -> Option<bool> {
        match byte {
            b'{' | b'[' => {
                if self.open.len() == MAX_DEPTH {
                    return None;
                }
                self.open.push(if byte == b'{' { b'}' } else { b']' });
                Some(false)
            }
            _ => {
                if self.open.pop()? != byte {
                    return None;
                }
                Some(self.open.is_empty())
            }
        }
    }
}

/// The bytes of a number, `true`, `false` or `null`.
pub const SCALAR: [bool; 256] = table(b"0123456789+-.eEtrufalsn");

/// The bytes JSON allows between strings and brackets: scalars, separators, white space.
const BETWEEN: [bool; 256] = table(b"0123456789+-.eEtrufalsn:, \t\n\r");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}
