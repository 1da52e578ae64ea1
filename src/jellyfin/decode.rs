//! Turns a 2xx answer's body into a DTO, or into an error that names the endpoint and, for a
//! shape mismatch, the field. Pure, so that it can be fuzzed without a server.

use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::peer_text::{self, Prefix};
use crate::secret::Secret;

/// Characters of a Jellyfin page or decoder message shown in an error message.
pub(super) const SNIPPET_CHARS: usize = 120;

/// Decodes `body` (with its `content_type`) from `endpoint`; `secrets` are cut out of any
/// excerpt of the body quoted in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    endpoint: &'static str,
    content_type: &str,
    body: &[u8],
    secrets: &[&Secret],
) -> Result<T, ApiError> {
    let looks_like_json = content_type.contains("json")
        || body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
    if !looks_like_json {
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
    // The plain decoder first: serde_path_to_error records every key it passes (an owned
    // String each), which on a 50-session /Sessions answer costs more than the parse itself.
    // Only a body that fails is decoded again, to name the field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Decode {
        endpoint,
        // serde quotes the offending value, which is peer text.
        field: peer_text::excerpt_str(&e.path().to_string(), secrets, SNIPPET_CHARS),
        reason: peer_text::excerpt_str(&e.inner().to_string(), secrets, SNIPPET_CHARS),
    })
}
