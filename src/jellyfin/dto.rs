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
    /// Jellyfin's own folders: only for measuring free space on this host before 10.11.
    pub program_data_path: Option<String>,
    pub cache_path: Option<String>,
    pub log_path: Option<String>,
    pub internal_metadata_path: Option<String>,
    pub transcoding_temp_path: Option<String>,
}

/// One entry of GET /Sessions (SessionInfo in 10.9, SessionInfoDto in 10.10+: the fields read
/// here are the same in both).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Session {
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub client: Option<String>,
    /// Only for the optional GeoIP country count; never exported.
    pub remote_end_point: Option<String>,
    pub now_playing_item: Option<NowPlaying>,
    pub play_state: Option<PlayState>,
    pub transcoding_info: Option<TranscodingInfo>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NowPlaying {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Movie, Episode, Audio, …
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Video, Audio, …
    pub media_type: Option<String>,
    pub series_name: Option<String>,
    pub album: Option<String>,
    pub media_streams: Option<Vec<MediaStream>>,
    pub media_sources: Option<Vec<MediaSource>>,
    /// 100-ns ticks: with CompletionPercentage, where the transcoder is in the item.
    pub run_time_ticks: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MediaStream {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub height: Option<u32>,
    pub codec: Option<String>,
    pub is_default: Option<bool>,
    pub bit_rate: Option<f64>,
    pub real_frame_rate: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MediaSource {
    pub bitrate: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlayState {
    pub is_paused: Option<bool>,
    /// DirectPlay, DirectStream, Transcode: what the client reported. A non-nullable enum
    /// whose default is Transcode (MediaBrowser.Model/Session/PlayMethod.cs), so a client that
    /// never sends it, and a remux, read as Transcode.
    pub play_method: Option<String>,
    /// 100-ns ticks: where the viewer is.
    pub position_ticks: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TranscodingInfo {
    pub video_codec: Option<String>,
    pub bitrate: Option<f64>,
    pub framerate: Option<f64>,
    pub is_video_direct: Option<bool>,
    pub is_audio_direct: Option<bool>,
    /// How far ffmpeg has got through the item, 0-100.
    pub completion_percentage: Option<f64>,
    /// The server-wide setting, not what this stream uses (TranscodeManager.cs,
    /// ReportTranscodingProgress); absent on 10.9.
    pub hardware_acceleration_type: Option<String>,
    pub transcode_reasons: Option<Vec<String>>,
}

/// One entry of GET /ScheduledTasks (TaskInfo). `Name` is localised: tasks are keyed by `Key`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScheduledTask {
    pub key: Option<String>,
    /// Idle, Cancelling, Running.
    pub state: Option<String>,
    pub current_progress_percentage: Option<f64>,
    pub last_execution_result: Option<TaskResult>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskResult {
    pub start_time_utc: Option<String>,
    pub end_time_utc: Option<String>,
    /// Completed, Failed, Cancelled, Aborted.
    pub status: Option<String>,
}

/// GET /System/ActivityLog/Entries (ActivityLogEntryQueryResult).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityPage {
    pub items: Option<Vec<ActivityEntry>>,
    pub total_record_count: Option<u64>,
}

/// `Name` and the overviews are localised and may hold IP addresses: only `Id`, `Type`,
/// `Date`, `Severity` and, for playback starts, `UserId` and `ItemId` are read.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityEntry {
    pub id: Option<i64>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub date: Option<String>,
    pub severity: Option<String>,
    pub user_id: Option<String>,
    pub item_id: Option<String>,
}

/// GET /System/Configuration/encoding (EncodingOptions): what decides whether a transcode
/// runs on the GPU (MediaBrowser.Controller/MediaEncoding/EncodingHelper.cs).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EncodingOptions {
    /// none, amf, qsv, nvenc, v4l2m2m, vaapi, videotoolbox, rkmpp (10.9: a free string, empty
    /// for none).
    pub hardware_acceleration_type: Option<String>,
    pub enable_hardware_encoding: Option<bool>,
    /// Source codecs the GPU decodes (h264, hevc, vc1, …).
    pub hardware_decoding_codecs: Option<Vec<String>>,
}

/// GET /Items?ids=… answers: the item fields the per-item play counter names items by.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamedItemPage {
    pub items: Option<Vec<NowPlaying>>,
}

/// One entry of GET /Library/VirtualFolders (VirtualFolderInfo).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VirtualFolder {
    pub name: Option<String>,
    pub collection_type: Option<String>,
    /// The library's item id: the ParentId of its items.
    pub item_id: Option<String>,
    /// Folder paths: only for measuring free space on this host (never a label).
    pub locations: Option<Vec<String>>,
}

/// GET /Items (BaseItemDtoQueryResult), with only the fields the inventory asks for.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ItemPage {
    pub items: Option<Vec<Item>>,
    pub total_record_count: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Item {
    pub name: Option<String>,
    pub id: Option<String>,
    /// Episodes: the series they belong to, and their number in the season.
    pub series_id: Option<String>,
    pub index_number: Option<i64>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// 100-ns ticks (int64 in the schema).
    pub run_time_ticks: Option<i64>,
    pub date_created: Option<String>,
    pub provider_ids: Option<std::collections::BTreeMap<String, Option<String>>>,
    pub media_sources: Option<Vec<ItemMediaSource>>,
    pub height: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ItemMediaSource {
    /// The id of the version (item) this source is: linked alternate versions list each other.
    pub id: Option<String>,
    pub size: Option<f64>,
    pub media_streams: Option<Vec<MediaStream>>,
}

/// GET /System/Info/Storage (SystemStorageDto, 10.11+).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemStorage {
    pub program_data_folder: Option<FolderStorage>,
    pub cache_folder: Option<FolderStorage>,
    pub log_folder: Option<FolderStorage>,
    pub internal_metadata_folder: Option<FolderStorage>,
    pub transcoding_temp_folder: Option<FolderStorage>,
    pub libraries: Option<Vec<LibraryStorage>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LibraryStorage {
    pub name: Option<String>,
    pub folders: Option<Vec<FolderStorage>>,
}

/// The path is never read: no file path is ever a label value.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FolderStorage {
    pub free_space: Option<f64>,
    pub used_space: Option<f64>,
    pub device_id: Option<String>,
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

/// GET /Users again, for the `user` label only: id and name (privacy.user_label decides
/// which, if any, is exported).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamedUser {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// POST /user_usage_stats/submit_custom_query of the Playback Reporting plugin
/// (PlaybackReportingActivityController.CustomQuery): dictionary keys as the plugin spells
/// them, every cell a string (ActivityRepository.RunCustomQuery), `message` set on an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CustomQueryAnswer {
    pub colums: Option<Vec<String>>,
    pub results: Option<Vec<Vec<serde_json::Value>>>,
    pub message: Option<String>,
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
