//! A 2xx answer decoded as its chunks arrive ([`Incoming`]): skimmed chunk by chunk
//! ([`super::skim`]), so that an 800 KiB /Sessions answer is never held whole (before, each
//! cycle copied it into a fresh 800 KiB buffer, which glibc maps and unmaps page by page).
//!
//! What is kept instead: the skimmed text (59 KB of that answer); for an answer that is not
//! JSON, its first [`peer_text::ERROR_BODY_LIMIT`] bytes to quote; for a DTO read whole (no
//! shape to skim by), the whole answer as before. The skimmed text gives the same DTO and, for
//! a value of the wrong type, the same error as the whole answer ([`decode_whole`]): it keeps
//! every key and array element on the way to what is read, so the path serde's position gives
//! is the same. Broken JSON ends the answer at once, with an error naming the byte and path.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use super::decode::{SNIPPET_CHARS, decode_whole, from_text};
use super::error::ApiError;
use super::shape::{self, Shape};
use super::skim::{Broken, Skim};
use crate::peer_text::{self, Prefix};
use crate::secret::Secret;

/// An answer to `endpoint` under way, to be decoded into `T`.
pub struct Incoming<'a, T> {
    endpoint: &'static str,
    content_type: String,
    secrets: &'a [&'a Secret],
    state: State,
    into: PhantomData<fn() -> T>,
}

enum State {
    /// Not said to be JSON, and only white space so far: the first other byte decides.
    Undecided(Prefix),
    Skimmed(Skim<'static>),
    /// Not JSON: the start of it, quoted in the error.
    NotJson(Prefix),
    /// `T` reads every value: kept whole, decoded as before.
    Whole(Vec<u8>),
}

impl<'a, T: DeserializeOwned + 'static> Incoming<'a, T> {
    /// `announced`: the answer's Content-Length where it was given (within the size limit).
    pub fn new(
        endpoint: &'static str,
        content_type: &str,
        announced: usize,
        secrets: &'a [&'a Secret],
    ) -> Self {
        let shape = shape::cached::<T>();
        let state = if matches!(shape, Shape::Whole) {
            State::Whole(Vec::with_capacity(announced))
        } else if content_type.contains("json") {
            State::Skimmed(skim_for(shape, announced))
        } else {
            State::Undecided(Prefix::new(peer_text::ERROR_BODY_LIMIT))
        };
        Incoming {
            endpoint,
            content_type: content_type.to_string(),
            secrets,
            state,
            into: PhantomData,
        }
    }

    /// The next chunk. `Ok(false)`: the rest need not be read (an answer that is not JSON,
    /// once enough of it is kept to quote); an error ends the answer.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<bool, ApiError> {
        match &mut self.state {
            State::Whole(body) => body.extend_from_slice(chunk),
            State::Skimmed(skim) => skim.feed(chunk).map_err(|b| self.broken(b))?,
            State::NotJson(prefix) => return Ok(prefix.push(chunk)),
            State::Undecided(prefix) => {
                let Some(first) = chunk.iter().find(|b| !b.is_ascii_whitespace()) else {
                    return Ok(prefix.push(chunk));
                };
                if *first == b'{' || *first == b'[' {
                    let mut skim = skim_for(shape::cached::<T>(), 0);
                    let fed = skim.feed(&prefix.bytes).and_then(|()| skim.feed(chunk));
                    fed.map_err(|b| self.broken(b))?;
                    self.state = State::Skimmed(skim);
                } else {
                    let mut prefix = std::mem::take(prefix);
                    let more = prefix.push(chunk);
                    self.state = State::NotJson(prefix);
                    return Ok(more);
                }
            }
        }
        Ok(true)
    }

    /// The DTO, once the answer has ended (or [`Incoming::feed`] said to stop).
    pub fn finish(self) -> Result<T, ApiError> {
        let (endpoint, secrets) = (self.endpoint, self.secrets);
        match self.state {
            State::Whole(body) => decode_whole(endpoint, &self.content_type, &body, secrets),
            // White space only: as the whole answer says it (not JSON).
            State::Undecided(prefix) => {
                decode_whole(endpoint, &self.content_type, &prefix.bytes, secrets)
            }
            State::NotJson(prefix) => Err(ApiError::NotJson {
                endpoint,
                content_type: self.content_type,
                snippet: peer_text::excerpt(&prefix, secrets, SNIPPET_CHARS),
            }),
            State::Skimmed(skim) => match skim.finish() {
                Ok(text) => from_text(endpoint, &text, secrets),
                Err(b) => Err(broken(endpoint, secrets, b)),
            },
        }
    }

    fn broken(&self, b: Broken) -> ApiError {
        broken(self.endpoint, self.secrets, b)
    }
}

fn skim_for(shape: &'static Shape, announced: usize) -> Skim<'static> {
    // A sixteenth of the answer is ample for /Sessions (59 KB of 800 KiB).
    Skim::new(shape, announced / 16)
}

fn broken(endpoint: &'static str, secrets: &[&Secret], b: Broken) -> ApiError {
    ApiError::Decode {
        endpoint,
        // The keys are peer text.
        field: peer_text::excerpt_str(&b.path, secrets, SNIPPET_CHARS),
        reason: format!("not JSON: {} (byte {})", b.what, b.at),
    }
}
