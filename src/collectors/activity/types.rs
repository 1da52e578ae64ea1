//! The activity log's `Type` strings: the label values of jellyfin_activity_events_total.

/// Every Type Jellyfin 10.9.11, 10.10.7, 10.11.11 and 12.0-rc5 write (the same list in all):
/// the consumers in Jellyfin.Server.Implementations/Events/Consumers/** (literal strings and
/// `NotificationType.X.ToString()`) and LibraryController.cs (UserDownloadingContent).
/// PlaybackStopLogger writes no entry for media other than audio and video, so there is no
/// `PlaybackStopped`. Anything else (plugins, entries migrated from old databases) is `other`.
pub const KNOWN_TYPES: [&str; 21] = [
    "AudioPlayback",
    "AudioPlaybackStopped",
    "AuthenticationFailed",
    "AuthenticationSucceeded",
    "InstallationFailed",
    "LyricDownloadFailure",
    "Playback",
    "PluginInstalled",
    "PluginUninstalled",
    "PluginUpdateInstalled",
    "SessionEnded",
    "SessionStarted",
    "SubtitleDownloadFailure",
    "TaskFailed",
    "UserCreated",
    "UserDeleted",
    "UserDownloadingContent",
    "UserLockedOut",
    "UserPasswordChanged",
    "VideoPlayback",
    "VideoPlaybackStopped",
];

/// The `type` label: the server's Type when it is a known one, else `other`.
pub fn type_label(kind: Option<&str>) -> String {
    match kind {
        Some(kind) if KNOWN_TYPES.contains(&kind) => kind.to_string(),
        _ => "other".into(),
    }
}

/// The media type of a playback-start entry (PlaybackStartLogger.GetPlaybackNotificationType:
/// VideoPlayback, AudioPlayback, else Playback), or None for any other entry.
pub fn playback_start(kind: Option<&str>) -> Option<&'static str> {
    match kind? {
        "VideoPlayback" => Some("video"),
        "AudioPlayback" => Some("audio"),
        "Playback" => Some("other"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_keep_their_name_the_rest_is_other() {
        assert_eq!(type_label(Some("TaskFailed")), "TaskFailed");
        assert_eq!(
            type_label(Some("PluginUpdateInstalled")),
            "PluginUpdateInstalled"
        );
        for never_written in [
            "ScheduledTaskFailed",
            "PluginUpdated",
            "PackageInstallationFailed",
            "PlaybackStopped",
        ] {
            assert_eq!(type_label(Some(never_written)), "other");
        }
        assert_eq!(type_label(None), "other");
        assert_eq!(playback_start(Some("Playback")), Some("other"));
        assert_eq!(playback_start(Some("VideoPlaybackStopped")), None);
    }

    #[test]
    fn the_central_label_bound_follows_this_list() {
        let bound = crate::labels::rule("jellyfin_activity_events_total", "type").map(|r| r.bound);
        assert_eq!(
            bound,
            Some(crate::labels::Bound::Fixed(KNOWN_TYPES.len() + 1))
        );
    }
}
