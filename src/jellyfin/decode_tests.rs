//! The skimmed decoding ([`decode`]) against every byte through serde ([`decode_whole`]) on
//! every real capture (../shared/jellyfin/fixtures) and every fixture the tests serve
//! (tests/fixtures/jellyfin): the same DTOs, field for field, and the same when the answer
//! arrives in chunks cut anywhere.

use serde::de::DeserializeOwned;

use super::dto::*;
use super::{ApiError, Incoming, decode, decode_whole, shape, skim};

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
        every_chunking_skims_the_same(name, body, shape, &text);
    }
    // As the client decodes it, chunk by chunk.
    for seed in 1..=3 {
        let streamed: T = incoming(body, &random_sizes(body.len(), seed))
            .unwrap_or_else(|e| panic!("{name}, chunks of seed {seed}: {e}"));
        assert_eq!(
            format!("{streamed:#?}"),
            format!("{whole:#?}"),
            "{name} as {as_type}, chunks of seed {seed}"
        );
    }
}

/// `body` through [`Incoming`] in chunks of these sizes.
pub(crate) fn incoming<T: DeserializeOwned + 'static>(
    body: &[u8],
    sizes: &[usize],
) -> Result<T, ApiError> {
    let mut incoming = Incoming::<T>::new("/test", "application/json", body.len(), &[]);
    let mut at = 0;
    for &size in sizes {
        if !incoming.feed(&body[at..at + size])? {
            break;
        }
        at += size;
    }
    incoming.finish()
}

/// Chunk sizes from 1 byte to 8 KiB (a few of hyper's reads) adding up to `len`, the same for
/// the same `seed` (xorshift: no test depends on chance).
pub(crate) fn random_sizes(len: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Mostly small cuts, now and then a long stretch.
        let max = if state.is_multiple_of(4) { 8192 } else { 96 };
        let size = (1 + (state >> 8) as usize % max).min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// The skimmed text is the same however the answer is cut: one byte at a time (every offset
/// an edge), two chunks split at 400 offsets all through it (every one for a capture of up
/// to 400 bytes; more took the debug build many seconds on the 167 KB capture), and random
/// chunk sizes.
fn every_chunking_skims_the_same(name: &str, body: &[u8], shape: &shape::Shape, text: &[u8]) {
    let skimmed = |sizes: &[usize]| {
        let mut skim = skim::Skim::new(shape, 0);
        for chunk in chunks(body, sizes) {
            skim.feed(chunk).unwrap_or_else(|b| panic!("{name}: {b:?}"));
        }
        skim.finish().unwrap_or_else(|b| panic!("{name}: {b:?}"))
    };
    assert!(skimmed(&vec![1; body.len()]) == text, "{name}: bytes");
    let step = (body.len() / 400).max(1);
    for split in (0..=body.len()).step_by(step) {
        assert!(
            skimmed(&[split, body.len() - split]) == text,
            "{name}: split at {split}"
        );
    }
    for seed in 1..=8 {
        assert!(
            skimmed(&random_sizes(body.len(), seed)) == text,
            "{name}: seed {seed}"
        );
    }
}

fn chunks<'b>(body: &'b [u8], sizes: &[usize]) -> Vec<&'b [u8]> {
    let mut at = 0;
    sizes
        .iter()
        .map(|&size| {
            at += size;
            &body[at - size..at]
        })
        .collect()
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

/// What [`Incoming`] says of answers that do not decode, cut into chunks: the same as the
/// whole answer says where the JSON is sound (a page that is not JSON, a value of the wrong
/// type), the byte and path where it is not.
#[test]
fn answers_that_fail_fail_the_same_in_chunks() {
    let cases: [(&str, &[u8]); 3] = [
        ("text/html", b"  <!DOCTYPE html><html>Welcome to nginx!</html>"),
        (
            "application/json",
            br#"[{"Id":"a","Capabilities":{"x":[1,2]}},{"NowPlayingItem":{"People":[{"Name":"x"}],"MediaStreams":[{"Height":"tall"}]}}]"#,
        ),
        ("text/plain", b"   "),
    ];
    for (content_type, body) in cases {
        let whole = decode_whole::<Vec<Session>>("/Sessions", content_type, body, &[])
            .expect_err("not a session list")
            .to_string();
        for sizes in [
            vec![body.len()],
            vec![1; body.len()],
            random_sizes(body.len(), 7),
        ] {
            let mut incoming =
                Incoming::<Vec<Session>>::new("/Sessions", content_type, body.len(), &[]);
            let mut failed = None;
            for chunk in chunks(body, &sizes) {
                match incoming.feed(chunk) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let text = failed
                .map_or_else(|| incoming.finish(), Err)
                .expect_err("not a session list")
                .to_string();
            assert_eq!(text, whole, "{content_type}");
        }
    }
    // A page that is not JSON is read no further than what is quoted.
    let page = vec![b'<'; 3 * crate::peer_text::ERROR_BODY_LIMIT];
    let mut incoming = Incoming::<Vec<Session>>::new("/Sessions", "text/html", 0, &[]);
    let read: Vec<bool> = chunks(&page, &[4096; 6])
        .into_iter()
        .map(|c| incoming.feed(c).expect("kept to quote"))
        .take_while(|more| *more)
        .collect();
    assert_eq!(read.len(), 2, "stops once 8 KiB are kept");
}

#[test]
fn broken_json_is_named_by_path_and_byte() {
    let body = br#"[{"Id":"a"},{"NowPlayingItem":{"Name":"x","People":[{"Name":"y"}}]}}]"#;
    for sizes in [vec![body.len()], vec![1; body.len()]] {
        let text = incoming::<Vec<Session>>(body, &sizes)
            .expect_err("mismatched brackets")
            .to_string();
        assert_eq!(
            text,
            "GET /test: the JSON does not match the expected shape at `[1].NowPlayingItem.People`: not JSON: brackets or strings that do not match (byte 64)"
        );
    }
    // Said to be something else but JSON all the same, and a DTO read whole.
    let body = b"\n [{\"Id\": \"a\"}]";
    let sessions: Vec<Session> = Incoming::new("/test", "text/plain", 0, &[]).feed_all(body, 3);
    assert_eq!(sessions[0].id.as_deref(), Some("a"));
    let value: serde_json::Value =
        Incoming::new("/test", "application/json", 0, &[]).feed_all(body, 2);
    assert_eq!(value[0]["Id"], "a");
}

impl<T: DeserializeOwned + 'static> Incoming<'_, T> {
    /// `body` in chunks of `size`, decoded.
    fn feed_all(mut self, body: &[u8], size: usize) -> T {
        for chunk in body.chunks(size) {
            assert!(self.feed(chunk).expect("JSON"), "read on");
        }
        self.finish().expect("decodes")
    }
}
