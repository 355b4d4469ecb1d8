//! The Cultivate deployment tool, in layers that import only downward:
//! `tasks` (one file per command) → `release` → `images` → `host` → `model` →
//! `support`. The README's module map lists each file.
//!
//! The crate is a library as well as the `xtask` binary so the integration tests in
//! `tests/` can drive the same code paths the command line does.

pub mod host;
pub mod images;
pub mod model;
pub mod release;
pub mod support;
pub mod tasks;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Build, check and ship the Cultivate stack")]
pub struct Cli {
    /// The deployment configuration (default: deploy/deploy.toml in the workspace).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// What this machine and a target have and lack; --install fixes the target.
    Doctor(tasks::doctor::DoctorArgs),
    /// Build and tag the three images (database, backend-api, web-frontend).
    Images(tasks::images::ImagesArgs),
    /// Print the compose file (and env file) a deploy would write for a target OS.
    Render(tasks::render::RenderArgs),
    /// Build, ship and start a release on a host; roll back by itself on failure.
    Deploy(tasks::deploy::DeployArgs),
    /// Restore an earlier release on a host (the previous one, or --to VERSION).
    Rollback(tasks::rollback::RollbackArgs),
    /// The current release, the history and each service's health on a host.
    Status(tasks::status::StatusArgs),
    /// The containers' logs on a host.
    Logs(tasks::logs::LogsArgs),
    /// Back up the database on a host now (--download copies it here); --list shows the backups.
    Backup(tasks::backup::BackupArgs),
    /// Put a backup's data back on a host (the newest, or --from NAME).
    Restore(tasks::restore::RestoreArgs),
    /// Every deploy, rollback, restore, lock break and certificate change on a host.
    Audit(tasks::audit::AuditArgs),
    /// Install renewed TLS certificates on a host and reload nginx in place.
    Certs(tasks::certs::CertsArgs),
    /// Who holds a host's deploy lock; --release breaks it (recorded in the history).
    Lock(tasks::lock::LockArgs),
    /// The pre-merge check: formatting, clippy, images, and every test on a real engine.
    Verify(tasks::verify::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut project = support::project::Project::locate()?;
    if let Some(config) = cli.config {
        project.config_file = config;
    }
    match cli.task {
        Task::Doctor(args) => tasks::doctor::run(&project, &args),
        Task::Images(args) => tasks::images::run(&project, &args).map(|_| ()),
        Task::Render(args) => tasks::render::run(&project, &args),
        Task::Verify(args) => tasks::verify::run(&project, &args),
        Task::Deploy(args) => tasks::deploy::run(&project, &args),
        Task::Rollback(args) => tasks::rollback::run(&project, &args),
        Task::Status(args) => tasks::status::run(&project, &args),
        Task::Logs(args) => tasks::logs::run(&project, &args),
        Task::Lock(args) => tasks::lock::run(&project, &args),
        Task::Certs(args) => tasks::certs::run(&project, &args),
        Task::Audit(args) => tasks::audit::run(&project, &args),
        Task::Backup(args) => tasks::backup::run(&project, &args),
        Task::Restore(args) => tasks::restore::run(&project, &args),
    }
}
