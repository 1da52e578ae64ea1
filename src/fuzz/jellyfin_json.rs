//! The JSON decoding of every Jellyfin endpoint the agent reads, from arbitrary bytes and from
//! the real captures (tests/fixtures/jellyfin, valid against the OpenAPI document) mutated:
//! values replaced by others of the type the schema gives them (huge and negative numbers,
//! unicode and odd dates in strings), fields dropped, and types changed. Each body is decoded
//! too as the client decodes it, in chunks of sizes proptest picks ([`Incoming`]).

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json_mutation::{mutate, mutations};

use crate::jellyfin::dto::*;
use crate::jellyfin::{ApiError, Incoming, decode, decode_whole, skim_only};

type Check = fn(&'static str, &str, &[u8], Json, &[usize]) -> Result<(), ApiError>;

/// Whether a body is JSON throughout: then skimming it must change nothing.
#[derive(Clone, Copy, PartialEq)]
enum Json {
    Valid,
    Unknown,
}

/// Decodes `body` as `T` both ways, the agent's (skimmed) and every byte through serde, and
/// checks they agree: the same DTO, or the same error. The one difference allowed: a body
/// broken only inside a part `T` does not read, which the skim does not look into.
/// Then the same through [`Incoming`] in chunks of `sizes`.
fn check<T: DeserializeOwned + std::fmt::Debug + 'static>(
    endpoint: &'static str,
    ct: &str,
    body: &[u8],
    json: Json,
    sizes: &[usize],
) -> Result<(), ApiError> {
    let skimmed = decode::<T>(endpoint, ct, body, &[]);
    let whole = decode_whole::<T>(endpoint, ct, body, &[]);
    match (&skimmed, &whole) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{endpoint}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{endpoint}"),
        (Err(a), Ok(_)) => panic!("{endpoint}: the skim refused what serde reads: {a}"),
        (Ok(_), Err(b)) => assert!(json == Json::Unknown, "{endpoint}: skim accepted {b}"),
    }
    // Valid JSON is never refused by the skim itself (the fallback would hide it).
    if json == Json::Valid
        && let Ok(b) = &whole
    {
        match skim_only::<T>(body) {
            Some(Ok(a)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{endpoint}"),
            Some(Err(e)) => panic!("{endpoint}: serde refused the skimmed text: {e}"),
            None => panic!("{endpoint}: the skim refused valid JSON"),
        }
    }
    let streamed = streamed::<T>(endpoint, ct, body, sizes);
    match (&streamed, &whole) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{endpoint}"),
        // Sound JSON fails in chunks as it fails whole (the skimmed text keeps the path).
        (Err(a), Err(b)) if json == Json::Valid => {
            assert_eq!(a.to_string(), b.to_string(), "{endpoint}")
        }
        (Err(a), Err(_)) => {
            let text = a.to_string();
            assert!(text.starts_with(&format!("GET {endpoint}: ")), "{text}");
            if let ApiError::Decode { field, .. } = a {
                assert!(
                    !field.is_empty() && text.contains(&format!("`{field}`")),
                    "{text}"
                );
            }
        }
        (Err(a), Ok(_)) => panic!("{endpoint}: the chunked skim refused what serde reads: {a}"),
        (Ok(_), Err(b)) => assert!(json == Json::Unknown, "{endpoint}: chunks accepted {b}"),
    }
    skimmed.map(|_| ())
}

/// `body` through [`Incoming`], in chunks of `sizes` (taken in turn, again from the first).
fn streamed<T: DeserializeOwned + 'static>(
    endpoint: &'static str,
    ct: &str,
    body: &[u8],
    sizes: &[usize],
) -> Result<T, ApiError> {
    let mut incoming = Incoming::<T>::new(endpoint, ct, body.len(), &[]);
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == body.len() {
            break;
        }
        let end = (at + size.max(&1)).min(body.len());
        if !incoming.feed(&body[at..end])? {
            break;
        }
        at = end;
    }
    incoming.finish()
}

/// Chunk sizes: mostly a few bytes (every kind of cut), now and then more than a block.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![3 => 1usize..16, 1 => 16usize..300], 1..12)
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jellyfin/",
            $name
        ))
    };
}

