//! jellyfin-pusher: watches a Jellyfin server and pushes its metrics to VictoriaMetrics (or any
//! Prometheus remote-write receiver) from inside a DMZ that may only talk outward.
//!
//! # Layout
//!
//! Data flows one way, and each stage is a module with a small interface:
//!
//! ```text
//! collectors --Batch--> pipeline --Block--> queue (one per remote, on disk) --> sender --> HTTP
//! ```
//!
//! Dependencies point the same way and never back: `queue` <- `remote_write` <- `app`, and
//! `config` <- `collectors` <- `app`. The queue owns its record type ([`queue::Block`], an
//! opaque body with its sample count and timestamps); the encoder makes it, the sender sends
//! it. tests/it/layout.rs checks the direction for every module.
//!
//! - [`config`]: the TOML file, its defaults and its validation.
//! - [`secret`]: secrets read from files; their `Debug` and `Display` never show the value.
//! - [`jellyfin`]: the HTTP client for the Jellyfin API and the DTOs it decodes (an answer is
//!   skimmed down to the fields the DTOs read chunk by chunk as it arrives, never held whole,
//!   before serde sees it: `shape`, `skim`, `incoming`).
//! - [`privacy`]: what a `user` label may say (salted hash by default).
//! - [`peer_text`]: bounded reads of peer error bodies, and the redact-then-shorten excerpt
//!   every peer text goes through before it is logged.
//! - [`labels`]: the bound on every label's values (allow-lists, top-N), applied to every
//!   collector's families by the runner.
//! - [`sample`]: the in-memory sample model (`Family`, `Sample`, `Batch`) shared by every stage.
//! - [`collectors`]: one file per collector behind the [`collectors::Collector`] trait, the one
//!   table of them ([`collectors::COLLECTORS`]: name, default interval, constructor), and the
//!   runner that adds `collector_success`/`collector_duration_seconds` and ends series whose
//!   subject is gone (a 0, or Prometheus' staleness marker where 0 would lie: `ended.rs`).
//!   Collectors share no state but one: [`collectors::PlaysSeen`], what the sessions collector
//!   saw playing, which the activity collector classifies the server's playback starts with.
//! - [`exposition`]: renders samples in the Prometheus text format (`--once`).
//! - [`remote_write`]: encodes a batch into a snappy-compressed WriteRequest (`encode`), and sends
//!   blocks with the retry/drop rules of the remote-write spec (`sender`, its schedule in `retry`);
//!   `pack` is the packer the queue compacts a backlog with (each series once per pack),
//!   `splice` joins stored blocks into one request without decompressing them.
//! - [`queue`]: the durable per-remote FIFO of compressed blocks (CRC32C-framed records); its
//!   `compact` rewrites sealed segments of a backlog through a packer it is given, its
//!   `position` keeps the reader position in two checksummed slots overwritten in place.
//! - [`state_file`]: small JSON state files (cursors, last results), replaced atomically.
//! - [`stats`]: the agent's own counters, shared by the stages and reported by the `pusher` collector.
//! - [`status`]: the health snapshot the agent keeps in `status.json`, and the `status`
//!   subcommand that reads it with the queue files.
//! - [`app`]: wires the stages into tasks (`run`), the dry run (`once`) and `--check-config`
//!   (the file checks, which ask the stages that use each file).
//! - [`shutdown`], [`logging`]: signal handling and the tracing subscriber.
//! - [`allocator`]: glibc malloc settings (one arena, memory returned early) for a small RSS,
//!   and the trim the inventory collector calls after its walk.
//! - [`resident`]: unmaps the code and constants not used since start-up or since the last
//!   inventory walk (the kernel counts every page once touched in RSS).
//! - [`error_chain`]: an error and its causes on one line, for messages.
//! - [`fault`]: the debug-build-only seam that makes a task panic, for the supervision tests
//!   (`app::supervise` restarts collectors, the pipeline and senders).
//! - `fuzz` (tests only): property-based fuzzing of every reader of outside input.
//!
//! `main.rs` only parses the command line and calls into [`app`].
//!
//! Tests: unit tests next to the code they test; the integration tests are one binary,
//! `tests/it/` (one module per subject, the shared harness in `tests/it/common/`).

pub mod allocator;
pub mod app;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod error_chain;
pub mod exposition;
pub mod fault;
#[cfg(test)]
mod fuzz;
pub mod jellyfin;
pub mod labels;
pub mod logging;
pub mod peer_text;
pub mod privacy;
pub mod queue;
pub mod remote_write;
pub mod resident;
pub mod sample;
pub mod secret;
pub mod shutdown;
pub mod state_file;
pub mod stats;
pub mod status;

/// The version reported in `User-Agent` and `jellyfin_pusher_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `User-Agent` of every request the agent makes, to Jellyfin and to receivers.
pub const USER_AGENT: &str = concat!("jellyfin-pusher/", env!("CARGO_PKG_VERSION"));
