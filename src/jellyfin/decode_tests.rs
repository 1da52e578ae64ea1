//! The skimmed decoding ([`decode`]) against every byte through serde ([`decode_whole`]) on
//! every real capture (../shared/jellyfin/fixtures) and every fixture the tests serve
//! (tests/fixtures/jellyfin): the same DTOs, field for field.

use serde::de::DeserializeOwned;

use super::dto::*;
use super::{decode, decode_whole, shape, skim};

/// The DTOs each capture is decoded into, by the endpoint its name says it answers.
fn dtos_for(name: &str) -> Option<&'static [Compare]> {
    let table: [(&str, &'static [Compare]); 12] = [
        ("sessions.", &[same::<Vec<Session>>]),
        ("system-info.", &[same::<SystemInfo>]),
        ("system-storage.", &[same::<SystemStorage>]),
        ("scheduled-tasks.", &[same::<Vec<ScheduledTask>>]),
        ("users.", &[same::<Vec<User>>, same::<Vec<NamedUser>>]),
        ("items-counts.", &[same::<ItemCounts>]),
        (
            "items.",
            &[
                same::<ItemPage>,
                same::<NamedItemPage>,
                same::<serde_json::Value>,
            ],
        ),
        ("virtual-folders.", &[same::<Vec<VirtualFolder>>]),
        ("activity-log.", &[same::<ActivityPage>]),
        ("encoding-options.", &[same::<EncodingOptions>]),
        ("custom-query.", &[same::<CustomQueryAnswer>]),
        ("playback-reporting.", &[same::<CustomQueryAnswer>]),
    ];
    table
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, dtos)| *dtos)
}

type Compare = fn(&str, &[u8]);

fn same<T: DeserializeOwned + std::fmt::Debug + 'static>(name: &str, body: &[u8]) {
    let skimmed: T =
        decode("/test", "application/json", body, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let whole: T = decode_whole("/test", "application/json", body, &[])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let as_type = std::any::type_name::<T>();
    assert_eq!(
        format!("{skimmed:#?}"),
        format!("{whole:#?}"),
        "{name} as {as_type}"
    );
    // And through the skim itself, not [`decode`]'s fallback to the whole answer.
    let shape = shape::cached::<T>();
    if !matches!(shape, shape::Shape::Whole) {
        let text = skim::skim(body, shape).unwrap_or_else(|| panic!("{name}: skim refused"));
        let direct: T = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            format!("{direct:#?}"),
            format!("{whole:#?}"),
            "{name} as {as_type}"
        );
        assert!(text.len() <= body.len());
    }
}

#[test]
fn every_capture_decodes_to_the_same_dtos_skimmed_or_whole() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut compared = 0;
    for dir in [
        format!("{root}/../shared/jellyfin/fixtures"),
        format!("{root}/tests/fixtures/jellyfin"),
    ] {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !name.ends_with(".json") {
                continue;
            }
            let dtos = dtos_for(&name)
                .unwrap_or_else(|| panic!("{}: which DTO does it answer?", path.display()));
            let body = std::fs::read(&path).expect("a readable fixture");
            for compare in dtos {
                compare(&name, &body);
                compared += 1;
            }
        }
    }
    // Seven real captures and the synthetic fixtures: none may go unread.
    assert!(compared >= 20, "{compared} comparisons");
}

#[test]
fn a_session_with_a_bad_field_gives_the_same_error_either_way() {
    let body = br#"[{"Id":"a","Capabilities":{"x":[1,2]}},{"NowPlayingItem":{"People":[{"Name":"x"}],"MediaStreams":[{"Height":"tall"}]}}]"#;
    let skimmed = decode::<Vec<Session>>("/Sessions", "application/json", body, &[]);
    let whole = decode_whole::<Vec<Session>>("/Sessions", "application/json", body, &[]);
    let text = skimmed.expect_err("a string height").to_string();
    assert_eq!(text, whole.expect_err("a string height").to_string());
    assert!(
        text.contains("[1].NowPlayingItem.MediaStreams[0].Height"),
        "{text}"
    );
    // Broken inside a part no DTO reads, and cut short: still an error naming the place.
    let body = br#"[{"Id":"a","Capabilities":{"x":[1,2}}]"#;
    let text = decode::<Vec<Session>>("/Sessions", "application/json", body, &[])
        .expect_err("mismatched brackets")
        .to_string();
    assert!(
        text.starts_with("GET /Sessions: ") && text.contains("[0].Capabilities.x"),
        "{text}"
    );
}
