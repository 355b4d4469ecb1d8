//! `cargo xtask restore --host NAME [--from NAME]`: puts a backup's data back (the
//! newest backup by default), keeping the data it replaces as one more backup.

use anyhow::{Context, Result, bail};

use crate::host::session::{ChangeArgs, HostArgs, Session, Target};
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
    // (--from) is one host's. A cluster's data (and backups) are on its data node, its
    // history and lock on its manager.
    let (place, history_at, data_at) = match &args.target.cluster {
        Some(name) => {
            let cluster = config.cluster(name)?;
            let manager = Target::Host(cluster.manager.clone());
            (format!("--cluster {name}"), manager, Target::Host(cluster.data_node.clone()))
        }
        None => {
            let target = args.target.single(&config, "restore")?;
            (format!("--host {}", target.name()), target.clone(), target)
        }
    };
    if let Some(name) = &args.from
        && !backup::is_backup_name(name)
    {
        bail!(
            "--from {name:?} is not a backup's name: names look like 20261204T101500Z-<version>.dump \
             (`cargo xtask backup --list {place}`)"
        );
    }
    let session = Session::open(&config, &history_at, false, args.change.dry_run, &log)?;
    let data = match &args.target.cluster {
        Some(_) => Some(Session::open(&config, &data_at, false, args.change.dry_run, &log)?),
        None => None,
    };
    let result = rollout::with_lock(&session, &config, "restore", "-", || {
        restore(&session, data.as_ref(), &config, args, &place)
    });
    let done = format!("restore on {} done", session.name);
    rollout::conclude(&session, &config, LoggedTask::Restore, "database", &result, &done);
    if let Some(data) = &data {
        rollout::save_log(data, &config, LoggedTask::Restore, "database");
        data.close();
    }
    result
}

/// The restore, under the lock of `session` (the host, or a cluster's manager); the
/// data on `cluster_data` when it is a cluster's (its data node).
fn restore(
    session: &Session,
    cluster_data: Option<&Session>,
    config: &Config,
    args: &RestoreArgs,
    place: &str,
) -> Result<()> {
    let began = std::time::Instant::now();
    let layout = Layout::new(&session.paths);
    let history = rollout::read_history(session, &layout)?;
    let current = history
        .current()
        .with_context(|| format!("no release runs on {}: there is nothing to restore into", session.name))?;
    let data = cluster_data.unwrap_or(session);
    let records = backup::list(data)?;
    let record: &BackupRecord = match &args.from {
        Some(name) => records.iter().find(|r| &r.name == name).with_context(|| {
            format!("there is no backup {name:?} on {}; its backups: {}", data.name, listing(&records))
        })?,
        None => records
            .last()
            .with_context(|| format!("there are no backups on {} (`cargo xtask backup {place}`)", data.name))?,
    };
    if !args.change.yes && !args.change.dry_run {
        crate::host::session::confirm(&format!(
            "Replace the database on {} with {} (taken {}, release {})? The data now is kept as a backup.",
            data.name, record.name, record.created, record.version
        ))?;
    }
    session.log.info(format!(
        "restoring {} (taken {}, release {}) on {}",
        record.name, record.created, record.version, data.name
    ));
    let restored = match cluster_data {
        Some(data) => {
            let containers = crate::release::cluster::node_containers(data, &config.app.name)?;
            let wait_seconds = config.health.timeout_seconds;
            let backend =
                crate::release::cluster::SwarmBackend { manager: session, app: &config.app.name, wait_seconds };
            backup::restore(data, config, &containers, &backend, &current.version, record)?
        }
        None => {
            let stack = rollout::stack(session, config);
            let containers = rollout::read_containers(session, &stack)?;
            let release_dir = layout.release_dir(&current.version);
            let backend = backup::ComposeBackend { session, stack: &stack, config, release_dir: &release_dir };
            backup::restore(session, config, &containers, &backend, &current.version, record)?
        }
    };
    let detail = format!(
        "restored {} (taken {}, release {}; {} tables); the data before is backup {}",
        record.name, record.created, record.version, restored.tables, restored.before.name
    );
    rollout::record_event(session, &layout, "restore", &detail, Some(began.elapsed()))?;
    if !session.dry_run {
        session.log.info(format!("{detail} on {}", data.name));
    }
    Ok(())
}

fn listing(records: &[BackupRecord]) -> String {
    if records.is_empty() {
        return "none".to_string();
    }
    records.iter().rev().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
}
