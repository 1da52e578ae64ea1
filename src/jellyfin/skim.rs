//! Cuts a JSON answer down to the parts a DTO reads ([`Shape`]) before serde decodes it: a
//! /Sessions answer is 16 KB per playing session, nearly all of it NowPlayingItem's people,
//! chapters and streams, NowPlayingQueueFullItems and Capabilities, which no collector reads.
//! Skipped objects and arrays are passed 64 bytes at a time by their quotes and brackets
//! ([`blocks`]), building nothing; the objects the DTOs read are walked key by key, and the
//! keys read are copied, with their values, into a small text that serde decodes as before.
//!
//! What is skipped is checked for structure (strings closed, brackets matched by kind, depth
//! at most serde_json's 128; in the stretches walked byte by byte, no byte between strings
//! that JSON does not allow there), not for every rule of the grammar: a key without a value
//! inside a skipped object goes unseen.
//! Anything the walk finds wrong gives `None`, and the caller decodes the whole answer as
//! before, which names the place.

use super::shape::Shape;

mod blocks;

/// serde_json's own limit: a deeper answer is refused the same way.
const MAX_DEPTH: usize = 128;

/// The text of `body` holding only what `shape` reads, or `None` when `body` is not JSON as
/// far as the walk can tell.
pub fn skim(body: &[u8], shape: &Shape) -> Option<Vec<u8>> {
    let mut walk = Walk {
        body,
        at: 0,
        out: Vec::with_capacity(body.len() / 16),
        open: Vec::new(),
    };
    walk.value(shape)?;
    walk.space();
    (walk.at == body.len()).then_some(walk.out)
}

struct Walk<'a> {
    body: &'a [u8],
    at: usize,
    out: Vec<u8>,
    /// The closing brackets a skipped value still owes (reused from value to value).
    open: Vec<u8>,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// At a `"`: moves past the closing quote; says whether the string holds an escape.
    /// (memchr2 even for the short keys: a byte loop over the first 16 bytes was slower.)
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        let mut at = self.at + 1;
        loop {
            let rest = self.body.get(at..)?;
            let found = memchr::memchr2(b'"', b'\\', rest)?;
            at += found;
            if self.body[at] == b'"' {
                self.at = at + 1;
                return Some(escaped);
            }
            escaped = true;
            at += 2;
        }
    }

    /// One value as `shape` reads it: copied whole, or an object or array entered.
    fn value(&mut self, shape: &Shape) -> Option<()> {
        self.space();
        match (shape, self.peek()?) {
            (Shape::Object(fields), b'{') => self.object(fields),
            (Shape::Array(element), b'[') => self.array(element),
            // Whole, or not the kind the DTO expects: serde says what it makes of it.
            _ => {
                let from = self.at;
                self.skip()?;
                self.out.extend_from_slice(&self.body[from..self.at]);
                Some(())
            }
        }
    }

    fn object(&mut self, fields: &[(&'static str, Shape)]) -> Option<()> {
        self.at += 1;
        self.out.push(b'{');
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            self.out.push(b'}');
            return Some(());
        }
        let mut first = true;
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            let key_from = self.at;
            let escaped = self.string()?;
            let key = &self.body[key_from..self.at];
            // A key spelt with escapes is kept whole: serde compares it unescaped.
            let read = if escaped {
                Some(&Shape::Whole)
            } else {
                let name = &key[1..key.len() - 1];
                fields
                    .iter()
                    .find(|(field, _)| field.as_bytes() == name)
                    .map(|(_, shape)| shape)
            };
            self.expect(b':')?;
            match read {
                Some(shape) => {
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.out.extend_from_slice(key);
                    self.out.push(b':');
                    self.value(shape)?;
                }
                None => self.skip()?,
            }
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    self.out.push(b'}');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, element: &Shape) -> Option<()> {
        self.at += 1;
        self.out.push(b'[');
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
            self.out.push(b']');
            return Some(());
        }
        loop {
            self.value(element)?;
            self.space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.out.push(b',');
                }
                b']' => {
                    self.at += 1;
                    self.out.push(b']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Past one value, building nothing.
    fn skip(&mut self) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => self.skip_container(),
            _ => {
                let from = self.at;
                while self.peek().is_some_and(|b| SCALAR[usize::from(b)]) {
                    self.at += 1;
                }
                (self.at > from).then_some(())
            }
        }
    }

    /// Past the object or array opening here, whatever it holds: 64 bytes at a time where
    /// they hold no backslash ([`blocks`]), byte by byte elsewhere.
    fn skip_container(&mut self) -> Option<()> {
        self.open.clear();
        let mut state = Scan::default();
        let mut at = self.at;
        loop {
            let Some(block) = self.body.get(at..at + 64) else {
                // The tail, shorter than a block.
                let end = state.bytes(&self.body[at..], &mut self.open)??;
                self.at = at + end;
                return Some(());
            };
            let found = match blocks::masks(block) {
                Some(masks) if !state.escaped => state.block(block, masks, &mut self.open)?,
                _ => state.bytes(block, &mut self.open)?,
            };
            if let Some(end) = found {
                self.at = at + end;
                return Some(());
            }
            at += 64;
        }
    }
}

/// Where a skipped container's walk is, from one stretch of bytes to the next.
#[derive(Default)]
struct Scan {
    in_string: bool,
    /// The last byte was a backslash inside a string.
    escaped: bool,
}

