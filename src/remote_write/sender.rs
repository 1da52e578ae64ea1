//! Sends compressed blocks to one remote-write target.
//!
//! The outcome table (remote write 1.0 spec, and what vmagent does):
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 400, 409, 415 | rejected: resending the same bytes cannot succeed, so the block is dropped and counted (`reason="rejected"`), and the receiver's message is logged as is |
//! | 3xx | retried like a 5xx: redirects are never followed (the metrics and the credentials would go to a host nobody configured); the log names the `Location`, without user info or query |
//! | 400 from vmauth for an unknown token, or from nginx for a missing or untrusted client certificate | retried like a 401: the fix is a file, not the data |
//! | anything else (401/403, 404, 429, 5xx, no answer) | retried with exponential backoff and jitter (1 s doubling to 1 min), or after `Retry-After` when the receiver sends one (the schedule is in `retry.rs`); never given up, so a wrong token or a long outage only delays delivery |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::ExponentialBuilder;
use bytes::Bytes;
use reqwest::header;
use tokio_util::sync::CancellationToken;

use super::retry;
use crate::config::RemoteWriteConfig;
use crate::error_chain::error_chain;
use crate::peer_text;
use crate::secret::{Secret, read_secret_file};
use crate::stats::RemoteStats;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Rejected {
        status: u16,
        message: String,
    },
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

/// The class of an HTTP status in the outcome table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Delivered,
    Rejected,
    Retry,
}

pub fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Delivered,
        400 | 409 | 415 => Class::Rejected,
        _ => Class::Retry,
    }
}

/// What [`Sender::probe`] got.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A credentials file could not be read.
    NotSent(String),
    /// No HTTP answer: DNS, connect, TLS, timeout; the whole error chain.
    NoAnswer(String),
    /// The receiver's status and, unless 2xx, its message with credentials cut out.
    Answered { status: u16, message: String },
}

/// What [`Sender::deliver`] came to after all its retries.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Delivered,
    /// 400, 409 or 415, with the receiver's message.
    Rejected {
        status: u16,
        message: String,
    },
    /// `give_up` said so (the block grew too old while it was being retried).
    GaveUp,
    /// Shutdown came first; the block is still unsent.
    ShutDown,
}

pub struct Sender {
    name: String,
    url: url::Url,
    http: reqwest::Client,
    auth: Auth,
    stats: Arc<RemoteStats>,
    backoff: ExponentialBuilder,
    timeout: Duration,
    /// The failure being retried, if any (see [`retry::Schedule::incident`]).
    incident: retry::Incident,
}

enum Auth {
    None,
    /// The files are read on every request, so a rotated or corrected secret takes effect
    /// without a restart while blocks wait in the buffer.
    Bearer(std::path::PathBuf),
    Basic {
        user: String,
        password_file: std::path::PathBuf,
    },
}

