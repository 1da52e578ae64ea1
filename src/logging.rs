//! Logs go to stderr through tracing, in a form journald handles well: no colours unless
//! stderr is a terminal, and no timestamps when journald is the reader (it adds its own).
//! `--log-format json` gives one JSON object per line for log shippers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// RUST_LOG wins over the config's `log_level`, which wins over `info`.
pub fn init(format: LogFormat, config_level: Option<&str>) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| config_level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text if under_journald => builder
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    let _ = result;
}
