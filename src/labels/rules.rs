//! The bound of every label of every family in the catalogue.

use super::sets::*;
use super::{Bound, Rule};

/// How many collectors there are (collectors::COLLECTORS).
const COLLECTORS: usize = 12;

const fn any(label: &'static str, bound: Bound) -> Rule {
    Rule {
        family: None,
        label,
        bound,
        follows: None,
    }
}

const fn only(family: &'static str, label: &'static str, bound: Bound) -> Rule {
    Rule {
        family: Some(family),
        label,
        bound,
        follows: None,
    }
}

impl Rule {
    /// The label's value is determined by `of`'s (an item's type by the item).
    const fn following(self, of: &'static str) -> Rule {
        Rule {
            follows: Some(of),
            ..self
        }
    }
}

/// Every label of every family in the catalogue. A family-specific rule wins over a general
/// one for the same label.
pub const RULES: &[Rule] = &[
    // The agent's own words.
    any("endpoint", Bound::Fixed(9)),
    // The collectors of collectors::COLLECTORS (a test there keeps the count true).
    any("collector", Bound::Fixed(COLLECTORS)),
    // Which figure the process collector read: `cgroup` or `process_tree`.
    any("source", Bound::Fixed(2)),
    // The supervised tasks: one per collector, the pipeline, one sender per remote (default 1).
    only(
        "jellyfin_pusher_task_restarts_total",
        "task",
        Bound::Fixed(11 + 1 + 1),
    ),
    any("stat", Bound::Fixed(2)),
    any("resolution", Bound::Fixed(8)),
    any("role", Bound::Fixed(2)),
    // Storage: a library's location, or one of Jellyfin's five folders, says its kind.
    any("kind", Bound::Fixed(6)).following("location"),
    only("jellyfin_info", "version", Bound::Fixed(1)),
    only("jellyfin_info", "product_name", Bound::Fixed(1)),
    only("jellyfin_info", "server_name", Bound::Fixed(1)),
    only("jellyfin_info", "server_id", Bound::Fixed(1)),
    only("jellyfin_pusher_build_info", "version", Bound::Fixed(1)),
    only("jellyfin_users", "state", Bound::Fixed(2)),
    only("jellyfin_streams", "state", Bound::Fixed(2)),
    only("jellyfin_library_items", "type", Bound::Fixed(8)),
    only(
        "jellyfin_scheduled_task_last_status",
        "status",
        Bound::Fixed(4),
    ),
    // collectors/activity/types.rs keeps the 21 Types the server writes, plus `other`.
    only("jellyfin_activity_events_total", "type", Bound::Fixed(22)),
    only(
        "jellyfin_pusher_samples_dropped_total",
        "reason",
        Bound::Fixed(4),
    ),
    // The server's closed sets.
    any("reason", Bound::AllowList(TRANSCODE_REASONS)),
    any("hw_accel", Bound::AllowList(&HW_ACCEL)),
    any("video_codec", Bound::AllowList(VIDEO_CODECS)),
    any("from_codec", Bound::AllowList(VIDEO_CODECS)),
    any("to_codec", Bound::AllowList(VIDEO_CODECS)),
    any("codec", Bound::AllowList(VIDEO_CODECS)),
    any("play_method", Bound::AllowList(PLAY_METHOD_VALUES)),
    only(
        "jellyfin_playback_total",
        "type",
        Bound::AllowList(PLAY_METHOD_VALUES),
    ),
    any("media_type", Bound::AllowList(MEDIA_TYPES)),
    any("severity", Bound::AllowList(SEVERITIES)),
    only(
        "jellyfin_library_inventory_items",
        "type",
        Bound::AllowList(ITEM_TYPES),
    ),
    only(
        "jellyfin_library_recently_added",
        "type",
        Bound::AllowList(ITEM_TYPES),
    )
    .following("item"),
    only(
        "jellyfin_library_info",
        "collection_type",
        Bound::AllowList(COLLECTION_TYPES),
    )
    .following("library"),
    // Open sets.
    any("client", Bound::TopN(TOP_CLIENTS)),
    any("user", Bound::TopN(TOP_USERS)),
    any("country", Bound::TopN(TOP_COUNTRIES)),
    any("device", Bound::TopN(TOP_DEVICES)),
    any("code", Bound::TopN(TOP_STATUS_CODES)),
    any("library", Bound::First(MAX_LIBRARIES)),
    any("task", Bound::First(MAX_TASKS)),
    any("location", Bound::First(MAX_STORAGE_LOCATIONS)),
    // Bounded by settings, where the family is built.
    any(
        "remote",
        Bound::Config {
            key: "[[remote_write]] targets",
            default: 1,
        },
    ),
    only(
        "jellyfin_item_plays_total",
        "item",
        Bound::Config {
            key: "privacy.top_items",
            default: 50,
        },
    ),
    only(
        "jellyfin_item_plays_total",
        "item_type",
        Bound::AllowList(ITEM_TYPES),
    )
    .following("item"),
    only(
        "jellyfin_library_recently_added",
        "item",
        Bound::Config {
            key: "collectors.inventory.recent (per library)",
            default: 10,
        },
    ),
];
