//! Property-based fuzzing (proptest) of every function that reads outside input, run with the
//! normal unit tests: bounded case counts keep the suite fast (`PROPTEST_CASES` raises them for
//! a longer run). The properties: nothing panics, and errors name the endpoint, file or field.
//! A crash found is fixed and kept as a named regression test next to the property.
//!
//! - [`peer_text`]: redaction, body snippets and `Retry-After` (text a peer sends).
//! - [`jellyfin_json`]: the JSON decoding of every Jellyfin endpoint, from arbitrary bytes and
//!   from the real fixtures mutated (fields dropped, types changed, huge numbers, unicode).
//! - [`queue_files`]: the queue's recovery over arbitrary segment and `meta.json` contents.
//! - [`config_text`]: the config loader over arbitrary and mutated TOML.
//!
//! The transcode-log line parser is fuzzed next to it (`collectors/transcode_log_fuzz.rs`), and
//! the collectors' handling of mutated answers end to end in `tests/it/fuzz_jellyfin.rs`.

mod config_text;
mod jellyfin_json;
pub mod json_mutation;
mod peer_text;
mod queue_files;

use proptest::test_runner::Config;

/// `cases` unless `PROPTEST_CASES` asks for more.
pub fn cases(cases: u32) -> Config {
    let from_env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Config {
        cases: cases.max(from_env),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A real [`crate::secret::Secret`], read from a file as the agent reads them.
pub fn secret(value: &str) -> crate::secret::Secret {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, value).expect("write secret");
    crate::secret::read_secret_file(&path, "secret").expect("a valid secret")
}
