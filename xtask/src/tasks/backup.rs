//! `cargo xtask backup --host NAME [--download DIR] | --list`: a backup of the
//! database now (optionally copied here, its sha256 checked), or the host's backups.
//! Several hosts (`--host a --host b`, `--group`): backed up in parallel, each copy
//! downloaded into `DIR/<host>/`; `--list` lists each host's in turn.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::host::session::{ChangeArgs, HostArgs, Session, Target};
use crate::model::config::Config;
use crate::release::backup::{self, BackupRecord};
use crate::release::fleet;
use crate::release::rollout;
use crate::release::stack::ContainerState;
use crate::release::state::{Layout, LoggedTask};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// List the host's backups (name, version, size, age) instead of taking one.
    #[arg(long, conflicts_with = "download")]
    pub list: bool,
    /// Copy the new backup into this directory here too, its sha256 checked.
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub fn run(project: &Project, args: &BackupArgs) -> Result<()> {
    crate::support::interrupt::install();
    let log = Log::new(args.change.verbose);
    let config = Config::load(&project.config_file)?;
    if let Some(name) = &args.target.cluster {
        return cluster_backup(&config, name, args, &log);
    }
    let targets = args.target.targets(&config)?;
    let several = targets.len() > 1;
    if args.list {
        let outcomes = fleet::run_in_turn(&targets, |target| {
            let session = Session::open(&config, target, false, false, &log)?;
            let listed = backup::list(&session);
            session.close();
            let records = listed?;
            print_list(target.name(), &records, several);
            Ok(())
        });
        return fleet::conclude("backup --list", outcomes);
    }
    let download_dir =
        |target: &Target| args.download.as_ref().map(|dir| if several { dir.join(target.name()) } else { dir.clone() });
    for target in &targets {
        if let Some(dir) = download_dir(target) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {} for --download", dir.display()))?;
        }
    }
    let outcomes = fleet::run_each(&targets, config.deploy.parallel, &log, |target, log| {
        let session = Session::open(&config, target, false, args.change.dry_run, log)?;
        let dir = download_dir(target);
        let result = rollout::with_lock(&session, &config, "backup", "-", || {
            let containers = rollout::read_containers(&session, &rollout::stack(&session, &config))?;
            take((&session, &session), &containers, &config, dir.as_deref())
        });
        let done = format!("backup on {} done", session.name);
        rollout::conclude(&session, &config, LoggedTask::Backup, "database", &result, &done);
        Ok((backup::backups_dir(&session.paths), result?))
    });
    if !args.change.dry_run {
        for outcome in &outcomes {
            if let Ok((dir, record)) = &outcome.result {
                let host = if several { format!("{}: ", outcome.name()) } else { String::new() };
                println!("{host}{dir}/{}", record.name);
            }
        }
    }
    fleet::conclude("backup", outcomes)
}

/// `backup --cluster NAME`: the database is on the cluster's data node, and so are
/// its backups; the lock is the manager's, where the cluster's deploys take it.
fn cluster_backup(config: &Config, name: &str, args: &BackupArgs, log: &Log) -> Result<()> {
    let cluster = config.cluster(name)?;
    let data = Session::open(config, &Target::Host(cluster.data_node.clone()), false, args.change.dry_run, log)?;
    if args.list {
        let listed = backup::list(&data);
        data.close();
        print_list(&format!("cluster {name} (data node {})", cluster.data_node), &listed?, false);
        return Ok(());
    }
    if let Some(dir) = &args.download {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {} for --download", dir.display()))?;
    }
    let manager = Session::open(config, &Target::Host(cluster.manager.clone()), false, args.change.dry_run, log)?;
    let result = rollout::with_lock(&manager, config, "backup", "-", || {
        let containers = crate::release::cluster::node_containers(&data, &config.app.name)?;
        take((&manager, &data), &containers, config, args.download.as_deref())
    });
    let done = format!("backup on cluster {name} (data node {}) done", cluster.data_node);
    rollout::conclude(&manager, config, LoggedTask::Backup, "database", &result, &done);
    rollout::save_log(&data, config, LoggedTask::Backup, "database");
    data.close();
    let record = result?;
    if !args.change.dry_run {
        println!("{}: {}/{}", cluster.data_node, backup::backups_dir(&data.paths), record.name);
    }
    Ok(())
}

/// A backup of the database among `containers` on `data`, labelled with the current
/// release `history_at` records (the host itself, or a cluster's manager), copied to
/// `download_to` when given.
fn take(
    (history_at, data): (&Session, &Session),
    containers: &[ContainerState],
    config: &Config,
    download_to: Option<&Path>,
) -> Result<BackupRecord> {
    let history = rollout::read_history(history_at, &Layout::new(&history_at.paths))?;
    let version = history.current().map_or("none", |c| c.version.as_str()).to_string();
    let record = backup::take(data, config, containers, &version, "backup")?;
    if let Some(dir) = download_to
        && !data.dry_run
    {
        download(data, &record, dir)?;
    }
    Ok(record)
}

/// Copies a backup here (0600) with its record, checking the bytes that arrived
/// against the sha256 taken on the host.
fn download(session: &Session, record: &BackupRecord, dir: &Path) -> Result<()> {
    let target = dir.join(&record.name);
    let partial = dir.join(format!("{}.partial", record.name));
    let file = open_private(&partial)?;
    let mut writer = HashingWriter { file, hasher: Sha256::new() };
    let cmd = backup::read_cmd(&backup::backups_dir(&session.paths), &record.name);
    let copied = session.stream(&cmd, None, &mut writer).and_then(|bytes| {
        writer.file.flush()?;
        Ok(bytes)
    });
    let sum = crate::support::digest::hex(&writer.hasher.finalize());
    let outcome = copied.and_then(|bytes| {
        if sum != record.sha256 || bytes != record.bytes {
            bail!(
                "the copy of {} arrived damaged ({bytes} bytes, sha256 {sum}; the host's: {} bytes, {}): try again",
                record.name,
                record.bytes,
                record.sha256
            );
        }
        Ok(())
    });
    if let Err(err) = outcome {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, &target).with_context(|| format!("moving the copy to {}", target.display()))?;
    let mut json = open_private(&dir.join(format!("{}.json", record.name)))?;
    json.write_all((serde_json::to_string_pretty(record)? + "\n").as_bytes())?;
    session.log.info(format!("copied to {} ({} bytes, sha256 {sum} checked)", target.display(), record.bytes));
    Ok(())
}

fn open_private(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))
}

struct HashingWriter {
    file: std::fs::File,
    hasher: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn print_list(host: &str, records: &[BackupRecord], several: bool) {
    if records.is_empty() {
        println!("{host}: no backups");
        return;
    }
    if several {
        println!("\n{host}:");
    }
    println!("{:<40} {:<18} {:>10} {:>8}  why", "name", "version", "size", "age");
    for record in records.iter().rev() {
        println!(
            "{:<40} {:<18} {:>10} {:>8}  {}",
            record.name,
            record.version,
            human_size(record.bytes),
            record.age_seconds().map_or("?".to_string(), human_age),
            record.reason
        );
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

fn human_age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}
