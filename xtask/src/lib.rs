//! The Cultivate deployment tool. Each task lives in a file named for it; the
//! machinery the tasks share (commands as values, container runtimes, the project's
//! layout and settings) lives in modules of its own.
//!
//! The crate is a library as well as the `xtask` binary so the integration tests in
//! `tests/` can drive the same code paths the command line does.

pub mod activate;
pub mod bootstrap;
pub mod command;
pub mod compose;
pub mod config;
pub mod context;
pub mod deploy;
pub mod digest;
pub mod doctor;
pub mod images;
pub mod log;
pub mod logs;
pub mod paths;
pub mod project;
pub mod release;
pub mod remote_build;
pub mod render;
pub mod rollback;
pub mod rollout;
pub mod runtime;
pub mod scripted;
pub mod session;
pub mod ship;
pub mod stack;
pub mod status;
pub mod target;
pub mod transport;
pub mod verify;

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
    Doctor(doctor::DoctorArgs),
    /// Build and tag the three images (database, backend-api, web-frontend).
    Images(images::ImagesArgs),
    /// Print the compose file (and env file) a deploy would write for a target OS.
    Render(render::RenderArgs),
    /// Build, ship and start a release on a host; roll back by itself on failure.
    Deploy(deploy::DeployArgs),
    /// Restore an earlier release on a host (the previous one, or --to VERSION).
    Rollback(rollback::RollbackArgs),
    /// The current release, the history and each service's health on a host.
    Status(status::StatusArgs),
    /// The containers' logs on a host.
    Logs(logs::LogsArgs),
    /// The pre-merge check: formatting, clippy, images, and every test on a real engine.
    Verify(verify::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut project = project::Project::locate()?;
    if let Some(config) = cli.config {
        project.config_file = config;
    }
    match cli.task {
        Task::Doctor(args) => doctor::run(&project, &args),
        Task::Images(args) => images::run(&project, &args).map(|_| ()),
        Task::Render(args) => render::run(&project, &args),
        Task::Verify(args) => verify::run(&project, &args),
        Task::Deploy(args) => deploy::run(&project, &args),
        Task::Rollback(args) => rollback::run(&project, &args),
        Task::Status(args) => status::run(&project, &args),
        Task::Logs(args) => logs::run(&project, &args),
    }
}
