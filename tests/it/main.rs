//! The integration tests, one module per subject, in ONE test binary: each test crate is
//! compiled and linked on its own, so 17 of them cost minutes that one does not. Add a new
//! subject as a module here (`mod name;` and tests/it/name.rs); shared helpers live in
//! [`common`].
//!
//! Every test shares this process: none may set environment variables, change the working
//! directory or install signal handlers; each `#[tokio::test]` gets its own runtime.

mod common;

mod activity;
mod alerts;
mod buffer;
mod catalogue;
mod check;
mod dashboards;
mod dmz_link;
mod egress;
mod fixtures_schema;
mod fuzz_jellyfin;
mod golden;
mod grafana_requests;
mod grafana_schema;
mod history;
mod hostile_peers;
mod ingress;
mod inventory;
mod layout;
mod local_files;
mod newest_first;
mod nix;
mod once;
mod packing;
mod panels_and_alerts;
mod playback;
mod process;
mod production_cadence;
mod push;
mod receiver_errors;
mod resident;
mod sessions;
mod staleness;
mod status;
mod supervision;
mod systemd;
mod task_and_storage;
mod transcode_log;
mod watch_time;
