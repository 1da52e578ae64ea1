//! `library`: item counts by type, as the server computes them. One GET /Items/Counts.

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::ItemCounts;
use crate::sample::Family;

pub struct Library {
    client: Client,
}

impl Library {
    pub fn new(client: Client) -> Self {
        Library { client }
    }
}

/// One sample per type the server reported; a count the server omitted is left out rather
/// than reported as 0.
pub fn items(counts: &ItemCounts) -> Family {
    let mut family = Family::gauge(
        "jellyfin_library_items",
        "Library items by type, from GET /Items/Counts.",
    );
    let by_type = [
        ("movie", counts.movie_count),
        ("series", counts.series_count),
        ("episode", counts.episode_count),
        ("song", counts.song_count),
        ("album", counts.album_count),
        ("musicvideo", counts.music_video_count),
        ("boxset", counts.box_set_count),
        ("book", counts.book_count),
    ];
    for (kind, count) in by_type {
        if let Some(count) = count {
            family.push(vec![("type", kind.into())], count as f64);
        }
    }
    family
}

#[async_trait::async_trait]
impl Collector for Library {
    fn name(&self) -> &'static str {
        "library"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let counts: ItemCounts = self.client.get_json("/Items/Counts", None).await?;
        out.push(items(&counts));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_counts_of_the_real_capture() {
        let text = include_str!("../../tests/fixtures/jellyfin/items-counts.10.9.6.json");
        let family = items(&serde_json::from_str(text).unwrap());
        let got: Vec<(String, f64)> = family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect();
        let expected = [
            ("movie", 325.0),
            ("series", 41.0),
            ("episode", 3517.0),
            ("song", 0.0),
            ("album", 0.0),
            ("musicvideo", 0.0),
            ("boxset", 56.0),
            ("book", 0.0),
        ];
        assert_eq!(got, expected.map(|(k, v)| (k.to_string(), v)));
    }

    #[test]
    fn omitted_counts_are_left_out() {
        let family = items(&serde_json::from_str(r#"{"MovieCount": 3}"#).unwrap());
        assert_eq!(family.samples.len(), 1);
    }
}
