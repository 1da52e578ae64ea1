//! `jellyfin-pusher check`: one real write to every remote and one GET /System/Info to
//! Jellyfin, through the same clients the agent uses (proxy, certificates, credentials), each
//! outcome explained with a hint ([`super::hints`]).
//!
//! The write is a real sample: `jellyfin_pusher_check{remote="<name>"} 1`, with the static
//! labels, encoded like every other sample. It lands in VictoriaMetrics; that is the point
//! (the path, the token and the receiver's parser all accepted it).

use std::sync::Arc;
use std::time::Instant;

use super::hints;
use crate::config::Config;
use crate::jellyfin::dto::SystemInfo;
use crate::remote_write::{Probe, Sender, encode};
use crate::sample::{Batch, Family, now_ms};

/// The name of the sample `check` writes.
pub const CHECK_METRIC: &str = "jellyfin_pusher_check";

/// One line per target (with a hint line under each failure), and whether all succeeded.
pub async fn check_connectivity(config: &Config) -> (String, bool) {
    let mut out = String::new();
    let mut all_ok = true;
    for remote in &config.remote_write {
        let (line, ok) = check_remote(config, remote).await;
        out.push_str(&line);
        all_ok &= ok;
    }
    if config.remote_write.is_empty() {
        out.push_str("remote_write: none configured: the agent would have nowhere to push\n");
        all_ok = false;
    }
    let (line, ok) = check_jellyfin(config).await;
    out.push_str(&line);
    (out, all_ok && ok)
}

async fn check_remote(
    config: &Config,
    remote: &crate::config::RemoteWriteConfig,
) -> (String, bool) {
    let head = format!("remote {} ({})", remote.name, remote.url);
    let sender = match Sender::new(remote, Arc::default()) {
        Ok(sender) => sender,
        Err(e) => return (format!("{head}: FAILED: {e}\n"), false),
    };
    let batch = Batch {
        timestamp_ms: now_ms(),
        families: vec![
            Family::gauge(
                CHECK_METRIC,
                "1 for each write of `jellyfin-pusher check`, at the time it ran.",
            )
            .with(vec![("remote", remote.name.clone())], 1.0),
        ],
    };
    let block = encode(&batch, &config.labels);
    let started = Instant::now();
    let probe = sender.probe(block.data).await;
    let took = started.elapsed().as_millis();
    let proxied = remote.proxy_url.is_some();
    let url = sender.url();
    match probe {
        Probe::Answered { status, .. } if (200..300).contains(&status) => {
            match hints::silent_path(url) {
                Some(hint) => (
                    format!(
                        "{head}: FAILED: HTTP {status}, but nothing was stored\n  hint: {hint}\n"
                    ),
                    false,
                ),
                None => (
                    format!(
                        "{head}: OK: HTTP {status} in {took} ms; wrote {CHECK_METRIC}{{remote=\"{}\"}} 1\n",
                        remote.name
                    ),
                    true,
                ),
            }
        }
        Probe::Answered { status, message } => (
            format!(
                "{head}: FAILED: HTTP {status}: {message}\n  hint: {}\n",
                hints::answered(url, proxied, status, &message)
            ),
            false,
        ),
        Probe::NoAnswer(error) => (
            format!(
                "{head}: FAILED: {error}\n  hint: {}\n",
                hints::no_answer(url, proxied, &error)
            ),
            false,
        ),
        Probe::NotSent(reason) => (format!("{head}: FAILED: {reason}\n"), false),
    }
}

async fn check_jellyfin(config: &Config) -> (String, bool) {
    let head = format!("jellyfin ({})", config.jellyfin.url);
    let client = match super::jellyfin_client(config) {
        Ok(client) => client,
        Err(e) => return (format!("{head}: FAILED: {e}\n"), false),
    };
    match client.get_json::<SystemInfo>("/System/Info", None).await {
        Ok(info) => (
            format!(
                "{head}: OK: {} {} (server {:?})\n",
                info.product_name.as_deref().unwrap_or("Jellyfin"),
                info.version.as_deref().unwrap_or("(no version)"),
                info.server_name.as_deref().unwrap_or(""),
            ),
            true,
        ),
        Err(crate::jellyfin::ApiError::Unreachable { reason, .. }) => (
            format!(
                "{head}: FAILED: GET /System/Info: {reason}\n  hint: {}\n",
                hints::no_answer(&config.jellyfin.url, false, &reason)
            ),
            false,
        ),
        // The other errors already say what to do (token, base URL, size).
        Err(e) => (format!("{head}: FAILED: {e}\n"), false),
    }
}
