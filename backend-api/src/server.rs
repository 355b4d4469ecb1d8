//! Start-up and shutdown of the HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::db::{self, MigrationStatus};
use crate::routes;
use crate::state::AppState;

/// Serves until SIGTERM or SIGINT, then lets in-flight requests finish.
///
/// The listener is up before the database is touched: liveness answers at once, and
/// readiness turns 200 once the background migration task has succeeded.
pub async fn run(config: Config) -> ExitCode {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        app_env = %config.app_env,
        port = config.port,
        database = %config::describe_database(&config.database),
        "starting backend-api"
    );

    let pool = match db::build_pool(&config.database) {
        Ok(pool) => pool,
        Err(error) => {
            error!(%error, "could not set up the database pool");
            return ExitCode::FAILURE;
        }
    };

    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            error!(%address, %error, "could not listen");
            return ExitCode::FAILURE;
        }
    };
    info!(%address, "listening");

    let migrations = Arc::new(MigrationStatus::default());
    tokio::spawn(db::migrate_until_applied(config.database.clone(), Arc::clone(&migrations)));

    let app = routes::router(AppState { pool, migrations });
    match axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
        Ok(()) => {
            info!("in-flight requests finished; stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM (`docker stop`) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};

    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                // Still stoppable with SIGINT; a missing SIGTERM handler must not stop the
                // service from starting.
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let name = tokio::select! {
        () = terminate => "SIGTERM",
        () = interrupt => "SIGINT",
    };
    info!(signal = name, "shutting down: no new connections, finishing in-flight requests");
}
