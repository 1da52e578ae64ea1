//! `sessions`: one GET /Sessions per cycle, filtered by the server to the sessions active
//! within `collectors.sessions.active_within`. [`snapshot`] turns the answer into gauges,
//! [`classify`] tells how each stream is played (as Jellyfin's dashboard does), [`tracker`]
//! compares it with earlier answers for watch time and transcode starts. When the request
//! fails nothing is reported: "Jellyfin down" must never look like "nobody is watching".
//!
//! Every [`ENCODING_EVERY`] it also reads GET /System/Configuration/encoding, which decides
//! whether a transcode runs on the GPU; when that fails the last answer stays in use (none yet:
//! `hw_accel="unknown"`).

pub mod classify;
pub mod geoip;
pub mod snapshot;
pub mod tracker;

use std::time::{Duration, Instant};

use super::plays_seen::PlaysSeen;
use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::{EncodingOptions, Session};
use crate::privacy::Privacy;
use crate::sample::{Family, now_ms};
use tracker::Tracker;

/// The encoding configuration changes only when an admin edits it.
pub const ENCODING_EVERY: Duration = Duration::from_secs(300);

pub struct Sessions {
    client: Client,
    privacy: Privacy,
    tracker: Tracker,
    path: String,
    max_gap: Duration,
    geoip: Option<geoip::GeoIp>,
    encoding: Option<EncodingOptions>,
    encoding_read: Option<Instant>,
}

/// How the sessions collector is set up besides its client and privacy rules.
pub struct SessionsSetup {
    pub active_within: Duration,
    pub interval: Duration,
    pub geoip: Option<geoip::GeoIp>,
    /// Shared with the activity collector, which classifies playback starts with it.
    pub seen: PlaysSeen,
    /// False when the transcode log counts transcode starts (one producer per family).
    pub count_transcodes: bool,
    /// False when the Playback Reporting plugin tells watch time.
    pub count_watch_time: bool,
}

impl Sessions {
    pub fn new(client: Client, privacy: Privacy, setup: SessionsSetup) -> Self {
        Sessions {
            client,
            privacy,
            tracker: Tracker::new(setup.seen, setup.count_transcodes, setup.count_watch_time),
            path: format!(
                "/Sessions?activeWithinSeconds={}",
                setup.active_within.as_secs().max(1)
            ),
            max_gap: setup.interval * 2,
            geoip: setup.geoip,
            encoding: None,
            encoding_read: None,
        }
    }

    async fn refresh_encoding(&mut self) {
        if self
            .encoding_read
            .is_some_and(|at| at.elapsed() < ENCODING_EVERY)
        {
            return;
        }
        self.encoding_read = Some(Instant::now());
        match self
            .client
            .get_json::<EncodingOptions>("/System/Configuration/encoding", None)
            .await
        {
            Ok(options) => self.encoding = Some(options),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the encoding configuration; hw_accel stays as last known")
            }
        }
    }
}

#[async_trait::async_trait]
impl Collector for Sessions {
    fn name(&self) -> &'static str {
        "sessions"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let sessions: Vec<Session> = self.client.get_json("/Sessions", Some(&self.path)).await?;
        self.refresh_encoding().await;
        let encoding = self.encoding.as_ref();
        self.tracker.observe(
            &sessions,
            (Instant::now(), now_ms()),
            self.max_gap,
            &self.privacy,
            encoding,
        );
        out.extend(snapshot::families(&sessions, &self.privacy, encoding));
        out.extend(self.tracker.families(&self.privacy));
        if let Some(geoip) = &self.geoip {
            out.push(geoip.family(&sessions));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
