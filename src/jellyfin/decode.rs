//! Turns a 2xx answer's body into a DTO, or into an error that names the endpoint and, for a
//! shape mismatch, the field. Pure, so that it can be fuzzed without a server.

use serde::de::DeserializeOwned;

use super::error::{ApiError, snippet};
use crate::secret::Secret;

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
            snippet: snippet(body, secrets),
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Decode {
        endpoint,
        field: e.path().to_string(),
        reason: e.inner().to_string(),
    })
}