impl Scan {
    /// Byte by byte through `bytes`: `Some(Some(end))` past the bracket that closes the
    /// container, `Some(None)` when it is still open at the end, `None` when broken.
    fn bytes(&mut self, bytes: &[u8], open: &mut Vec<u8>) -> Option<Option<usize>> {
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
                b'{' | b'[' | b'}' | b']' => {
                    if bracket(byte, open)? {
                        return Some(Some(i + 1));
                    }
                }
                _ if BETWEEN[usize::from(byte)] => {}
                _ => return None,
            }
        }
        Some(None)
    }

    /// 64 bytes without a backslash at once: strings from the quotes' running parity, then
    /// only the brackets outside strings are looked at.
    fn block(
        &mut self,
        block: &[u8],
        masks: blocks::Masks,
        open: &mut Vec<u8>,
    ) -> Option<Option<usize>> {
        let mut inside = blocks::prefix_xor(masks.quotes);
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 == 1;
        let mut brackets = masks.brackets & !inside;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            if bracket(block[i], open)? {
                return Some(Some(i + 1));
            }
        }
        Some(None)
    }
}

/// A bracket outside strings: opens (depth at most [`MAX_DEPTH`]) or closes the innermost
/// open one of its kind; `Some(true)` when that closed the outermost.
fn bracket(byte: u8, open: &mut Vec<u8>) -> Option<bool> {
    match byte {
        b'{' | b'[' => {
            if open.len() == MAX_DEPTH {
                return None;
            }
            open.push(if byte == b'{' { b'}' } else { b']' });
            Some(false)
        }
        _ => {
            if open.pop()? != byte {
                return None;
            }
            Some(open.is_empty())
        }
    }
}

/// The bytes of a number, `true`, `false` or `null`.
const SCALAR: [bool; 256] = table(b"0123456789+-.eEtrufalsn");

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jellyfin::dto::Session;
    use crate::jellyfin::shape;

    fn skimmed(body: &str) -> Option<String> {
        skim(body.as_bytes(), &shape::of::<Vec<Session>>())
            .map(|t| String::from_utf8(t).expect("UTF-8 in, UTF-8 out"))
    }

    #[test]
    fn keeps_only_what_the_dtos_read() {
        let body = r#" [ {"Id" : "a", "Capabilities": {"PlayableMediaTypes": ["Video"], "x": [[{}], -1.5e3, true, null]},
            "NowPlayingItem": {"Name": "Film", "People": [{"Name": "x \"y\" ]}"}], "MediaStreams": [{"Type": "Video", "Height": 1080, "Title": "4K"}]},
            "PlayState": null, "I\u0064": "b"} , {} ] "#;
        assert_eq!(
            skimmed(body).as_deref(),
            Some(
                r#"[{"Id":"a","NowPlayingItem":{"Name":"Film","MediaStreams":[{"Type":"Video","Height":1080}]},"PlayState":null,"I\u0064":"b"},{}]"#
            )
        );
    }

    /// Long skipped values, walked 64 bytes at a time: quotes, brackets and escapes on every
    /// side of a block's edge.
    #[test]
    fn long_skipped_values_end_where_they_end() {
        for pad in 0..140 {
            let filler = "x".repeat(pad);
            let body = format!(
                r#"[{{"Capabilities": {{"a": "{filler}\"]}}\\", "b": [{{"c": "{filler}"}}, [], {{}}], "d": "{{["}}, "Id": "s{pad}"}}]"#
            );
            assert_eq!(
                skimmed(&body),
                Some(format!(r#"[{{"Id":"s{pad}"}}]"#)),
                "{body}"
            );
            // Cut anywhere inside, or one bracket of the wrong kind: refused.
            let cut = &body[..body.len() - 30];
            assert_eq!(skimmed(cut), None, "{cut}");
            let wrong = body.replacen("[], {}]", "[], {}}", 1);
            assert_eq!(skimmed(&wrong), None, "{wrong}");
        }
    }

    #[test]
    fn a_value_of_another_kind_is_left_to_serde() {
        assert_eq!(
            skimmed(r#"[{"PlayState": [1, 2]}, "x", 3]"#).as_deref(),
            Some(r#"[{"PlayState":[1, 2]},"x",3]"#)
        );
        assert_eq!(skimmed(r#"{"a": 1}"#).as_deref(), Some(r#"{"a": 1}"#));
    }

    #[test]
    fn broken_structure_is_refused() {
        for body in [
            "",
            "[",
            r#"[{"Id": "a"}"#,
            r#"[{"Capabilities": {"a": [1, 2}}]"#,
            r#"[{"Capabilities": {"a": "open}]"#,
            r#"[{"Capabilities": {"a": <html>}}]"#,
            r#"[{"Id" "a"}]"#,
            r#"[{"Id": "a",}]"#,
            r#"[{"Id": "a"}] x"#,
            r#"[{"Id": "a"} {"Id": "b"}]"#,
            r#"[{"Other": }]"#,
            r#"[{Id: "a"}]"#,
            "[\"\\",
        ] {
            assert_eq!(skimmed(body), None, "{body}");
        }
        let deep = format!(
            r#"[{{"Capabilities": {}{}}}]"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(skimmed(&deep), None);
        let fine = format!(
            r#"[{{"Capabilities": {}{}}}]"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(skimmed(&fine).as_deref(), Some("[{}]"));
    }
}
