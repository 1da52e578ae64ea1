//! Cuts a JSON answer down to the parts a DTO reads ([`Shape`]) as its chunks arrive, before
//! serde decodes it: a /Sessions answer is 16 KB per playing session, nearly all of it
//! NowPlayingItem's people, chapters and streams, NowPlayingQueueFullItems and Capabilities,
//! which no collector reads. The answer itself is never kept whole: each chunk is walked and
//! dropped, and only the skimmed text (59 KB of an 800 KiB /Sessions answer) is built.
//!
//! The walk is a state machine over an explicit stack of the objects and arrays the DTOs
//! read, so that it stops at a chunk's end anywhere and takes up where it stopped with the
//! next: only a key cut at the edge is carried over (the keys read are compared whole).
//! Skipped objects and arrays are passed 64 bytes at a time by their quotes and brackets
//! ([`scan`]), building nothing; the objects the DTOs read are walked key by key, and the keys
//! read are copied, with their values, into a small text that serde decodes as before.
//!
//! What is skipped is checked for structure (strings closed, brackets matched by kind, depth
//! at most serde_json's 128; in the stretches walked byte by byte, no byte between strings
//! that JSON does not allow there), not for every rule of the grammar: a key without a value
//! inside a skipped object goes unseen. Anything the walk finds wrong is a [`Broken`] naming
//! the byte and the JSON path where it stopped.

use super::shape::Shape;

mod blocks;
mod scan;
#[cfg(test)]
mod tests;

use scan::{Found, SCALAR, Scan, StringEnd};

/// A key spelt with escapes is read whole: serde compares it unescaped.
static WHOLE: Shape = Shape::Whole;

/// The text of `body` holding only what `shape` reads, or `None` when `body` is not JSON as
/// far as the walk can tell: [`Skim`] fed the whole body at once.
pub fn skim(body: &[u8], shape: &Shape) -> Option<Vec<u8>> {
    let mut skim = Skim::new(shape, body.len() / 16);
    skim.feed(body).ok()?;
    skim.finish().ok()
}

/// Where and why the walk stopped.
#[derive(Debug, PartialEq)]
pub struct Broken {
    /// Bytes of the answer before the one at fault (its length when it ended too soon).
    pub at: u64,
    /// The containers open there, as [`super::json_path`] writes them.
    pub path: String,
    pub what: &'static str,
}

/// A skim under way: fed the answer chunk by chunk ([`Skim::feed`]), then [`Skim::finish`].
pub struct Skim<'s> {
    stack: Vec<Frame<'s>>,
    mode: Mode<'s>,
    out: Vec<u8>,
    /// The keys of the open objects back to back, for [`Broken::path`] (each object's from
    /// its frame's `key_at`).
    keys: Vec<u8>,
    /// A key cut at a chunk's edge, from its opening quote.
    carry: Vec<u8>,
    string: StringEnd,
    scan: Scan,
    /// Bytes fed before the chunk being walked.
    fed: u64,
}

enum Frame<'s> {
    Object {
        fields: &'s [(&'static str, Shape)],
        /// No key copied to the text yet (the next one needs no comma).
        first: bool,
        key_at: usize,
    },
    Array {
        element: &'s Shape,
        index: usize,
    },
}

