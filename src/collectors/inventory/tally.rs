//! What one library holds, folded item by item into counters (memory stays flat however
//! big the library), and the families reported from it.

use std::collections::BTreeMap;

use crate::jellyfin::dto::{Item, ItemMediaSource};
use crate::sample::{Family, label_value};

/// What one library holds, folded page by page.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    pub size_bytes: f64,
    /// Summed as integer ticks and converted once, so 100k items add up exactly.
    pub duration_ticks: i64,
    pub items: BTreeMap<String, f64>,
    pub codecs: BTreeMap<String, f64>,
    pub resolutions: BTreeMap<&'static str, f64>,
    pub missing_metadata: f64,
    /// (DateCreated as unix seconds, name, type), newest first, at most `recent`.
    pub newest: Vec<(f64, String, String)>,
}

/// The resolution class of a video height.
pub fn resolution(height: Option<u32>) -> &'static str {
    match height {
        None | Some(0) => "unknown",
        Some(h) if h >= 2000 => "2160p",
        Some(h) if h >= 1300 => "1440p",
        Some(h) if h >= 1000 => "1080p",
        Some(h) if h >= 700 => "720p",
        Some(h) if h >= 560 => "576p",
        Some(h) if h >= 470 => "480p",
        Some(_) => "sd",
    }
}

impl Tally {
    /// Counts `item`, with `sources` its media sources not counted before (a linked
    /// alternate version's are counted with the first of its versions), and
    /// `missing_metadata` as the walk decided it.
    pub fn add(
        &mut self,
        item: &Item,
        sources: &[&ItemMediaSource],
        missing_metadata: bool,
        recent: usize,
    ) {
        let kind = item
            .kind
            .as_deref()
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        *self.items.entry(label_value(&kind)).or_default() += 1.0;
        self.size_bytes += sources.iter().filter_map(|s| s.size).sum::<f64>();
        self.duration_ticks = self
            .duration_ticks
            .saturating_add(item.run_time_ticks.unwrap_or(0).max(0));
        let video = item
            .media_sources
            .as_deref()
            .and_then(|s| s.first())
            .and_then(|s| s.media_streams.as_deref())
            .and_then(|streams| streams.iter().find(|m| m.kind.as_deref() == Some("Video")));
        if let Some(video) = video {
            let codec = video
                .codec
                .as_deref()
                .unwrap_or("unknown")
                .to_ascii_lowercase();
            *self.codecs.entry(label_value(&codec)).or_default() += 1.0;
            *self
                .resolutions
                .entry(resolution(video.height.or(item.height)))
                .or_default() += 1.0;
        }
        if missing_metadata {
            self.missing_metadata += 1.0;
        }
        let created = item
            .date_created
            .as_deref()
            .and_then(crate::jellyfin::date::parse_time);
        if let (Some(created), true) = (created, recent > 0) {
            let at = created
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            if self.newest.len() < recent || self.newest.last().is_some_and(|(t, _, _)| at > *t) {
                let name = label_value(item.name.as_deref().unwrap_or(""));
                self.newest.push((at, name, label_value(&kind)));
                self.newest.sort_by(|a, b| b.0.total_cmp(&a.0));
                self.newest.truncate(recent);
            }
        }
    }
}

pub fn families(tallies: &[(String, Tally)]) -> Vec<Family> {
    let mut size = Family::gauge(
        "jellyfin_library_size_bytes",
        "Size of the library's media files (MediaSources[].Size).",
    );
    let mut items = Family::gauge(
        "jellyfin_library_inventory_items",
        "Items per library and type, from the inventory walk.",
    );
    let mut codecs = Family::gauge(
        "jellyfin_library_video_codec_items",
        "Items per library by their video codec.",
    );
    let mut resolutions = Family::gauge(
        "jellyfin_library_resolution_items",
        "Items per library by video height class.",
    );
    let mut missing = Family::gauge(
        "jellyfin_library_missing_metadata_items",
        "Movies and series without any provider id, and episodes without one that their series does not identify either (season/episode number under a series with ids).",
    );
    let mut duration = Family::gauge(
        "jellyfin_library_duration_seconds",
        "Total running time of the library.",
    );
    let mut recent = Family::gauge(
        "jellyfin_library_recently_added",
        "The newest items per library; the value is when they were added (unix seconds).",
    );
    for (library, t) in tallies {
        let lib = || ("library", library.clone());
        size.push(vec![lib()], t.size_bytes);
        duration.push(vec![lib()], t.duration_ticks as f64 / 1e7);
        missing.push(vec![lib()], t.missing_metadata);
        for (kind, n) in &t.items {
            items.push(vec![lib(), ("type", kind.clone())], *n);
        }
        for (codec, n) in &t.codecs {
            codecs.push(vec![lib(), ("codec", codec.clone())], *n);
        }
        for (class, n) in &t.resolutions {
            resolutions.push(vec![lib(), ("resolution", (*class).into())], *n);
        }
        for (at, name, kind) in &t.newest {
            recent.push(
                vec![lib(), ("item", name.clone()), ("type", kind.clone())],
                *at,
            );
        }
    }
    vec![size, items, codecs, resolutions, missing, duration, recent]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jellyfin::dto::ItemPage;

    #[test]
    fn resolution_classes() {
        let got: Vec<&str> = [
            None,
            Some(2160),
            Some(1440),
            Some(1080),
            Some(804),
            Some(720),
            Some(576),
            Some(480),
            Some(360),
        ]
        .into_iter()
        .map(resolution)
        .collect();
        assert_eq!(
            got,
            [
                "unknown", "2160p", "1440p", "1080p", "720p", "720p", "576p", "480p", "sd"
            ]
        );
    }

    #[test]
    fn the_real_10_11_library_capture_is_tallied() {
        let page: ItemPage = serde_json::from_str(include_str!(
            "../../../tests/fixtures/jellyfin/items.library.10.11.11.json"
        ))
        .unwrap();
        let items = page.items.unwrap();
        let mut tally = Tally::default();
        for item in &items {
            let sources: Vec<&ItemMediaSource> = item.media_sources.iter().flatten().collect();
            tally.add(item, &sources, false, 3);
        }
        assert_eq!(
            tally.items,
            BTreeMap::from([("movie".to_string(), 12.0), ("series".to_string(), 8.0)])
        );
        assert_eq!(tally.duration_ticks, 1_026_223_199_998);
        // The capture asked for no DateCreated and no MediaSources: nothing invented.
        assert!(tally.newest.is_empty() && tally.codecs.is_empty() && tally.size_bytes == 0.0);
    }
}
