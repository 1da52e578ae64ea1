use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderValue};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error_chain::error_chain;
use crate::peer_text;
use crate::secret::Secret;

/// How long a connection to Jellyfin stays open unused: past the default 15 s interval so
/// that the next cycle reuses it, and under the idle timeouts of Kestrel (130 s) and of
/// nginx (75 s) in front of it, so that the server rarely closes it first.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Idle connections kept: one, because each keeps hyper's read buffer (grown to about
/// 400 KiB by an 800 KiB /Sessions answer) and reqwest cannot bound that buffer.
const POOL_MAX_IDLE: usize = 1;

/// Why the Jellyfin client could not be made (the message never holds the token).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the Jellyfin token holds characters not allowed in a header")]
    TokenNotHeaderSafe,
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
}

/// What the agent did to one endpoint: the catalogue's `jellyfin_api_response_seconds` and
/// `jellyfin_api_requests_total` are read from here by the system collector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    pub last_response_seconds: f64,
    /// Requests by `code` label (HTTP status or `error`).
    pub requests: BTreeMap<String, u64>,
}

/// Shared by every collector's requests; keyed by endpoint path template.
#[derive(Debug, Default)]
pub struct ApiStats(Mutex<BTreeMap<&'static str, EndpointStats>>);

impl ApiStats {
    fn record(&self, endpoint: &'static str, code: String, elapsed: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(endpoint).or_default();
        entry.last_response_seconds = elapsed.as_secs_f64();
        *entry.requests.entry(code).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, EndpointStats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A Jellyfin API client. Cheap to clone; clones share the connection pool and the stats.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    auth: HeaderValue,
    /// Kept to cut it out of error snippets, should a proxy's error page echo the header.
    token: Secret,
    timeout: Duration,
    max_response_size: u64,
    stats: Arc<ApiStats>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `base` must end in `/` (the config guarantees it). The token goes into the one header
    /// Jellyfin 10.x and 12.0 both accept, marked sensitive so that no HTTP-level debug
    /// logging prints it.
    pub fn new(
        base: url::Url,
        token: &Secret,
        timeout: Duration,
        max_response_size: u64,
    ) -> Result<Client, ClientError> {
        let mut auth = HeaderValue::from_str(&format!("MediaBrowser Token=\"{}\"", token.expose()))
            .map_err(|_| ClientError::TokenNotHeaderSafe)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .connect_timeout(timeout)
            // The timeout covers the body too, so a peer that trickles cannot hold a cycle.
            .timeout(timeout)
            // A 3xx is an error naming its Location (see get_json_inner), never followed.
            .redirect(reqwest::redirect::Policy::none())
            // Jellyfin is on this host or next to it: never through a proxy, not even one
            // named by HTTP_PROXY in the environment (remote_write.proxy_url is per remote).
            .no_proxy()
            // One connection kept between cycles saves a connect and a close a cycle (the
            // fast cycle's two requests run at once, so the second still opens its own):
            // about 0.3 ms of CPU, and a lower steady RSS too (README, Figures). Kept without
            // a bound on their number they raised the steady RSS by up to 1.3 MiB.
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            // Over http:// (Jellyfin on this host) no certificate is ever checked: the
            // system's CA bundle is not read and parsed into memory for nothing.
            .tls_built_in_root_certs(base.scheme() == "https")
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base,
            auth,
            token: token.clone(),
            timeout,
            max_response_size,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> &ApiStats {
        &self.stats
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// GETs `endpoint` (a path template such as `/System/Info`; `path_and_query` is the
    /// concrete path when it differs) and decodes the JSON answer into `T`.
    pub async fn get_json<T: DeserializeOwned + 'static>(
        &self,
        endpoint: &'static str,
        path_and_query: Option<&str>,
    ) -> Result<T, ApiError> {
        self.get_json_within(endpoint, path_and_query, self.timeout)
            .await
    }

    /// [`Client::get_json`] with its own timeout in place of `jellyfin.timeout`, for a request
    /// known to be slow on big servers (an inventory page).
    pub async fn get_json_within<T: DeserializeOwned + 'static>(
        &self,
        endpoint: &'static str,
        path_and_query: Option<&str>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        self.request_json(endpoint, path_and_query.unwrap_or(endpoint), None, timeout)
            .await
    }

    /// POSTs `body` as JSON to `endpoint` and decodes the JSON answer into `T`: only for
    /// plugin endpoints that take their query in the body (Playback Reporting's
    /// submit_custom_query); the server's own API is read with GETs.
    pub async fn post_json<T: DeserializeOwned + 'static>(
        &self,
        endpoint: &'static str,
        body: &serde_json::Value,
    ) -> Result<T, ApiError> {
        self.request_json(endpoint, endpoint, Some(body), self.timeout)
            .await
    }

    async fn request_json<T: DeserializeOwned + 'static>(
        &self,
        endpoint: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = self.request_json_inner(endpoint, path, body, timeout).await;
        let code = match &result {
            Ok(_) => "200".to_string(),
            Err(e) => e.code_label(),
        };
        self.stats.record(endpoint, code, started.elapsed());
        result
    }

    async fn request_json_inner<T: DeserializeOwned + 'static>(
        &self,
        endpoint: &'static str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let url =
            self.base
                .join(path.trim_start_matches('/'))
                .map_err(|e| ApiError::Unreachable {
                    endpoint,
                    base: self.base.to_string(),
                    reason: format!("cannot build the request URL: {e}"),
                })?;
        let request = match body {
            None => self.http.get(url),
            Some(body) => self
                .http
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        };
        let mut response = request
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, e, timeout))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        match status {
            200..=299 => {}
            300..=399 => {
                // Never followed: the API key would go wherever the peer points.
                return Err(ApiError::Redirect {
                    endpoint,
                    status,
                    location: peer_text::location(
                        response.headers().get(header::LOCATION),
                        &self.base,
                        &[&self.token],
                    ),
                });
            }
            401 => return Err(ApiError::Unauthorized { endpoint }),
            403 => return Err(ApiError::Forbidden { endpoint }),
            _ => {
                // Only what is shown is read; the connection is dropped on the rest.
                let (prefix, _) =
                    peer_text::read_prefix(response, peer_text::ERROR_BODY_LIMIT).await;
                return Err(ApiError::Status {
                    endpoint,
                    status,
                    snippet: peer_text::excerpt(
                        &prefix,
                        &[&self.token],
                        super::decode::SNIPPET_CHARS,
                    ),
                });
            }
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_size)
        {
            return Err(ApiError::TooLarge {
                endpoint,
                limit: self.max_response_size,
            });
        }
        // Decoded as it arrives (Incoming): the answer is never held whole, and
        // max_response_size holds all the same, counted over the chunks.
        let announced = response
            .content_length()
            .unwrap_or(0)
            .min(self.max_response_size);
        let secrets = [&self.token];
        let mut incoming = super::Incoming::<T>::new(
            endpoint,
            &content_type,
            usize::try_from(announced).unwrap_or(0),
            &secrets,
        );
        let mut received = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, e, timeout))?
        {
            received += chunk.len() as u64;
            if received > self.max_response_size {
                return Err(ApiError::TooLarge {
                    endpoint,
                    limit: self.max_response_size,
                });
            }
            // Stopped early (broken JSON, or enough of a page that is not JSON): the rest is
            // not read, and dropping the response closes the connection.
            if !incoming.feed(&chunk)? {
                break;
            }
        }
        incoming.finish()
    }

    fn transport_error(
        &self,
        endpoint: &'static str,
        e: reqwest::Error,
        timeout: Duration,
    ) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                endpoint,
                after: timeout,
            };
        }
        // The URL is ours to print (it never holds the token); reqwest's own text repeats it,
        // so it is stripped, and the causes ("connection refused") are appended.
        ApiError::Unreachable {
            endpoint,
            base: self.base.to_string(),
            reason: error_chain(&e.without_url()),
        }
    }
}
