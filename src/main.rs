//! The binary: parse the command line, set up logging, hand over to `app`.

use std::process::ExitCode;

use clap::Parser;
use jellyfin_pusher::app;
use jellyfin_pusher::cli::Cli;
use jellyfin_pusher::config::Config;
use jellyfin_pusher::{logging, shutdown};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    jellyfin_pusher::allocator::tune();
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            logging::init(cli.log_format, None);
            for line in e.lines() {
                tracing::error!("{line}");
                eprintln!("jellyfin-pusher: {line}");
            }
            return ExitCode::from(2);
        }
    };
    logging::init(cli.log_format, config.log_level.as_deref());
    for table in config.cleartext_credentials() {
        tracing::warn!(
            "{table}: insecure_http is set, so its credentials cross the network in clear text"
        );
    }

    if cli.check_config {
        let problems = app::check(&config);
        for problem in &problems {
            eprintln!("jellyfin-pusher: {problem}");
        }
        if problems.is_empty() {
            println!("config {} is valid", cli.config.display());
            return ExitCode::SUCCESS;
        }
        return ExitCode::from(2);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // The unit's TasksMax=64 must hold: file and DNS work runs on this pool.
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("jellyfin-pusher: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if cli.once {
            return match app::once(&config).await {
                Ok((text, jellyfin_up)) => {
                    print!("{text}");
                    if jellyfin_up {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("jellyfin-pusher: Jellyfin could not be reached (jellyfin_up 0); see the error above");
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("jellyfin-pusher: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        let token = CancellationToken::new();
        let signals = tokio::spawn(shutdown::on_signal(token.clone()));
        let result = app::run(config, token).await;
        signals.abort();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("jellyfin-pusher: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
