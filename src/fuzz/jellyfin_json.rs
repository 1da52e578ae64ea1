//! The JSON decoding of every Jellyfin endpoint the agent reads, from arbitrary bytes and from
//! the real captures (tests/fixtures/jellyfin, valid against the OpenAPI document) mutated:
//! values replaced by others of the type the schema gives them (huge and negative numbers,
//! unicode and odd dates in strings), fields dropped, and types changed.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json_mutation::{mutate, mutations};

use crate::jellyfin::dto::*;
use crate::jellyfin::{ApiError, decode};

type Check = fn(&'static str, &str, &[u8]) -> Result<(), ApiError>;

fn check<T: DeserializeOwned>(
    endpoint: &'static str,
    ct: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    decode::<T>(endpoint, ct, body, &[]).map(|_| ())
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
    ) {
        let ct = if json_type { "application/json; charset=utf-8" } else { "text/html" };
        for (endpoint, check, _) in ENDPOINTS {
            assert_named(endpoint, check(endpoint, ct, &body))?;
        }
    }

    #[test]
    fn mutated_captures_never_panic_and_errors_name_endpoint_and_field(
        which in 0..ENDPOINTS.len(),
        mutations in mutations(),
    ) {
        let (endpoint, check, fixture) = ENDPOINTS[which];
        let mut value: Value = serde_json::from_str(fixture).expect("fixture is JSON");
        mutate(&mut value, &mutations);
        let body = serde_json::to_vec(&value).expect("serialises");
        assert_named(endpoint, check(endpoint, "application/json", &body))?;
    }
}

#[test]
fn every_capture_decodes_unmutated() {
    for (endpoint, check, fixture) in ENDPOINTS {
        check(endpoint, "application/json", fixture.as_bytes())
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
}
