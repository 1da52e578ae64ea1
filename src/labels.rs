//! Every label value comes from a bounded set, so that one host's series count has a ceiling
//! whatever Jellyfin (or the host) reports: a hostile or broken server cannot flood the
//! receiver with new series.
//!
//! [`RULES`] gives each label its [`Bound`]; [`bound`] applies them to a collector's families
//! in the runner (`collectors::run_once`), so collectors stay free to build families as the
//! server answers. The allow-lists follow the server's own enums (Jellyfin 10.11.11 and
//! 12.0.0 OpenAPI: `TranscodeReason`, `HardwareAccelerationType`, `MediaType`, `PlayMethod`,
//! `BaseItemKind`, `CollectionType`, `LogLevel`) and, for codecs, the names ffprobe reports
//! (Jellyfin stores ffprobe's `codec_name`; `MediaBrowser.MediaEncoding/Encoder/
//! EncoderValidator.cs` lists the decoders it relies on). The README lists the worst-case series
//! count these bounds allow; a test derives it from this table.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{Family, Labels};

/// The value that stands for everything an allow-list or a top-N leaves out.
pub const OTHER: &str = "other";

/// How a label's values are kept bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A closed set: any other value becomes `other`.
    AllowList(&'static [&'static str]),
    /// An open set of additive values (counts, bytes): the `n` values with the largest sums
    /// are kept and the rest summed into `other`.
    TopN(usize),
    /// An open set whose values cannot be summed (ratios, timestamps): the first `n` values in
    /// name order are kept and the samples of the rest dropped.
    First(usize),
    /// Written by the agent itself from at most `n` values (endpoint paths, collector names).
    Fixed(usize),
    /// Bounded where the family is built by a config setting; `default` is its default.
    Config { key: &'static str, default: usize },
}

impl Bound {
    /// How many values the label can take in one cycle.
    pub fn cardinality(self) -> usize {
        match self {
            Bound::AllowList(list) => list.len() + 1,
            Bound::TopN(n) => n + 1,
            Bound::First(n) | Bound::Fixed(n) => n,
            Bound::Config { default, .. } => default,
        }
    }
}

/// One label's bound, for one family or (family `None`) for every family without its own.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub family: Option<&'static str>,
    pub label: &'static str,
    pub bound: Bound,
    /// The label whose value determines this one (an item's type): it adds no series.
    pub follows: Option<&'static str>,
}

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

/// HardwareAccelerationType.
pub const HW_ACCEL: &[&str] = &[
    "none",
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

/// PlayMethod, lower-cased, and `unknown`.
pub const PLAY_METHODS: &[&str] = &["directplay", "directstream", "transcode", "unknown"];

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

/// Every label of every family in the catalogue. A family-specific rule wins over a general
/// one for the same label.
pub const RULES: &[Rule] = &[
    // The agent's own words.
    any("endpoint", Bound::Fixed(9)),
    any("collector", Bound::Fixed(11)),
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
    // activity.rs keeps its own allow-list of 22 activity Types plus `other`.
    only("jellyfin_activity_events_total", "type", Bound::Fixed(23)),
    only(
        "jellyfin_pusher_samples_dropped_total",
        "reason",
        Bound::Fixed(4),
    ),
    // The server's closed sets.
    any("reason", Bound::AllowList(TRANSCODE_REASONS)),
    any("hw_accel", Bound::AllowList(HW_ACCEL)),
    any("video_codec", Bound::AllowList(VIDEO_CODECS)),
    any("from_codec", Bound::AllowList(VIDEO_CODECS)),
    any("to_codec", Bound::AllowList(VIDEO_CODECS)),
    any("codec", Bound::AllowList(VIDEO_CODECS)),
    any("play_method", Bound::AllowList(PLAY_METHODS)),
    only(
        "jellyfin_playback_total",
        "type",
        Bound::AllowList(PLAY_METHODS),
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

/// The rule for `label` of `family`.
pub fn rule(family: &str, label: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.family == Some(family) && r.label == label)
        .or_else(|| {
            RULES
                .iter()
                .find(|r| r.family.is_none() && r.label == label)
        })
}

/// Applies [`RULES`] to every family: values outside an allow-list or a top-N become `other`
/// (samples that then share their labels are summed), values past a `First` cap are dropped.
/// A label without a rule is left alone (the catalogue test makes sure there is none).
pub fn bound(families: &mut [Family]) {
    for family in families.iter_mut() {
        let names: BTreeSet<&'static str> = family
            .samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(k, _)| *k))
            .collect();
        let mut changed = false;
        for name in names {
            let Some(rule) = rule(family.name, name) else {
                continue;
            };
            changed |= apply(family, name, rule.bound);
        }
        if changed {
            merge(family);
        }
    }
}

