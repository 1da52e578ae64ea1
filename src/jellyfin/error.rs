use std::time::Duration;

/// Why a Jellyfin request failed. Every variant names the endpoint (the path template, never a
/// URL with ids or a token), and none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("GET {endpoint}: no answer within {}", humantime::format_duration(*after))]
    Timeout {
        endpoint: &'static str,
        after: Duration,
    },
    #[error("GET {endpoint}: cannot reach Jellyfin at {base}: {reason}")]
    Unreachable {
        endpoint: &'static str,
        base: String,
        reason: String,
    },
    #[error(
        "GET {endpoint}: Jellyfin answered 401 Unauthorized: the API key in jellyfin.token_file is wrong or was revoked"
    )]
    Unauthorized { endpoint: &'static str },
    #[error(
        "GET {endpoint}: Jellyfin answered 403 Forbidden: the API key lacks the rights for this endpoint (use an API key created in Dashboard > API Keys)"
    )]
    Forbidden { endpoint: &'static str },
    #[error(
        "GET {endpoint}: Jellyfin answered HTTP {status}, a redirect to {location}: redirects are not followed (set jellyfin.url to the final address)"
    )]
    Redirect {
        endpoint: &'static str,
        status: u16,
        location: String,
    },
    #[error("GET {endpoint}: Jellyfin answered HTTP {status}: {snippet}")]
    Status {
        endpoint: &'static str,
        status: u16,
        snippet: String,
    },
    #[error(
        "GET {endpoint}: expected JSON but got {content_type} (is jellyfin.url the server's base URL?); the answer starts with: {snippet}"
    )]
    NotJson {
        endpoint: &'static str,
        content_type: String,
        snippet: String,
    },
    #[error("GET {endpoint}: the answer is larger than jellyfin.max_response_size ({limit} bytes)")]
    TooLarge { endpoint: &'static str, limit: u64 },
    #[error("GET {endpoint}: the JSON does not match the expected shape at `{field}`: {reason}")]
    Decode {
        endpoint: &'static str,
        field: String,
        reason: String,
    },
}

impl ApiError {
    /// The `code` label of `jellyfin_api_requests_total`: the HTTP status, or `error` when no
    /// status was received (or the body was unusable although the status was 2xx).
    pub fn code_label(&self) -> String {
        match self {
            ApiError::Unauthorized { .. } => "401".into(),
            ApiError::Forbidden { .. } => "403".into(),
            ApiError::Status { status, .. } | ApiError::Redirect { status, .. } => {
                status.to_string()
            }
            _ => "error".into(),
        }
    }
}
