//! `sessions`: one GET /Sessions per cycle, filtered by the server to the sessions active
//! within `collectors.sessions.active_within`. [`snapshot`] turns the answer into gauges,
//! [`tracker`] compares it with the previous answer for the counters. When the request fails
//! nothing is reported: "Jellyfin down" must never look like "nobody is watching".

pub mod geoip;
pub mod snapshot;
pub mod tracker;

use std::time::{Duration, Instant};

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::Session;
use crate::privacy::Privacy;
use crate::sample::Family;
use tracker::Tracker;

pub struct Sessions {
    client: Client,
    privacy: Privacy,
    tracker: Tracker,
    path: String,
    max_gap: Duration,
    geoip: Option<geoip::GeoIp>,
}

impl Sessions {
    pub fn new(
        client: Client,
        privacy: Privacy,
        active_within: Duration,
        interval: Duration,
        top_items: usize,
        geoip: Option<geoip::GeoIp>,
    ) -> Self {
        Sessions {
            client,
            privacy,
            tracker: Tracker::new(top_items),
            path: format!(
                "/Sessions?activeWithinSeconds={}",
                active_within.as_secs().max(1)
            ),
            max_gap: interval * 2,
            geoip,
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
        self.tracker
            .observe(&sessions, Instant::now(), self.max_gap, &self.privacy);
        out.extend(snapshot::families(&sessions, &self.privacy));
        out.extend(self.tracker.families(&self.privacy));
        if let Some(geoip) = &self.geoip {
            out.push(geoip.family(&sessions));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
