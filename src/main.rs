//! The binary: parse the command line, set up logging, hand over to `app`.

use std::process::ExitCode;

use clap::Parser;
use jellyfin_pusher::app;
use jellyfin_pusher::cli::{Cli, Command, Format};
use jellyfin_pusher::config::Config;
use jellyfin_pusher::{logging, resident, shutdown};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    jellyfin_pusher::allocator::tune();
    let cli = Cli::parse();
    // status and check run by hand from a shell, outside the service's environment.
    let env: jellyfin_pusher::config::Env<'_> = match cli.command {
        Some(_) => &jellyfin_pusher::config::operator_env,
        None => &jellyfin_pusher::config::process_env,
    };
    let config = match Config::load_with(&cli.config, env) {
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

    if let Some(Command::Status { format }) = cli.command {
        return status(&config, format);
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

    // One thread runs every task: a cycle is a few short bursts of work that mostly wait on
    // the network, and the remote-write lanes are futures in one task, so a second worker only
    // added thread switches (18 % of a fast cycle's CPU with two workers, README "Figures").
    let runtime = match tokio::runtime::Builder::new_current_thread()
        // The unit's TasksMax=64 must hold: file and DNS work runs on this pool.
        .max_blocking_threads(16)
        // Tokio ends a pool thread idle for 10 s; at a 15 s interval the pipeline's append
        // then started a thread every cycle (clone, a 2 MiB stack mapped, its pages faulted
        // in, and unmapped again; `cargo bench --bench queue`, README "Figures"). An idle
        // thread only keeps its stack's touched pages.
        .thread_keep_alive(std::time::Duration::from_secs(600))
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
        if let Some(Command::Check) = cli.command {
            let (report, ok) = app::check_connectivity(&config).await;
            print!("{report}");
            return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
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
        let settle = tokio::spawn(resident::drop_after_start_up(config.collect.interval));
        let result = app::run(config, token).await;
        signals.abort();
        settle.abort();
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

/// `status`: 0 healthy, 1 unhealthy, 2 when the state dir cannot be read.
fn status(config: &Config, format: Format) -> ExitCode {
    let report =
        match jellyfin_pusher::status::report::gather(config, jellyfin_pusher::sample::now_ms()) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("jellyfin-pusher: {e}");
                return ExitCode::from(2);
            }
        };
    let text = match format {
        Format::Text => report.text(),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(e) => {
                eprintln!("jellyfin-pusher: cannot render the report: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // A closed pipe (`status | head`) is not worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
