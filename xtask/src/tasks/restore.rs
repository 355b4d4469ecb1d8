//! `cargo xtask restore --host NAME [--from NAME]`: puts a backup's data back (the
//! newest backup by default), keeping the data it replaces as one more backup.

use anyhow::{Context, Result, bail};

use crate::host::session::{ChangeArgs, HostArgs, Session};
use crate::model::config::Config;
use crate::release::backup::{self, BackupRecord};
use crate::release::rollout;
use crate::release::state::{Layout, LoggedTask};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// The backup to restore, by its name in `cargo xtask backup --list` (default: the
    /// newest).
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub fn run(project: &Project, args: &RestoreArgs) -> Result<()> {
    crate::support::interrupt::install();
    let log = Log::new(args.change.verbose);
    let config = Config::load(&project.config_file)?;
    // One at a time: a restore stops the backend and replaces the data; a backup's name
    // (--from) is one host's.
    let target = args.target.single(&config, "restore")?;
    if let Some(name) = &args.from
        && !backup::is_backup_name(name)
    {
        bail!(
            "--from {name:?} is not a backup's name: names look like 20261204T101500Z-<version>.dump \
             (`cargo xtask backup --list --host {}`)",
            target.name()
        );
    }
    let session = Session::open(&config, &target, false, args.change.dry_run, &log)?;
    let result = rollout::with_lock(&session, &config, "restore", "-", || restore(&session, &config, args));
    let done = format!("restore on {} done", session.name);
    rollout::conclude(&session, &config, LoggedTask::Restore, "database", &result, &done);
    result
}

fn restore(session: &Session, config: &Config, args: &RestoreArgs) -> Result<()> {
    let began = std::time::Instant::now();
    let layout = Layout::new(&session.paths);
    let history = rollout::read_history(session, &layout)?;
    let current = history
        .current()
        .with_context(|| format!("no release runs on {}: there is nothing to restore into", session.name))?;
    let records = backup::list(session)?;
    let record: &BackupRecord = match &args.from {
        Some(name) => records.iter().find(|r| &r.name == name).with_context(|| {
            format!("there is no backup {name:?} on {}; its backups: {}", session.name, listing(&records))
        })?,
        None => records.last().with_context(|| {
            format!("there are no backups on {} (`cargo xtask backup --host {}`)", session.name, session.name)
        })?,
    };
    if !args.change.yes && !args.change.dry_run {
        crate::host::session::confirm(&format!(
            "Replace the database on {} with {} (taken {}, release {})? The data now is kept as a backup.",
            session.name, record.name, record.created, record.version
        ))?;
    }
    session.log.info(format!(
        "restoring {} (taken {}, release {}) on {}",
        record.name, record.created, record.version, session.name
    ));
    let stack = rollout::stack(session, config);
    let restored =
        backup::restore(session, config, &stack, &layout.release_dir(&current.version), &current.version, record)?;
    let detail = format!(
        "restored {} (taken {}, release {}; {} tables); the data before is backup {}",
        record.name, record.created, record.version, restored.tables, restored.before.name
    );
    rollout::record_event(session, &layout, "restore", &detail, Some(began.elapsed()))?;
    if !session.dry_run {
        session.log.info(format!("{detail} on {}", session.name));
    }
    Ok(())
}

fn listing(records: &[BackupRecord]) -> String {
    if records.is_empty() {
        return "none".to_string();
    }
    records.iter().rev().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
}
