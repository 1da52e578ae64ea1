//! The command line. Secrets are never taken from it: argv is visible to every user.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

/// Watches a Jellyfin server and pushes its metrics to VictoriaMetrics (Prometheus remote
/// write), buffering on disk while the receiver is out of reach.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// The TOML config file (see config/jellyfin-pusher.example.toml).
    #[arg(
        long,
        short,
        global = true,
        env = "JELLYFIN_PUSHER_CONFIG",
        default_value = "/etc/jellyfin-pusher/config.toml"
    )]
    pub config: PathBuf,

    /// Dry run: collect one cycle from every enabled collector, print the samples in the
    /// Prometheus text format on stdout and exit; nothing is pushed or buffered. Exits 1 when
    /// Jellyfin could not be reached (jellyfin_up 0).
    #[arg(long, conflicts_with = "check_config")]
    pub once: bool,

    /// Validate the config and every file it names (token files, CA files, state_dir), report
    /// every problem, and exit 0 only when there is none.
    #[arg(long)]
    pub check_config: bool,

    /// Log line format on stderr.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Without a subcommand the agent runs (or does what --once / --check-config ask).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Is it delivering? Backlog, last success and last error per remote and collector.
    ///
    /// Reads the state dir, whether the agent runs or not: per remote the backlog (blocks,
    /// bytes, samples, oldest sample), last success, last error with the receiver's message,
    /// samples dropped by reason; per collector its last success and last error. Exits 1
    /// when a remote has not delivered for 5 collection intervals, a collector failed 3 runs
    /// in a row, or the agent never ran; 2 when the state dir cannot be read.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Can it reach everything? One real write to each remote, GET /System/Info to Jellyfin.
    ///
    /// Sends one real sample (jellyfin_pusher_check, which lands in VictoriaMetrics) to each
    /// remote and GET /System/Info to Jellyfin, through the agent's own clients (proxy,
    /// certificates, tokens), and explains every failure with a hint. Exits 1 when anything
    /// fails.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
