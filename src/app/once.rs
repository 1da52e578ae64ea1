//! `--once`: one cycle of every enabled collector, printed, nothing pushed or stored.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::{AppError, jellyfin_client};
use crate::collectors::{self, Deps, run_once};
use crate::config::Config;
use crate::exposition;
use crate::privacy::Privacy;
use crate::stats::PusherStats;

/// Returns the exposition text and whether Jellyfin answered (false when `jellyfin_up` is 0).
/// Collector failures are logged on stderr.
pub async fn once(config: &Config) -> Result<(String, bool), AppError> {
    let deps = Deps {
        jellyfin: jellyfin_client(config)?,
        stats: Arc::new(PusherStats::new([])),
        // The dry run writes nothing: an existing salt is used, a missing one is not made.
        privacy: Privacy::load(config.privacy.user_label, &config.state_dir, false)?,
        persist_state: false,
    };
    let mut runs = JoinSet::new();
    for mut scheduled in collectors::registry(config, &deps) {
        runs.spawn(async move {
            let name = scheduled.collector.name();
            let (batch, error) = run_once(scheduled.collector.as_mut()).await;
            (name, batch, error)
        });
    }
    let mut batches = Vec::new();
    while let Some(joined) = runs.join_next().await {
        let (name, batch, error) = joined?;
        if let Some(error) = error {
            tracing::error!(collector = name, %error, "collector failed");
        }
        batches.push(batch);
    }
    let jellyfin_down = batches
        .iter()
        .flat_map(|b| &b.families)
        .filter(|f| f.name == "jellyfin_up")
        .any(|f| f.samples.iter().any(|s| s.value == 0.0));
    Ok((exposition::render(&batches, &config.labels), !jellyfin_down))
}
