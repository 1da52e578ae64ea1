//! The parts of Jellyfin's DTOs the collectors read. Every field is optional because the server
//! omits null fields, unknown fields are ignored, and names follow the server's PascalCase.

use serde::Deserialize;

/// GET /System/Info (SystemInfo in the OpenAPI document).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemInfo {
    pub version: Option<String>,
    pub product_name: Option<String>,
    pub server_name: Option<String>,
    pub id: Option<String>,
    pub has_pending_restart: Option<bool>,
}

/// One entry of GET /Users (UserDto); only the policy flags are read, never names or ids.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct User {
    pub policy: Option<UserPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserPolicy {
    pub is_administrator: Option<bool>,
    pub is_disabled: Option<bool>,
}

/// GET /Items/Counts (ItemCounts): the counts the server computes itself.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ItemCounts {
    pub movie_count: Option<u64>,
    pub series_count: Option<u64>,
    pub episode_count: Option<u64>,
    pub song_count: Option<u64>,
    pub album_count: Option<u64>,
    pub music_video_count: Option<u64>,
    pub box_set_count: Option<u64>,
    pub book_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jellyfin");

    #[test]
    fn decodes_the_real_10_11_capture() {
        let text =
            std::fs::read_to_string(format!("{FIXTURES}/system-info.10.11.11.json")).unwrap();
        let info: SystemInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(info.version.as_deref(), Some("10.11.11"));
        assert_eq!(info.server_name.as_deref(), Some("homelab"));
        assert_eq!(info.has_pending_restart, Some(false));
    }

    #[test]
    fn missing_fields_are_none() {
        let info: SystemInfo = serde_json::from_str("{}").unwrap();
        assert!(info.version.is_none() && info.has_pending_restart.is_none());
    }
}
