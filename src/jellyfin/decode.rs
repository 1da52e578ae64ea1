//! Turns a 2xx answer's body into a DTO, or into an error that names the endpoint and, for a
//! shape mismatch, the field. Pure, so that it can be fuzzed without a server.

use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{json_path, shape, skim};
use crate::peer_text::{self, Prefix};
use crate::secret::Secret;

/// Characters of a Jellyfin page or decoder message shown in an error message.
pub(super) const SNIPPET_CHARS: usize = 120;

/// Decodes `body` (with its `content_type`) from `endpoint`; `secrets` are cut out of any
/// excerpt of the body quoted in the error. For a body already whole (the tests, the fuzzing
/// and the bench); the client decodes answers chunk by chunk ([`super::Incoming`]).
///
/// Only the parts `T` reads reach serde (skim): the bench's 800 KiB /Sessions answer costs
/// about 0.7 ms of CPU instead of 0.75-0.8 (README, Figures), the skim itself mostly walking
/// the keys of the MediaStreams the DTOs read. Whatever the skim or serde finds wrong, the
/// whole answer is decoded again as [`decode_whole`] does, so that an error names the same
/// place and says the same.
pub fn decode<T: DeserializeOwned + 'static>(
    endpoint: &'static str,
    content_type: &str,
    body: &[u8],
    secrets: &[&Secret],
) -> Result<T, ApiError> {
    let shape = shape::cached::<T>();
    if !matches!(shape, shape::Shape::Whole)
        && looks_like_json(content_type, body)
        && let Some(read) = skim::skim(body, shape)
        && let Ok(value) = from_bytes(&read)
    {
        return Ok(value);
    }
    decode_whole(endpoint, content_type, body, secrets)
}

/// The skim alone, without [`decode`]'s fallback: `None` when it refuses the body (a `T` read
/// whole is decoded whole); for the tests that check it never refuses valid JSON.
#[cfg(test)]
pub(crate) fn skim_only<T: DeserializeOwned + 'static>(
    body: &[u8],
) -> Option<Result<T, serde_json::Error>> {
    let shape = shape::cached::<T>();
    if matches!(shape, shape::Shape::Whole) {
        return Some(from_bytes(body));
    }
    skim::skim(body, shape).map(|read| from_bytes(&read))
}

/// [`decode`] without the skim: every byte through serde. What every answer cost before;
/// [`decode`]'s fallback, and the reference its tests and the bench compare it with.
pub fn decode_whole<T: DeserializeOwned>(
    endpoint: &'static str,
    content_type: &str,
    body: &[u8],
    secrets: &[&Secret],
) -> Result<T, ApiError> {
    if !looks_like_json(content_type, body) {
        return Err(ApiError::NotJson {
            endpoint,
            content_type: content_type.to_string(),
            // Only the first bytes are looked at, and a cut secret is dropped (peer_text).
            snippet: peer_text::excerpt(
                &Prefix::of(body, peer_text::ERROR_BODY_LIMIT),
                secrets,
                SNIPPET_CHARS,
            ),
        });
    }
    from_text(endpoint, body, secrets)
}

/// `text` (JSON, whole or skimmed) through serde; a failure names the field from its position.
pub(super) fn from_text<T: DeserializeOwned>(
    endpoint: &'static str,
    text: &[u8],
    secrets: &[&Secret],
) -> Result<T, ApiError> {
    // Decoded without tracking the path (an owned key per field on every answer); on failure
    // the path is found from the position serde_json reports (json_path).
    from_bytes(text).map_err(|e| {
        let at = json_path::offset_of(text, e.line(), e.column());
        ApiError::Decode {
            endpoint,
            // Keys and serde's quotes of the offending value are peer text.
            field: peer_text::excerpt_str(&json_path::path_at(text, at), secrets, SNIPPET_CHARS),
            reason: peer_text::excerpt_str(&reason(&e), secrets, SNIPPET_CHARS),
        }
    })
}

/// Said to be JSON, or starting like a JSON object or array.
fn looks_like_json(content_type: &str, body: &[u8]) -> bool {
    content_type.contains("json")
        || body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[')
}

fn from_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        // UTF-8 checked once, at memory speed: decoding from a str, serde_json does not check
        // each key and string again (a third of the decoding time of a /Sessions answer).
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// serde_json's message without its " at line L column C": the field names the place.
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) if e.line() > 0 => text[..at].to_string(),
        _ => text,
    }
}
