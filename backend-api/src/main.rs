//! Cultivate backend API.
//!
//! `backend-api` serves HTTP on 0.0.0.0:$PORT; `backend-api healthcheck` probes a
//! running instance for the container's HEALTHCHECK. Environment: see `config.rs`.

// Layers, each importing only the ones listed before it:
// error_text; config, db; state (AppState, body limit); error (ApiError, extractors);
// handlers: activities, health; routes (the router); server, healthcheck; main.
mod activities;
mod config;
mod db;
mod error;
mod error_text;
mod health;
mod healthcheck;
mod routes;
mod server;
mod state;

use std::process::ExitCode;
use std::time::Duration;

use tracing::error;

/// Exit status for a configuration or usage error, as opposed to a runtime failure (1).
const EXIT_USAGE: u8 = 2;

const USAGE: &str = "usage: backend-api [healthcheck]

  (no command)   serve the API on 0.0.0.0:$PORT
  healthcheck    GET http://127.0.0.1:$PORT/health/details; exit 0 if 200, else 1

environment: DATABASE_URL, PORT (default 3000), APP_ENV (default production)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned()).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => serve(),
        ["healthcheck"] => healthcheck::run(),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["-V" | "--version"] => {
            println!("backend-api {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("backend-api: unexpected arguments {args:?}\n\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn serve() -> ExitCode {
    init_logging();
    let config = match config::Config::from_env() {
        Ok(config) => config,
        Err(problem) => {
            error!("{problem}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(problem) => {
            error!(%problem, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let exit = runtime.block_on(server::run(config));
    // Background work (a migration retry loop, say) must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    exit
}

/// Plain text lines on stdout, each starting with an RFC 3339 UTC timestamp (the
/// default timer), no colour codes: the container runtime collects and stamps nothing.
fn init_logging() {
    tracing_subscriber::fmt().with_writer(std::io::stdout).with_ansi(false).with_max_level(tracing::Level::INFO).init();
}