impl Sender {
    pub fn new(config: &RemoteWriteConfig, stats: Arc<RemoteStats>) -> Result<Sender, SenderError> {
        let builder = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .timeout(config.timeout)
            // A 3xx is answered as an error (see send_once), never followed.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        let (builder, url) = super::transport::apply(builder, config)?;
        let http = builder.build().map_err(|source| SenderError::Client {
            remote: config.name.clone(),
            source,
        })?;
        let auth = match (
            &config.bearer_token_file,
            &config.basic_auth_user,
            &config.basic_auth_password_file,
        ) {
            (Some(file), _, _) => Auth::Bearer(file.clone()),
            (None, Some(user), Some(file)) => Auth::Basic {
                user: user.clone(),
                password_file: file.clone(),
            },
            _ => Auth::None,
        };
        Ok(Sender {
            name: config.name.clone(),
            url,
            http,
            auth,
            stats,
            backoff: retry::backoff(),
            timeout: config.timeout,
            incident: retry::Incident::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL requests go to (`url`, or with `tls_server_name` as its host).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    fn post(&self, body: Bytes) -> reqwest::RequestBuilder {
        self.http
            .post(self.url.clone())
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
    }

    /// One POST of `body` for `check`: the answer as it came, unclassified and uncounted.
    pub async fn probe(&self, body: Bytes) -> Probe {
        let (request, secret) = match self.authorize(self.post(body)) {
            Ok(authorized) => authorized,
            Err(reason) => return Probe::NotSent(reason),
        };
        match request.send().await {
            Err(e) => Probe::NoAnswer(error_chain(&e.without_url())),
            Ok(response) if response.status().is_success() => Probe::Answered {
                status: response.status().as_u16(),
                message: String::new(),
            },
            Ok(response) => Probe::Answered {
                status: response.status().as_u16(),
                message: read_message(response, &secret.iter().collect::<Vec<_>>()).await,
            },
        }
    }

    /// One POST of `body`, counted in `remote_write_requests_total{code}`.
    pub async fn send_once(&self, body: Bytes) -> Outcome {
        let request = self.post(body);
        let (request, secret) = match self.authorize(request) {
            Ok(authorized) => authorized,
            Err(reason) => {
                self.stats.request("error");
                return Outcome::Retry {
                    reason,
                    after: None,
                };
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.stats.request("error");
                return Outcome::Retry {
                    reason: error_chain(&e.without_url()),
                    after: None,
                };
            }
        };
        let status = response.status().as_u16();
        self.stats.request(&status.to_string());
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let class = classify(status);
        if class == Class::Delivered {
            return Outcome::Delivered;
        }
        let secrets: Vec<&Secret> = secret.iter().collect();
        if (300..=399).contains(&status) {
            // Never followed: a redirect would re-send the metrics, and perhaps the
            // credentials, to a host nobody configured. Retried like a 5xx.
            let target = peer_text::location(
                response.headers().get(header::LOCATION),
                &self.url,
                &secrets,
            );
            return Outcome::Retry {
                reason: format!(
                    "HTTP {status} redirect to {target}: redirects are not followed; point url at the final address"
                ),
                after: retry_after,
            };
        }
        // Receivers may quote the request back (vmauth 1.79 repeats an unknown token).
        let message = read_message(response, &secrets).await;
        match class {
            Class::Rejected
                if !is_vmauth_unknown_token(status, &message)
                    && !is_client_certificate_refusal(status, &message) =>
            {
                Outcome::Rejected { status, message }
            }
            _ => Outcome::Retry {
                reason: format!("HTTP {status}: {message}"),
                after: retry_after,
            },
        }
    }

    /// Sends `body` until it is delivered or rejected, `give_up` returns true, or shutdown,
    /// with the retry schedule of [`super::retry`]. `failed` is called after every attempt
    /// that is to be retried (the worker's newest-first order watches the link with it);
    /// `wake` ends a backoff wait early, to ask `give_up` again.
    pub async fn deliver_reporting(
        &self,
        body: &Bytes,
        shutdown: &CancellationToken,
        give_up: impl Fn() -> bool,
        failed: impl Fn(),
        wake: Option<&CancellationToken>,
    ) -> Delivery {
        let schedule = retry::Schedule {
            remote: &self.name,
            backoff: &self.backoff,
            stats: &self.stats,
            timeout: self.timeout,
            incident: &self.incident,
            wake,
        };
        schedule
            .run(shutdown, give_up, || async {
                let outcome = self.send_once(body.clone()).await;
                if matches!(outcome, Outcome::Retry { .. }) {
                    failed();
                }
                outcome
            })
            .await
    }

    /// Adds the credentials, read from their files now (reqwest marks the header sensitive).
    /// Adds the credentials, read from their files now (reqwest marks the header sensitive),
    /// and returns the secret so that it can be cut out of the receiver's answer.
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, Option<Secret>), String> {
        Ok(match &self.auth {
            Auth::None => (request, None),
            Auth::Bearer(file) => {
                let token =
                    read_secret_file(file, "bearer_token_file").map_err(|e| e.to_string())?;
                (request.bearer_auth(token.expose()), Some(token))
            }
            Auth::Basic {
                user,
                password_file,
            } => {
                let password = read_secret_file(password_file, "basic_auth_password_file")
                    .map_err(|e| e.to_string())?;
                (
                    request.basic_auth(user, Some(password.expose())),
                    Some(password),
                )
            }
        })
    }
}

/// vmauth 1.79 (Debian 12's) answers an unknown token with 400 and "cannot find the provided
/// auth token", and a missing one with 400 too; later versions answer 401. That is an
/// authentication failure, which a corrected token file fixes, not a malformed block: it is
/// retried like a 401 instead of dropped.
fn is_vmauth_unknown_token(status: u16, message: &str) -> bool {
    status == 400
        && (message.contains("cannot find the provided auth token")
            || message.contains("missing `Authorization` request header"))
}

/// nginx answers a TLS client that sent no certificate, or one it does not trust, with an
/// HTTP 400 page ("No required SSL certificate was sent", "The SSL certificate error")
/// instead of failing the handshake. A corrected certificate fixes it, so the block is
/// retried, not dropped as malformed.
pub fn is_client_certificate_refusal(status: u16, message: &str) -> bool {
    status == 400
        && (message.contains("No required SSL certificate was sent")
            || message.contains("The SSL certificate error"))
}

/// Reads PEM certificates for `ca_file`.
pub fn load_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let path_buf = || path.to_path_buf();
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path_buf(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| CaFileError::NotPem {
            path: path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty { path: path_buf() });
    }
    Ok(certs)
}

/// A `ca_file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read ca_file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ca_file {} is not PEM certificates: {source}", path.display())]
    NotPem {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("ca_file {} holds no certificate", path.display())]
    Empty { path: PathBuf },
}