/// Returns whether any value was replaced (so that samples may need merging).
fn apply(family: &mut Family, name: &str, bound: Bound) -> bool {
    let value_of = |labels: &Labels| {
        labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let keep: Box<dyn Fn(&str) -> bool> = match bound {
        Bound::AllowList(list) => Box::new(move |v: &str| v == OTHER || list.contains(&v)),
        Bound::TopN(n) => {
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for s in &family.samples {
                if let Some(v) = value_of(&s.labels).filter(|v| v != OTHER) {
                    *sums.entry(v).or_default() += s.value;
                }
            }
            if sums.len() <= n {
                return false;
            }
            let mut ranked: Vec<(String, f64)> = sums.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let kept: BTreeSet<String> = ranked.into_iter().take(n).map(|(v, _)| v).collect();
            Box::new(move |v: &str| v == OTHER || kept.contains(v))
        }
        Bound::First(n) => {
            let values: BTreeSet<String> = family
                .samples
                .iter()
                .filter_map(|s| value_of(&s.labels))
                .collect();
            if values.len() <= n {
                return false;
            }
            let kept: BTreeSet<String> = values.into_iter().take(n).collect();
            family
                .samples
                .retain(|s| value_of(&s.labels).is_none_or(|v| kept.contains(&v)));
            return false;
        }
        Bound::Fixed(_) | Bound::Config { .. } => return false,
    };
    let mut changed = false;
    for sample in &mut family.samples {
        for (k, v) in &mut sample.labels {
            if *k == name && !keep(v.as_str()) {
                *v = OTHER.to_string();
                changed = true;
            }
        }
    }
    changed
}

/// Sums samples that carry the same labels, keeping the first one's place.
fn merge(family: &mut Family) {
    let mut seen: BTreeMap<Labels, usize> = BTreeMap::new();
    let mut merged: Vec<crate::sample::Sample> = Vec::with_capacity(family.samples.len());
    for sample in family.samples.drain(..) {
        match seen.get(&sample.labels) {
            Some(&i) => merged[i].value += sample.value,
            None => {
                seen.insert(sample.labels.clone(), merged.len());
                merged.push(sample);
            }
        }
    }
    family.samples = merged;
}

/// The most series one family can have in one cycle under [`RULES`] (labels that follow
/// another add none); Err names a label without a rule.
pub fn worst_case_series(family: &str, labels: &[&str]) -> Result<usize, String> {
    let mut product = 1usize;
    for label in labels {
        let rule = rule(family, label)
            .ok_or_else(|| format!("{family}: label {label} has no bound in labels::RULES"))?;
        if rule.follows.is_none() {
            product = product.saturating_mul(rule.bound.cardinality());
        }
    }
    Ok(product)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Family;

    fn family(name: &'static str, samples: &[(&[(&'static str, &str)], f64)]) -> Family {
        let mut f = Family::gauge(name, "test");
        for (labels, value) in samples {
            f.push(
                labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                *value,
            );
        }
        f
    }

    fn pairs(f: &Family) -> Vec<(Vec<String>, f64)> {
        f.samples
            .iter()
            .map(|s| {
                (
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    s.value,
                )
            })
            .collect()
    }

    #[test]
    fn closed_sets_map_strangers_to_other_and_sum_them() {
        let mut families = [family(
            "jellyfin_transcode_conversions",
            &[
                (&[("from_codec", "hevc"), ("to_codec", "h264")], 1.0),
                (&[("from_codec", "evil-1"), ("to_codec", "h264")], 1.0),
                (&[("from_codec", "evil-2"), ("to_codec", "h264")], 2.0),
                (&[("from_codec", "h264"), ("to_codec", "<script>")], 1.0),
            ],
        )];
        bound(&mut families);
        assert_eq!(
            pairs(&families[0]),
            [
                (vec!["from_codec=hevc".into(), "to_codec=h264".into()], 1.0),
                (vec!["from_codec=other".into(), "to_codec=h264".into()], 3.0),
                (vec!["from_codec=h264".into(), "to_codec=other".into()], 1.0),
            ]
        );
    }

    #[test]
    fn open_sets_keep_the_largest_and_fold_the_rest_into_other() {
        let devices: Vec<String> = (0..100).map(|i| format!("veth{i:03}")).collect();
        let samples: Vec<(&[(&'static str, &str)], f64)> = Vec::new();
        let mut f = family("node_network_receive_bytes_total", &samples);
        for (i, d) in devices.iter().enumerate() {
            f.push(vec![("device", d.clone())], i as f64);
        }
        let total: f64 = f.samples.iter().map(|s| s.value).sum();
        let mut families = [f];
        bound(&mut families);
        let f = &families[0];
        assert_eq!(f.samples.len(), TOP_DEVICES + 1);
        assert!(f.samples.iter().any(|s| s.labels[0].1 == "veth099"));
        assert!(!f.samples.iter().any(|s| s.labels[0].1 == "veth000"));
        let sum: f64 = f.samples.iter().map(|s| s.value).sum();
        assert_eq!(sum, total, "nothing is lost, only folded");
    }

    #[test]
    fn non_additive_open_sets_keep_the_first_values_and_drop_the_rest() {
        let names: Vec<String> = (0..200).map(|i| format!("task{i:03}")).collect();
        let mut f = Family::gauge("jellyfin_scheduled_task_progress_ratio", "t");
        for name in &names {
            f.push(vec![("task", name.clone())], 0.5);
        }
        let mut families = [f];
        bound(&mut families);
        assert_eq!(families[0].samples.len(), MAX_TASKS);
        assert_eq!(families[0].samples[0].labels[0].1, "task000");
    }

    #[test]
    fn values_already_folded_by_a_collector_stay_folded() {
        let mut f = Family::gauge("jellyfin_sessions", "t");
        for i in 0..TOP_CLIENTS {
            f.push(vec![("client", format!("app{i}"))], 1.0);
        }
        f.push(vec![("client", OTHER.into())], 5.0);
        let before = f.clone();
        let mut families = [f];
        bound(&mut families);
        assert_eq!(families[0], before);
    }

    /// (family, labels) of every row of the README's metric table.
    fn catalogue() -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Metrics")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Metrics section");
        let mut out = Vec::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (names, labels) = (cells[1], cells[3]);
            // Drop the explanations in parentheses, which may hold commas.
            let mut plain = String::new();
            let mut depth = 0;
            for c in labels.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ if depth == 0 => plain.push(c),
                    _ => {}
                }
            }
            let labels: Vec<String> = plain
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            for name in names.split(',') {
                out.push((name.trim().trim_matches('`').to_string(), labels.clone()));
            }
        }
        out
    }

    /// The README states the worst case these bounds allow, computed here from RULES.
    #[test]
    fn every_catalogued_label_is_bounded_and_the_readme_states_the_worst_case() {
        let families = catalogue();
        assert!(families.len() > 50, "{families:?}");
        let mut total = 0usize;
        let mut rows = Vec::new();
        for (family, labels) in &families {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let n = worst_case_series(family, &labels).unwrap();
            total += n;
            rows.push((n, family.clone()));
        }
        rows.sort();
        for (n, family) in rows.iter().rev().take(8) {
            println!("{n:>6} {family}");
        }
        println!("worst case: {total} series");
        let readme = include_str!("../README.md");
        let stated = format!("**{} series**", with_commas(total));
        assert!(readme.contains(&stated), "the README should state {stated}");
    }

    fn with_commas(n: usize) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}
