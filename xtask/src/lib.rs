//! The Cultivate deployment tool. Each task lives in a file named for it; the
//! machinery the tasks share (commands as values, container runtimes, the project's
//! layout and settings) lives in modules of its own.
//!
//! The crate is a library as well as the `xtask` binary so the integration tests in
//! `tests/` can drive the same code paths the command line does.

pub mod bootstrap;
pub mod command;
pub mod images;
pub mod project;
pub mod runtime;
pub mod settings;
pub mod verify;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Build, check and ship the Cultivate stack")]
pub struct Cli {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// Build and tag the three images (database, backend-api, web-frontend).
    Images(images::ImagesArgs),
    /// The pre-merge check: formatting, clippy, images, and every test on a real engine.
    Verify(verify::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let project = project::Project::locate()?;
    match cli.task {
        Task::Images(args) => images::run(&project, &args).map(|_| ()),
        Task::Verify(args) => verify::run(&project, &args),
    }
}
