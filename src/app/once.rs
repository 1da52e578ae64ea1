//! `--once`: one cycle of every enabled collector, printed, nothing pushed or stored.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::{AppError, jellyfin_client};
use crate::collectors::{self, Deps, JellyfinDown, run_once};
use crate::config::Config;
use crate::exposition;
use crate::privacy::Privacy;
use crate::stats::PusherStats;

/// Returns the exposition text and whether Jellyfin answered (false when the system collector
/// failed with [`JellyfinDown`], which it reports as `jellyfin_up 0`). Collector failures are
/// logged on stderr.
pub async fn once(config: &Config) -> Result<(String, bool), AppError> {
    let deps = Deps {
        jellyfin: jellyfin_client(config)?,
        stats: Arc::new(PusherStats::new([])),
        // The dry run writes nothing: an existing salt is used, a missing one is not made.
        privacy: Privacy::load(config.privacy.user_label, &config.state_dir, false)?,
        persist_state: false,
        plays_seen: collectors::plays_seen_for(config),
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
    let mut jellyfin_down = false;
    while let Some(joined) = runs.join_next().await {
        let (name, batch, error) = joined?;
        if let Some(error) = error {
            jellyfin_down |= error.is::<JellyfinDown>();
            tracing::error!(collector = name, %error, "collector failed");
        }
        batches.push(batch);
    }
    Ok((exposition::render(&batches, &config.labels), !jellyfin_down))
}