/// Why a remote's sender could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// Its proxy or TLS settings (a CA, certificate, key or proxy password file).
    #[error(transparent)]
    Transport(#[from] super::transport::TransportError),
    #[error("remote_write {remote:?}: cannot build the HTTP client: {source}")]
    Client {
        remote: String,
        source: reqwest::Error,
    },
}

/// `Retry-After` is either delay-seconds or an HTTP date (RFC 9110, 10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Characters of a receiver's message that are logged.
const MESSAGE_CHARS: usize = 1024;

/// The receiver's explanation on one line: at most [`peer_text::ERROR_BODY_LIMIT`] bytes are
/// read (the rest is never downloaded), credentials are cut out, then it is shortened.
async fn read_message(response: reqwest::Response, secrets: &[&Secret]) -> String {
    let (prefix, error) = peer_text::read_prefix(response, peer_text::ERROR_BODY_LIMIT).await;
    match error {
        Some(e) if prefix.bytes.is_empty() => format!("(body unreadable: {})", error_chain(&e)),
        _ => peer_text::excerpt(&prefix, secrets, MESSAGE_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::redact;

    #[test]
    fn outcome_table() {
        for status in [200, 204, 299] {
            assert_eq!(classify(status), Class::Delivered, "{status}");
        }
        for status in [400, 409, 415] {
            assert_eq!(classify(status), Class::Rejected, "{status}");
        }
        for status in [401, 403, 404, 413, 429, 500, 502, 503, 504] {
            assert_eq!(classify(status), Class::Retry, "{status}");
        }
    }

    #[test]
    fn a_vmauth_unknown_token_400_is_retried_and_the_token_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "tok-123").unwrap();
        let secret = read_secret_file(&path, "t").unwrap();
        let message = redact(
            "cannot find the provided auth token \"Bearer tok-123\" in config",
            &[&secret],
        );
        assert_eq!(
            message,
            "cannot find the provided auth token \"Bearer <redacted>\" in config"
        );
        assert!(is_vmauth_unknown_token(400, &message));
        assert!(!is_vmauth_unknown_token(400, "cannot parse WriteRequest"));
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