/// Every endpoint, the type its answer decodes into, and a real answer.
const ENDPOINTS: [(&str, Check, &str); 10] = [
    (
        "/System/Info",
        check::<SystemInfo>,
        fixture!("system-info.10.11.11.json"),
    ),
    (
        "/Sessions",
        check::<Vec<Session>>,
        fixture!("sessions.transcoding.10.9.6.json"),
    ),
    (
        "/Sessions",
        check::<Vec<Session>>,
        fixture!("sessions.transcoding.synthetic.10.11.json"),
    ),
    (
        "/ScheduledTasks",
        check::<Vec<ScheduledTask>>,
        fixture!("scheduled-tasks.10.11.11.json"),
    ),
    (
        "/Users",
        check::<Vec<User>>,
        fixture!("users.10.11.11.json"),
    ),
    (
        "/Items/Counts",
        check::<ItemCounts>,
        fixture!("items-counts.10.9.6.json"),
    ),
    (
        "/Items",
        check::<ItemPage>,
        fixture!("items.library.10.11.11.json"),
    ),
    (
        "/Library/VirtualFolders",
        check::<Vec<VirtualFolder>>,
        fixture!("virtual-folders.synthetic.json"),
    ),
    (
        "/System/Info/Storage",
        check::<SystemStorage>,
        fixture!("system-storage.synthetic.json"),
    ),
    (
        "/System/ActivityLog/Entries",
        check::<ActivityPage>,
        fixture!("activity-log.synthetic.json"),
    ),
];

/// Any JSON value, nested a few levels, its strings drawn from JSON's own punctuation.
fn any_json() -> impl Strategy<Value = Value> {
    let text = "[a-z\"\\\\\\[\\]{}:, é\u{1F600}\n]{0,80}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The error says which endpoint, and for a shape mismatch which field.
fn assert_named(endpoint: &str, result: Result<(), ApiError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let text = e.to_string();
        prop_assert!(text.starts_with(&format!("GET {endpoint}: ")), "{text}");
        if let ApiError::Decode { field, .. } = &e {
            prop_assert!(
                !field.is_empty() && text.contains(&format!("`{field}`")),
                "{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_name_the_endpoint(
        body in prop::collection::vec(any::<u8>(), 0..256),
        json_type in any::<bool>(),
        sizes in chunk_sizes(),
    ) {
        let ct = if json_type { "application/json; charset=utf-8" } else { "text/html" };
        for (endpoint, check, _) in ENDPOINTS {
            assert_named(endpoint, check(endpoint, ct, &body, Json::Unknown, &sizes))?;
        }
    }

    #[test]
    fn mutated_captures_never_panic_and_errors_name_endpoint_and_field(
        which in 0..ENDPOINTS.len(),
        mutations in mutations(),
        sizes in chunk_sizes(),
    ) {
        let (endpoint, check, fixture) = ENDPOINTS[which];
        let mut value: Value = serde_json::from_str(fixture).expect("fixture is JSON");
        mutate(&mut value, &mutations);
        let body = serde_json::to_vec(&value).expect("serialises");
        assert_named(endpoint, check(endpoint, "application/json", &body, Json::Valid, &sizes))?;
    }

    /// Any JSON where no DTO looks (an unknown key of a session, compact or indented), with
    /// strings full of quotes, backslashes and brackets: the skim passes it 64 bytes at a
    /// time and must end it where serde does.
    #[test]
    fn any_json_in_unread_fields_is_skipped_exactly(
        junk in any_json(),
        pretty in any::<bool>(),
        pad in 0usize..64,
        sizes in chunk_sizes(),
    ) {
        let session = serde_json::json!({
            "Id": "x".repeat(pad),
            "Junk": junk,
            "PlayState": {"IsPaused": true, "Junk": junk},
            "NowPlayingItem": {"Name": "a", "Junk": junk, "MediaStreams": [{"Height": 1080, "Junk": junk}]},
        });
        let all = serde_json::Value::Array(vec![session.clone(), session]);
        let body = if pretty {
            serde_json::to_vec_pretty(&all)
        } else {
            serde_json::to_vec(&all)
        }
        .expect("serialises");
        check::<Vec<Session>>("/Sessions", "application/json", &body, Json::Valid, &sizes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    /// Real answers cut short or with one byte changed: where the skim walks fastest.
    #[test]
    fn damaged_captures_decode_as_serde_decodes_them(
        which in 0..ENDPOINTS.len(),
        at in any::<prop::sample::Index>(),
        sizes in chunk_sizes(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let (endpoint, check, fixture) = ENDPOINTS[which];
        let mut body = fixture.as_bytes().to_vec();
        let at = at.index(body.len());
        if cut {
            body.truncate(at);
        } else {
            body[at] = byte;
        }
        assert_named(endpoint, check(endpoint, "application/json", &body, Json::Unknown, &sizes))?;
    }
}

#[test]
fn every_capture_decodes_unmutated() {
    for (endpoint, check, fixture) in ENDPOINTS {
        check(
            endpoint,
            "application/json",
            fixture.as_bytes(),
            Json::Valid,
            &[1, 7, 64, 1000],
        )
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
}
