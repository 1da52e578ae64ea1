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
    /// Shows, from the state dir, whether each remote is delivering (backlog, last success,
    /// last error, drops) and each collector working; works whether the agent runs or not.
    /// Exits 1 when a remote has not delivered for 5 collection intervals or a collector
    /// failed 3 runs in a row.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Sends one real sample (jellyfin_pusher_check, which lands in VictoriaMetrics) to each
    /// remote and GET /System/Info to Jellyfin, through the agent's own clients, and explains
    /// every failure with a hint. Exits 1 when anything fails.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
