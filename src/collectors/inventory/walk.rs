//! One library's walk, page by page: what is counted once, and what "missing metadata" means.
//!
//! - Linked alternate versions (Jellyfin's "merge versions") are separate items whose
//!   MediaSources list each other (`Video.GetAllItemsForMediaSources`), so the first version
//!   met counts the item and every version's size once; the other versions are skipped. The
//!   ids seen also drop an item that a page shift served twice.
//! - Movies and series without any provider id miss metadata. An episode needs no id of its
//!   own: the TMDb episode provider (`MediaBrowser.Providers/Plugins/Tmdb/TV/TmdbEpisodeProvider.cs`)
//!   finds it through its series' TMDb id and its season and episode numbers and stores no
//!   TMDb id on it. So an episode without ids misses metadata only when it has no number or
//!   its series has no ids either; that is known once the whole library was read.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::tally::Tally;
use crate::jellyfin::dto::{Item, ItemMediaSource};

/// An id as 128 bits: Jellyfin's ids are GUIDs (32 hex digits, with or without dashes);
/// anything else is hashed. Keeps 100k ids in a few MB.
fn key(id: &str) -> u128 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    u128::from_str_radix(&hex, 16).unwrap_or_else(|_| {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        u128::from(h.finish())
    })
}

fn has_provider_ids(item: &Item) -> bool {
    item.provider_ids.as_ref().is_some_and(|ids| {
        ids.values()
            .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
    })
}

/// A library being walked: where the next page starts, at what size, and what was counted.
#[derive(Debug)]
pub struct LibraryWalk {
    pub id: String,
    pub name: String,
    pub start: u64,
    pub page_size: u64,
    pub tally: Tally,
    /// Item and media-source ids counted so far.
    seen: HashSet<u128>,
    /// Series with provider ids.
    identified_series: HashSet<u128>,
    /// Episodes without ids but with a number, by series: missing unless the series has ids.
    pending_episodes: HashMap<u128, u64>,
}

impl LibraryWalk {
    pub fn new(id: String, name: String, page_size: u64) -> Self {
        LibraryWalk {
            id,
            name,
            start: 0,
            page_size,
            tally: Tally::default(),
            seen: HashSet::new(),
            identified_series: HashSet::new(),
            pending_episodes: HashMap::new(),
        }
    }

    /// Folds one item of the page in.
    pub fn add(&mut self, item: &Item, recent: usize) {
        if let Some(id) = item.id.as_deref()
            && !self.seen.insert(key(id))
        {
            return; // another version of an item counted, or served twice
        }
        let mut sources: Vec<&ItemMediaSource> = Vec::new();
        for source in item.media_sources.iter().flatten() {
            let new = match source.id.as_deref() {
                Some(id) if item.id.as_deref().map(key) == Some(key(id)) => true,
                Some(id) => self.seen.insert(key(id)),
                None => true,
            };
            if new {
                sources.push(source);
            }
        }
        let kind = item.kind.as_deref().unwrap_or("");
        let has_ids = has_provider_ids(item);
        let missing = match kind {
            "Movie" | "Series" => !has_ids,
            "Episode" if !has_ids => match (item.series_id.as_deref(), item.index_number) {
                (Some(series), Some(_)) => {
                    *self.pending_episodes.entry(key(series)).or_default() += 1;
                    false // decided at the end
                }
                _ => true,
            },
            _ => false,
        };
        if kind == "Series"
            && has_ids
            && let Some(id) = item.id.as_deref()
        {
            self.identified_series.insert(key(id));
        }
        self.tally.add(item, &sources, missing, recent);
    }

    /// The library's tally, once every page was read.
    pub fn finish(mut self) -> (String, Tally) {
        let unidentified: u64 = self
            .pending_episodes
            .iter()
            .filter(|(series, _)| !self.identified_series.contains(*series))
            .map(|(_, n)| *n)
            .sum();
        self.tally.missing_metadata += unidentified as f64;
        (self.name, self.tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: serde_json::Value) -> Item {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn versions_count_once_and_episodes_go_by_their_series() {
        let a = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";
        let b = "0b0b0b0b-0b0b-0b0b-0b0b-0b0b0b0b0b0b";
        let series = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
        let mut walk = LibraryWalk::new("lib".into(), "Films".into(), 100);
        let version = |id: &str, other: &str| {
            item(
                serde_json::json!({"Id": id, "Type": "Movie", "ProviderIds": {"Tmdb": "10378"},
                "MediaSources": [{"Id": id.replace('-', ""), "Size": 4e9}, {"Id": other.replace('-', ""), "Size": 2e9}]}),
            )
        };
        walk.add(&version(b, a), 1);
        walk.add(&version(a, b), 1);
        // Episodes without ids: two of an identified series, one of a series without ids
        // (that series is missing too), one without a number.
        walk.add(&item(serde_json::json!({"Id": "e1", "Type": "Episode", "SeriesId": series, "IndexNumber": 1})), 1);
        walk.add(&item(serde_json::json!({"Id": "e2", "Type": "Episode", "SeriesId": series, "IndexNumber": 2})), 1);
        walk.add(&item(serde_json::json!({"Id": "e3", "Type": "Episode", "SeriesId": "77", "IndexNumber": 1})), 1);
        walk.add(
            &item(serde_json::json!({"Id": "e4", "Type": "Episode", "SeriesId": series})),
            1,
        );
        walk.add(&item(serde_json::json!({"Id": series, "Type": "Series", "ProviderIds": {"Tvdb": "81189"}})), 1);
        walk.add(
            &item(serde_json::json!({"Id": "77", "Type": "Series", "ProviderIds": {}})),
            1,
        );
        // Served twice by a page shift.
        walk.add(&item(serde_json::json!({"Id": "e1", "Type": "Episode", "SeriesId": series, "IndexNumber": 1})), 1);
        let (_, tally) = walk.finish();
        assert_eq!(tally.items["movie"], 1.0);
        assert_eq!(tally.items["episode"], 4.0);
        assert_eq!(tally.items["series"], 2.0);
        assert_eq!(tally.size_bytes, 6e9, "both versions' files, once");
        assert_eq!(tally.missing_metadata, 3.0, "e3, e4 and series 77");
    }
}
