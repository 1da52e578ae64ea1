//! The values each closed label may take (the server's enums, ffprobe's codec names) and
//! how many values each open label keeps.

/// TranscodeReason (10.11.11 and 12.0.0), lower-cased as the sessions collector writes it.
pub const TRANSCODE_REASONS: &[&str] = &[
    "containernotsupported",
    "videocodecnotsupported",
    "audiocodecnotsupported",
    "subtitlecodecnotsupported",
    "audioisexternal",
    "secondaryaudionotsupported",
    "videoprofilenotsupported",
    "videolevelnotsupported",
    "videoresolutionnotsupported",
    "videobitdepthnotsupported",
    "videoframeratenotsupported",
    "refframesnotsupported",
    "anamorphicvideonotsupported",
    "interlacedvideonotsupported",
    "audiochannelsnotsupported",
    "audioprofilenotsupported",
    "audiosampleratenotsupported",
    "audiobitdepthnotsupported",
    "containerbitrateexceedslimit",
    "videobitratenotsupported",
    "audiobitratenotsupported",
    "unknownvideostreaminfo",
    "unknownaudiostreaminfo",
    "directplayerror",
    "videorangetypenotsupported",
    "videocodectagnotsupported",
    "streamcountexceedslimit",
    "videorotationnotsupported",
];

/// HardwareAccelerationType, and `unknown` where the server does not say (10.9).
pub const HW_ACCEL: [&str; 9] = [
    "none",
    "unknown",
    "amf",
    "qsv",
    "nvenc",
    "v4l2m2m",
    "vaapi",
    "videotoolbox",
    "rkmpp",
];

/// Video codecs as ffprobe names them (`codec_name`), lower-cased, and `unknown`.
pub const VIDEO_CODECS: &[&str] = &[
    "av1",
    "dvvideo",
    "flv1",
    "h263",
    "h264",
    "hevc",
    "mjpeg",
    "mpeg1video",
    "mpeg2video",
    "mpeg4",
    "msmpeg4v1",
    "msmpeg4v2",
    "msmpeg4v3",
    "prores",
    "rv30",
    "rv40",
    "theora",
    "vc1",
    "vp8",
    "vp9",
    "vvc",
    "wmv1",
    "wmv2",
    "wmv3",
    "unknown",
];

/// The play methods as Jellyfin's dashboard tells them (jellyfin-web's playmethodhelper.js,
/// see collectors/sessions/classify.rs), in its order: the one list the collectors emit.
pub const PLAY_METHODS: [&str; 4] = ["directplay", "remux", "directstream", "transcode"];

/// Every value a play-method label may take: [`PLAY_METHODS`] and `unknown` (a session that
/// says nothing).
pub const PLAY_METHOD_VALUES: &[&str] = &[
    PLAY_METHODS[0],
    PLAY_METHODS[1],
    PLAY_METHODS[2],
    PLAY_METHODS[3],
    "unknown",
];

/// MediaType, lower-cased.
pub const MEDIA_TYPES: &[&str] = &["unknown", "video", "audio", "photo", "book"];

/// BaseItemKind lower-cased, as the collectors write it, and `unknown`; plus `album`, which
/// the play counter uses for a song's album (an episode counts for its series).
pub const ITEM_TYPES: &[&str] = &[
    "aggregatefolder",
    "audio",
    "audiobook",
    "basepluginfolder",
    "book",
    "boxset",
    "channel",
    "channelfolderitem",
    "collectionfolder",
    "episode",
    "folder",
    "genre",
    "manualplaylistsfolder",
    "movie",
    "livetvchannel",
    "livetvprogram",
    "musicalbum",
    "musicartist",
    "musicgenre",
    "musicvideo",
    "person",
    "photo",
    "photoalbum",
    "playlist",
    "playlistsfolder",
    "program",
    "recording",
    "season",
    "series",
    "studio",
    "trailer",
    "tvchannel",
    "tvprogram",
    "userrootfolder",
    "userview",
    "video",
    "year",
    "album",
    "unknown",
];

/// CollectionType and CollectionTypeOptions (`mixed`), and `unknown`.
pub const COLLECTION_TYPES: &[&str] = &[
    "unknown",
    "movies",
    "tvshows",
    "music",
    "musicvideos",
    "trailers",
    "homevideos",
    "boxsets",
    "books",
    "photos",
    "livetv",
    "playlists",
    "folders",
    "mixed",
];

/// LogLevel, lower-cased (the activity log's Severity).
pub const SEVERITIES: &[&str] = &[
    "trace",
    "debug",
    "information",
    "warning",
    "error",
    "critical",
    "none",
];

/// Open sets: how many values are kept.
pub const TOP_CLIENTS: usize = 20;
pub const TOP_USERS: usize = 100;
pub const TOP_COUNTRIES: usize = 250;
pub const TOP_DEVICES: usize = 16;
pub const TOP_STATUS_CODES: usize = 10;
pub const MAX_LIBRARIES: usize = 64;
pub const MAX_TASKS: usize = 64;
/// Libraries plus Jellyfin's own five folders (transcode, cache, data, log, metadata).
pub const MAX_STORAGE_LOCATIONS: usize = MAX_LIBRARIES + 5;
