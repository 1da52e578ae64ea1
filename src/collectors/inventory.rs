//! `inventory`: what the libraries hold, by walking them with paged GET /Items (default every
//! hour): size on disk, items by type, video codecs and resolutions, items missing metadata,
//! total duration and the newest items. Gentle on the server: one library at a time, one page
//! at a time (`page_size` items, only the fields needed, no images or user data), never two
//! walks at once (a collector runs one cycle at a time). Memory stays flat on 100k-item
//! libraries: a page is folded into counters and dropped.

use std::collections::BTreeMap;

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::{Item, ItemPage, VirtualFolder};
use crate::sample::{Family, label_value};

const TYPES: &str = "Movie,Series,Episode,MusicAlbum,Audio,MusicVideo,Book";
const FIELDS: &str = "MediaSources,ProviderIds,DateCreated";
/// A library larger than this many pages is cut short (logged): a loop guard, not a limit
/// anyone should meet (with the default page size: 5 million items).
const MAX_PAGES: u64 = 10_000;

pub struct Inventory {
    client: Client,
    page_size: u64,
    recent: usize,
}

impl Inventory {
    pub fn new(client: Client, page_size: u64, recent: usize) -> Self {
        Inventory {
            client,
            page_size: page_size.max(1),
            recent,
        }
    }
}

/// What one library holds, folded page by page.
#[derive(Debug, Default, PartialEq)]
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
    pub fn add(&mut self, item: &Item, recent: usize) {
        let kind = item
            .kind
            .as_deref()
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        *self.items.entry(label_value(&kind)).or_default() += 1.0;
        let sources = item.media_sources.as_deref().unwrap_or_default();
        self.size_bytes += sources.iter().filter_map(|s| s.size).sum::<f64>();
        self.duration_ticks = self
            .duration_ticks
            .saturating_add(item.run_time_ticks.unwrap_or(0).max(0));
        let video = sources
            .first()
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
        let needs_metadata = matches!(kind.as_str(), "movie" | "series" | "episode");
        let has_ids = item.provider_ids.as_ref().is_some_and(|ids| {
            ids.values()
                .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
        });
        if needs_metadata && !has_ids {
            self.missing_metadata += 1.0;
        }
        let created = item
            .date_created
            .as_deref()
            .and_then(super::tasks::parse_time);
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
        "Movies, series and episodes without any provider id.",
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

#[async_trait::async_trait]
impl Collector for Inventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let folders: Vec<VirtualFolder> = self
            .client
            .get_json("/Library/VirtualFolders", None)
            .await?;
        let mut tallies = Vec::new();
        for folder in folders {
            let (Some(name), Some(id)) = (folder.name, folder.item_id) else {
                continue;
            };
            let mut tally = Tally::default();
            let mut start = 0u64;
            for page in 0.. {
                if page == MAX_PAGES {
                    tracing::warn!(library = %name, items = start, "inventory stopped at its page limit");
                    break;
                }
                let path = format!(
                    "/Items?ParentId={id}&Recursive=true&IncludeItemTypes={TYPES}&Fields={FIELDS}\
                     &EnableImages=false&EnableUserData=false&StartIndex={start}&Limit={}",
                    self.page_size
                );
                let answer: ItemPage = self.client.get_json("/Items", Some(&path)).await?;
                let items = answer.items.unwrap_or_default();
                for item in &items {
                    tally.add(item, self.recent);
                }
                start += items.len() as u64;
                if items.is_empty() || start >= answer.total_record_count.unwrap_or(0) {
                    break;
                }
            }
            tallies.push((label_value(&name), tally));
        }
        out.extend(families(&tallies));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "../../tests/fixtures/jellyfin/items.library.10.11.11.json"
        ))
        .unwrap();
        let items = page.items.unwrap();
        let mut tally = Tally::default();
        for item in &items {
            tally.add(item, 3);
        }
        assert_eq!(
            tally.items,
            BTreeMap::from([("movie".to_string(), 12.0), ("series".to_string(), 8.0)])
        );
        assert_eq!(tally.duration_ticks, 1_026_223_199_998);
        assert_eq!(
            tally.missing_metadata, 0.0,
            "every item of the capture has provider ids"
        );
        // The capture asked for no DateCreated and no MediaSources: nothing invented.
        assert!(tally.newest.is_empty() && tally.codecs.is_empty() && tally.size_bytes == 0.0);
    }
}