/// What the walk expects at the next byte.
#[derive(Clone, Copy)]
enum Mode<'s> {
    /// A value, read as this shape.
    Value(&'s Shape),
    /// A value no DTO reads.
    Skipped,
    /// Just inside an object: a key, or its end.
    FirstKey,
    /// After a comma in an object.
    Key,
    /// Inside a key cut at a chunk's edge (held in `carry`).
    InKey,
    /// After a key: its colon, then its value read as this (or skipped).
    Colon(Option<&'s Shape>),
    /// Just inside an array: an element read as this, or its end.
    FirstElement(&'s Shape),
    /// After a value inside an object or array: a comma or the end.
    AfterValue,
    /// Inside a string, object or array, or scalar passed whole: copied to the text when
    /// `copy` (a value a DTO reads whole), else dropped.
    String {
        copy: bool,
    },
    Container {
        copy: bool,
    },
    Scalar {
        copy: bool,
    },
    /// After the top-level value: only white space.
    Done,
}

/// A fault at byte `.0` of the chunk being walked.
struct Fault(usize, &'static str);

const UNEXPECTED: &str = "a byte that JSON does not allow here";
const MISMATCHED: &str = "brackets or strings that do not match";

impl<'s> Skim<'s> {
    /// `capacity`: the skimmed text's expected size (a sixteenth of the answer's announced
    /// length is ample for /Sessions).
    pub fn new(shape: &'s Shape, capacity: usize) -> Skim<'s> {
        Skim {
            stack: Vec::new(),
            mode: Mode::Value(shape),
            out: Vec::with_capacity(capacity),
            keys: Vec::new(),
            carry: Vec::new(),
            string: StringEnd::default(),
            scan: Scan::default(),
            fed: 0,
        }
    }

    /// The next chunk of the answer.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Broken> {
        let mut at = 0;
        while at < chunk.len() {
            match self.step(chunk, at) {
                Ok(next) => at = next,
                Err(Fault(i, what)) => return Err(self.broken(self.fed + i as u64, what)),
            }
        }
        self.fed += chunk.len() as u64;
        Ok(())
    }

    /// The skimmed text, once the whole answer was fed.
    pub fn finish(mut self) -> Result<Vec<u8>, Broken> {
        if let Mode::Scalar { .. } = self.mode {
            // A scalar ends where the answer does.
            self.mode = self.after_value();
        }
        match self.mode {
            Mode::Done => Ok(self.out),
            _ => Err(self.broken(self.fed, "the answer ends before its JSON does")),
        }
    }

    /// One token, or one stretch of a value passed whole, from `chunk[at]`: where the next
    /// begins.
    fn step(&mut self, chunk: &[u8], at: usize) -> Result<usize, Fault> {
        match self.mode {
            Mode::String { copy } => return Ok(self.in_string(chunk, at, copy)),
            Mode::Container { copy } => return self.in_container(chunk, at, copy),
            Mode::Scalar { copy } => return Ok(self.in_scalar(chunk, at, copy)),
            Mode::InKey => return self.in_key(chunk, at),
            _ => {}
        }
        let byte = chunk[at];
        if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            return Ok(at + 1);
        }
        match (self.mode, byte) {
            (Mode::Value(shape), _) => self.value(shape, chunk, at),
            (Mode::Skipped, _) => self.whole(chunk, at, false),
            (Mode::FirstKey, b'}') => Ok(self.close(b'}', at)),
            (Mode::FirstKey | Mode::Key, b'"') => self.keys(chunk, at),
            (Mode::Colon(read), b':') => {
                self.mode = read.map_or(Mode::Skipped, Mode::Value);
                Ok(at + 1)
            }
            (Mode::FirstElement(_), b']') => Ok(self.close(b']', at)),
            (Mode::FirstElement(element), _) => self.value(element, chunk, at),
            (Mode::AfterValue, b',') => match self.stack.last_mut() {
                Some(Frame::Object { key_at, .. }) => {
                    self.keys.truncate(*key_at);
                    self.mode = Mode::Key;
                    Ok(at + 1)
                }
                Some(Frame::Array { element, index }) => {
                    *index += 1;
                    self.out.push(b',');
                    self.mode = Mode::Value(element);
                    Ok(at + 1)
                }
                None => Err(Fault(at, UNEXPECTED)),
            },
            (Mode::AfterValue, b'}' | b']') => match self.stack.last() {
                Some(Frame::Object { .. }) if byte == b'}' => Ok(self.close(byte, at)),
                Some(Frame::Array { .. }) if byte == b']' => Ok(self.close(byte, at)),
                _ => Err(Fault(at, "a bracket that closes nothing open")),
            },
            (Mode::Done, _) => Err(Fault(at, "more after the JSON value")),
            _ => Err(Fault(at, UNEXPECTED)),
        }
    }

    /// A value read as `shape`: an object or array entered, anything else passed whole
    /// (serde says what it makes of a value of another kind than the DTO's).
    fn value(&mut self, shape: &'s Shape, chunk: &[u8], at: usize) -> Result<usize, Fault> {
        match (shape, chunk[at]) {
            (Shape::Object(fields), b'{') => {
                self.stack.push(Frame::Object {
                    fields,
                    first: true,
                    key_at: self.keys.len(),
                });
                self.out.push(b'{');
                self.mode = Mode::FirstKey;
                Ok(at + 1)
            }
            (Shape::Array(element), b'[') => {
                self.stack.push(Frame::Array { element, index: 0 });
                self.out.push(b'[');
                self.mode = Mode::FirstElement(element);
                Ok(at + 1)
            }
            _ => self.whole(chunk, at, true),
        }
    }

    /// The start of a value passed whole.
    fn whole(&mut self, chunk: &[u8], at: usize, copy: bool) -> Result<usize, Fault> {
        match chunk[at] {
            b'"' => {
                self.string = StringEnd::default();
                if copy {
                    self.out.push(b'"');
                }
                self.mode = Mode::String { copy };
                Ok(at + 1)
            }
            b'{' | b'[' => {
                self.scan.reset();
                self.mode = Mode::Container { copy };
                Ok(at)
            }
            byte if SCALAR[usize::from(byte)] => {
                self.mode = Mode::Scalar { copy };
                Ok(at)
            }
            _ => Err(Fault(at, UNEXPECTED)),
        }
    }

    fn in_string(&mut self, chunk: &[u8], at: usize, copy: bool) -> usize {
        let end = match self.string.end(chunk, at) {
            Some(end) => {
                self.mode = self.after_value();
                end
            }
            None => chunk.len(),
        };
        if copy {
            self.out.extend_from_slice(&chunk[at..end]);
        }
        end
    }

    fn in_container(&mut self, chunk: &[u8], at: usize, copy: bool) -> Result<usize, Fault> {
        let end = match self.scan.stretch(&chunk[at..]) {
            Ok(Found::End(end)) => {
                self.mode = self.after_value();
                at + end
            }
            Ok(Found::More) => chunk.len(),
            Err(i) => return Err(Fault(at + i, MISMATCHED)),
        };
        if copy {
            self.out.extend_from_slice(&chunk[at..end]);
        }
        Ok(end)
    }

    fn in_scalar(&mut self, chunk: &[u8], at: usize, copy: bool) -> usize {
        let run = scalar_run(&chunk[at..]);
        if at + run < chunk.len() {
            self.mode = self.after_value();
        }
        if copy {
            self.out.extend_from_slice(&chunk[at..at + run]);
        }
        at + run
    }

    /// Keys from the opening quote at `at`, and the values no DTO reads after them, in one
    /// loop while they are compact and whole in this chunk (most of a walked object): only
    /// what is cut at the chunk's edge, read, spaced or wrong goes back to [`Skim::step`],
    /// with the mode saying where it stopped.
    fn keys(&mut self, chunk: &[u8], mut at: usize) -> Result<usize, Fault> {
        loop {
            let end = self.key(chunk, at)?;
            if !matches!(self.mode, Mode::Colon(None)) || chunk.get(end) != Some(&b':') {
                return Ok(end);
            }
            at = end + 1;
            self.mode = Mode::Skipped;
            at = match chunk.get(at) {
                Some(b'"') => {
                    self.string = StringEnd::default();
                    match self.string.end(chunk, at + 1) {
                        Some(end) => end,
                        None => {
                            self.mode = Mode::String { copy: false };
                            return Ok(chunk.len());
                        }
                    }
                }
                Some(b'{' | b'[') => {
                    self.scan.reset();
                    match self.scan.stretch(&chunk[at..]) {
                        Ok(Found::End(end)) => at + end,
                        Ok(Found::More) => {
                            self.mode = Mode::Container { copy: false };
                            return Ok(chunk.len());
                        }
                        Err(i) => return Err(Fault(at + i, MISMATCHED)),
                    }
                }
                Some(&byte) if SCALAR[usize::from(byte)] => {
                    let run = scalar_run(&chunk[at..]);
                    if at + run == chunk.len() {
                        self.mode = Mode::Scalar { copy: false };
                        return Ok(chunk.len());
                    }
                    at + run
                }
                _ => return Ok(at),
            };
            self.mode = Mode::AfterValue;
            if chunk.get(at) != Some(&b',') || chunk.get(at + 1) != Some(&b'"') {
                return Ok(at);
            }
            at += 1;
        }
    }

    /// A key's opening quote at `at`.
    fn key(&mut self, chunk: &[u8], at: usize) -> Result<usize, Fault> {
        self.string = StringEnd::default();
        match self.string.end(chunk, at + 1) {
            Some(end) => {
                self.got_key(&chunk[at..end]);
                Ok(end)
            }
            None => {
                self.carry.clear();
                self.carry.extend_from_slice(&chunk[at..]);
                self.mode = Mode::InKey;
                Ok(chunk.len())
            }
        }
    }

    fn in_key(&mut self, chunk: &[u8], at: usize) -> Result<usize, Fault> {
        let end = self.string.end(chunk, at);
        self.carry
            .extend_from_slice(&chunk[at..end.unwrap_or(chunk.len())]);
        if let Some(end) = end {
            let key = std::mem::take(&mut self.carry);
            self.got_key(&key);
            self.carry = key;
            return Ok(end);
        }
        Ok(chunk.len())
    }

    /// A whole key, quotes included: copied with its value when the DTO reads it.
    fn got_key(&mut self, key: &[u8]) {
        let Some(Frame::Object {
            fields,
            first,
            key_at,
        }) = self.stack.last_mut()
        else {
            // Keys are only looked for inside an object.
            return;
        };
        let name = &key[1..key.len() - 1];
        let read = if self.string.escaped {
            Some(&WHOLE)
        } else {
            fields
                .iter()
                .find(|(field, _)| field.as_bytes() == name)
                .map(|(_, shape)| shape)
        };
        self.keys.truncate(*key_at);
        self.keys.extend_from_slice(name);
        if read.is_some() {
            if !*first {
                self.out.push(b',');
            }
            *first = false;
            self.out.extend_from_slice(key);
            self.out.push(b':');
        }
        self.mode = Mode::Colon(read);
    }

    /// The bracket at `at` closes the innermost container.
    fn close(&mut self, bracket: u8, at: usize) -> usize {
        if let Some(Frame::Object { key_at, .. }) = self.stack.pop() {
            self.keys.truncate(key_at);
        }
        self.out.push(bracket);
        self.mode = self.after_value();
        at + 1
    }

    fn after_value(&self) -> Mode<'s> {
        match self.stack.last() {
            Some(_) => Mode::AfterValue,
            None => Mode::Done,
        }
    }

    fn broken(&self, at: u64, what: &'static str) -> Broken {
        let mut path = String::new();
        let mut objects = self.stack.iter().filter_map(|f| match f {
            Frame::Object { key_at, .. } => Some(*key_at),
            Frame::Array { .. } => None,
        });
        objects.next();
        for frame in &self.stack {
            match frame {
                Frame::Array { index, .. } => path.push_str(&format!("[{index}]")),
                Frame::Object { key_at, .. } => {
                    let end = objects.next().unwrap_or(self.keys.len());
                    if end > *key_at {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(&String::from_utf8_lossy(&self.keys[*key_at..end]));
                    }
                }
            }
        }
        if path.is_empty() {
            path.push('.');
        }
        Broken { at, path, what }
    }
}

/// How many bytes of a number, `true`, `false` or `null` start `bytes`.
fn scalar_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !SCALAR[usize::from(*b)])
        .unwrap_or(bytes.len())
}
