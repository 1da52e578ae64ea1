//! `system`: is Jellyfin up, which version is it, does it want a restart, and how fast does
//! its API answer the agent. One GET /System/Info per cycle.

use super::{CollectError, Collector};
use crate::jellyfin::dto::SystemInfo;
use crate::jellyfin::{ApiError, Client};
use crate::sample::{Family, label_value};

pub struct System {
    client: Client,
}

/// The system collector's error when GET /System/Info failed, which is what `jellyfin_up 0`
/// means: `--once` picks its exit code by this type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JellyfinDown(#[from] pub ApiError);

impl System {
    pub fn new(client: Client) -> Self {
        System { client }
    }

    /// Per-endpoint figures of every request the agent made so far, from all collectors.
    fn api_families(&self) -> [Family; 2] {
        let mut seconds = Family::gauge(
            "jellyfin_api_response_seconds",
            "Wall time of the agent's last request to a Jellyfin API endpoint.",
        );
        let mut requests = Family::counter(
            "jellyfin_api_requests_total",
            "Requests the agent made to Jellyfin, by endpoint and HTTP status (error: no usable answer).",
        );
        for (endpoint, stats) in self.client.stats().snapshot() {
            seconds.push(
                vec![("endpoint", endpoint.into())],
                stats.last_response_seconds,
            );
            for (code, count) in stats.requests {
                requests.push(
                    vec![("endpoint", endpoint.into()), ("code", code)],
                    count as f64,
                );
            }
        }
        [seconds, requests]
    }
}

/// The identity labels the server gave. A field it did not send or sent empty is left out
/// (10.8 fills ProductName from the assembly's FileVersionInfo, null when the build has
/// none): remote write 1.0 forbids empty label values.
pub fn info_labels(info: &SystemInfo) -> Vec<(&'static str, String)> {
    [
        ("version", &info.version),
        ("product_name", &info.product_name),
        ("server_name", &info.server_name),
        ("server_id", &info.id),
    ]
    .into_iter()
    .map(|(name, value)| (name, label_value(value.as_deref().unwrap_or(""))))
    .filter(|(_, value)| !value.is_empty())
    .collect()
}

#[async_trait::async_trait]
impl Collector for System {
    fn name(&self) -> &'static str {
        "system"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let result = self
            .client
            .get_json::<SystemInfo>("/System/Info", None)
            .await;
        let up = Family::gauge(
            "jellyfin_up",
            "1 when Jellyfin answered GET /System/Info with valid JSON this cycle, else 0.",
        );
        out.push(up.with(vec![], if result.is_ok() { 1.0 } else { 0.0 }));
        out.extend(self.api_families());
        let info = result.map_err(JellyfinDown)?;
        out.push(
            Family::gauge(
                "jellyfin_info",
                "Jellyfin server identity; the value is always 1.",
            )
            .with(info_labels(&info), 1.0),
        );
        if let Some(pending) = info.has_pending_restart {
            out.push(
                Family::gauge(
                    "jellyfin_pending_restart",
                    "1 when Jellyfin needs a restart to apply changes (HasPendingRestart).",
                )
                .with(vec![], if pending { 1.0 } else { 0.0 }),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_product_name_gets_no_empty_label() {
        // 10.8.13 fills ProductName from FileVersionInfo of the entry assembly
        // (ApplicationHost.GetSystemInfo), which is null when the build carries none: the
        // field is then omitted (null fields are not serialised) or empty.
        let old: SystemInfo = serde_json::from_str(
            r#"{"ServerName":"nas","Version":"10.8.13","ProductName":"","Id":"4d8b5b3c0e8a4c2f9d1e6a7b8c9d0e1f","HasPendingRestart":false}"#,
        )
        .unwrap();
        let labels = info_labels(&old);
        assert!(
            labels
                .iter()
                .all(|(name, value)| *name != "product_name" && !value.is_empty())
        );
        assert!(labels.iter().any(|(name, _)| *name == "version"));
        let new: SystemInfo = serde_json::from_str(include_str!(
            "../../tests/fixtures/jellyfin/system-info.10.11.11.json"
        ))
        .unwrap();
        assert_eq!(
            info_labels(&new)
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>(),
            ["version", "product_name", "server_name", "server_id"]
        );
        let blank: SystemInfo =
            serde_json::from_str(r#"{"Version":"10.8.13","ServerName":"  "}"#).unwrap();
        assert_eq!(info_labels(&blank), [("version", "10.8.13".to_string())]);
    }
}
