//! The `rill` command: runs the server on defaults or on a TOML configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rill::{Config, Server};
use tracing_subscriber::EnvFilter;

/// Rill, a live-streaming media server (RTMP in; RTMP, HTTP-FLV and WebSocket-FLV out).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (Node-Media-Server key names); without it, defaults are used.
    #[arg(short, long, env = "RILL_CONFIG")]
    config: Option<PathBuf>,
    /// Log level or filter (e.g. `info`, `debug`, `rill=debug`); RUST_LOG is used when absent.
    #[arg(short, long, env = "RILL_LOG_LEVEL")]
    log_level: Option<String>,
    /// Print the configuration in effect (the defaults, or the file's values over them) as TOML,
    /// secrets shown as `***`, and exit.
    #[arg(long)]
    print_config: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match &args.log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rill: bad log level: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = match &args.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rill: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if args.print_config {
        // The configuration in effect, secrets hidden: people paste this into bug reports.
        print!("{}", config.redacted_toml());
        return ExitCode::SUCCESS;
    }
    if args.check {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    open_files_limit(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rill: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::builder(config).start().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rill: {e}");
                return ExitCode::FAILURE;
            }
        };
        let signal = shutdown_signal().await;
        tracing::info!(signal, "shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Raises the soft open-files limit and says so, or warns when even the hard limit is too low
/// for the configured connection limits.
fn open_files_limit(config: &Config) {
    match rill::fdlimit::raise_open_files_limit() {
        Ok(limit) => {
            if limit.before != limit.now {
                let show = |l: Option<u64>| l.map_or("unlimited".to_owned(), |n| n.to_string());
                tracing::info!(
                    "open-files limit raised from {} to {}",
                    show(limit.before),
                    show(limit.now)
                );
            }
            if let Some(warning) = rill::fdlimit::shortfall(config, limit.now) {
                tracing::warn!("{warning}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
