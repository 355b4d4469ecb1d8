//! Database backups on a host, and restoring one.
//!
//! A backup is `pg_dump --format=custom`, run as the `postgres` OS user inside the
//! database container over its socket (peer authentication; one consistent snapshot),
//! streamed to `<deployment>/backups/<time>-<version>.dump` on the host (0600, the
//! directory 0700, owned by the login user; a restore streams it back through the
//! database container's stdin, so no other user ever reads it). Beside it,
//! `<name>.json` records what it is: the release version whose data it holds, when,
//! why, its size and sha256, the database's name. Only files named so are ever pruned
//! (the newest `[backup] keep` stay).
//!
//! A restore goes into a fresh database beside the live one, is checked there, and
//! only then takes the live one's name (two renames in one transaction); the data
//! before stays under another name until the backend is healthy on the restored data,
//! and is kept as one more backup.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::host::session::{Effect, Session};
use crate::model::config::Config;
use crate::model::image::Image;
use crate::model::paths::DeploymentPaths;
use crate::model::service::Service;
use crate::release::rollout::{self, OnInterrupt};
use crate::release::stack::{ContainerState, Stack};
use crate::release::state::History;
use crate::support::command::Cmd;

/// The database container's socket directory (database/postgresql.conf).
pub const SOCKET_DIR: &str = "/var/run/postgresql";
/// What a backup's file name ends with.
pub const DUMP_SUFFIX: &str = ".dump";

/// `<deployment>/backups`.
pub fn backups_dir(paths: &DeploymentPaths) -> String {
    format!("{}/backups", paths.base)
}

/// `<name>.json` beside each backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The file's name under `backups/`.
    pub name: String,
    /// The release that ran on this data when it was taken.
    pub version: String,
    /// RFC 3339.
    pub created: String,
    /// Why: `before deploy of V`, `backup`, `before restore of NAME`.
    pub reason: String,
    pub by: String,
    pub database: String,
    pub bytes: u64,
    pub sha256: String,
}

impl BackupRecord {
    /// Seconds since it was taken, by this machine's clock.
    pub fn age_seconds(&self) -> Option<i64> {
        let created =
            time::OffsetDateTime::parse(&self.created, &time::format_description::well_known::Rfc3339).ok()?;
        Some((time::OffsetDateTime::now_utc() - created).whole_seconds())
    }
}

/// A backup's file name: the time (sortable, UTC) and the release version.
pub fn backup_name(created: &time::OffsetDateTime, version: &str) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        created.year(),
        u8::from(created.month()),
        created.day(),
        created.hour(),
        created.minute(),
        created.second()
    );
    format!("{stamp}-{version}{DUMP_SUFFIX}")
}

/// Whether `name` is a backup file name this tool writes (and so may prune, or restore
/// from): `<yyyymmddThhmmssZ>-<version>.dump`, nothing that leaves the directory.
pub fn is_backup_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(DUMP_SUFFIX) else { return false };
    let (stamp, version) = stem.split_at_checked(16).unwrap_or(("", ""));
    let stamp_ok = stamp.len() == 16
        && stamp.char_indices().all(|(i, c)| match i {
            8 => c == 'T',
            15 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    stamp_ok
        && version.strip_prefix('-').is_some_and(|v| {
            !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// Dumps `database` from the database container `container` into `<dir>/<name>`:
/// written to `<name>.partial` and renamed once complete, so a failed or cut dump
/// leaves no file that looks like a backup. Prints `<sha256> <bytes>`.
pub fn dump_cmd(program: &str, container: &str, database: &str, dir: &str, name: &str) -> Cmd {
    let script = "set -e; umask 077; mkdir -p \"$4\"; chmod 700 \"$4\"; cd \"$4\"; rm -f ./*.partial; \
        trap 'rm -f \"$5.partial\"' EXIT; \
        \"$1\" exec \"$2\" pg_dump --format=custom --host=\"$6\" --username=postgres --dbname=\"$3\" > \"$5.partial\"; \
        [ -s \"$5.partial\" ] || { echo 'pg_dump wrote nothing' >&2; exit 1; }; \
        sum=$( (sha256sum \"$5.partial\" 2>/dev/null || shasum -a 256 \"$5.partial\") | cut -d' ' -f1); \
        size=$(wc -c < \"$5.partial\" | tr -d ' '); \
        mv \"$5.partial\" \"$5\"; echo \"$sum $size\"";
    Cmd::new("sh").args(["-c", script, "backup", program, container, database, dir, name, SOCKET_DIR])
}

/// Every backup record in `dir`, one JSON document per line; for a backup without its
/// record (a run cut off between the dump and the record), `unrecorded <name> <bytes>`.
pub fn list_cmd(dir: &str) -> Cmd {
    let script = "[ -d \"$1\" ] || exit 0; cd \"$1\" || exit 1; for f in *.dump; do [ -f \"$f\" ] || continue; \
        if [ -f \"$f.json\" ]; then cat \"$f.json\"; echo; else echo \"unrecorded $f $(wc -c < \"$f\" | tr -d ' ')\"; fi; \
        done; exit 0";
    Cmd::new("sh").args(["-c", script, "list-backups", dir])
}

/// Reads `list_cmd`'s output; lines that are neither a record nor a backup without
/// one are left out. A backup without its record is listed from its name, its
/// checksum unknown (a restore then relies on `pg_restore --list` alone).
pub fn parse_list(text: &str) -> Vec<BackupRecord> {
    let mut records: Vec<BackupRecord> = text
        .lines()
        .filter_map(|line| match line.trim().strip_prefix("unrecorded ") {
            Some(rest) => unrecorded(rest),
            None => serde_json::from_str::<BackupRecord>(line.trim()).ok(),
        })
        .filter(|record| is_backup_name(&record.name))
        .collect();
    records.sort_by(|a, b| a.name.cmp(&b.name));
    records
}

fn unrecorded(rest: &str) -> Option<BackupRecord> {
    let (name, bytes) = rest.rsplit_once(' ')?;
    let stamp = name.get(..16)?;
    let created = format!(
        "{}-{}-{}T{}:{}:{}Z",
        stamp.get(..4)?,
        stamp.get(4..6)?,
        stamp.get(6..8)?,
        stamp.get(9..11)?,
        stamp.get(11..13)?,
        stamp.get(13..15)?
    );
    let version = name.strip_suffix(DUMP_SUFFIX)?.get(17..)?.to_string();
    Some(BackupRecord {
        name: name.to_string(),
        version,
        created,
        reason: "(no record: cut off before it was recorded)".to_string(),
        by: String::new(),
        database: String::new(),
        bytes: bytes.parse().ok()?,
        sha256: String::new(),
    })
}

/// The backups beyond the newest `keep` (names sort by time).
pub fn prunable(records: &[BackupRecord], keep: usize) -> Vec<String> {
    let excess = records.len().saturating_sub(keep);
    records.iter().take(excess).map(|r| r.name.clone()).collect()
}

/// Removes the named backups and their records (only names this tool writes).
pub fn remove_cmd(dir: &str, names: &[String]) -> Cmd {
    let script = "d=$1; shift; for n in \"$@\"; do rm -f \"$d/$n\" \"$d/$n.json\"; done";
    Cmd::new("sh").args(["-c", script, "prune-backups", dir]).args(names.iter().filter(|n| is_backup_name(n)).cloned())
}

/// The sha256 of `<dir>/<name>` as the host computes it.
pub fn sha256_cmd(dir: &str, name: &str) -> Cmd {
    let script = "f=\"$1/$2\"; [ -f \"$f\" ] || { echo \"no backup $2 in $1\" >&2; exit 1; }; \
        (sha256sum \"$f\" 2>/dev/null || shasum -a 256 \"$f\") | cut -d' ' -f1";
    Cmd::new("sh").args(["-c", script, "backup-sha256", dir, name])
}

/// `cat` of a backup, for `--download`.
pub fn read_cmd(dir: &str, name: &str) -> Cmd {
    Cmd::new("cat").arg(format!("{dir}/{name}"))
}

/// `pg_restore --list` of `<dir>/<name>` inside the database container: what the dump
/// holds, or an error when it is not a custom-format dump.
pub fn contents_cmd(program: &str, container: &str, dir: &str, name: &str) -> Cmd {
    let script = "\"$1\" exec -i \"$2\" pg_restore --list < \"$3/$4\"";
    Cmd::new("sh").args(["-c", script, "backup-contents", program, container, dir, name])
}

/// The database a dump was taken of, from its `pg_restore --list` header
/// (`;     dbname: cultivate`).
pub fn dumped_database(listing: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let rest = line.strip_prefix(';')?.trim_start().strip_prefix("dbname:")?;
        Some(rest.trim().to_string())
    })
}

/// SQL run as the superuser in the database container: each statement on its own
/// (CREATE and DROP DATABASE refuse to run in a transaction), stopping at the first
/// error.
pub fn psql_cmd(program: &str, container: &str, database: &str, statements: &[String]) -> Cmd {
    let mut cmd = Cmd::new(program).args([
        "exec",
        container,
        "psql",
        "--no-psqlrc",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--set=ON_ERROR_STOP=1",
        &format!("--host={SOCKET_DIR}"),
        "--username=postgres",
        &format!("--dbname={database}"),
    ]);
    for statement in statements {
        cmd = cmd.args(["--command", statement.as_str()]);
    }
    cmd
}

/// Restores `<dir>/<name>` into `target` (a fresh, empty database): every object owned
/// by `role`, the backend's, as a deploy made them; the first error stops it.
pub fn pg_restore_cmd(program: &str, container: &str, dir: &str, name: &str, target: &str, role: &str) -> Cmd {
    let script = "\"$1\" exec -i \"$2\" pg_restore --host=\"$7\" --username=postgres --dbname=\"$5\" --no-owner \
        --no-privileges --role=\"$6\" --exit-on-error --single-transaction < \"$3/$4\"";
    Cmd::new("sh").args(["-c", script, "restore", program, container, dir, name, target, role, SOCKET_DIR])
}

/// The running database container of the stack.
pub fn database_container(containers: &[ContainerState]) -> Option<&ContainerState> {
    containers.iter().find(|c| c.service == "database" && c.status == "running")
}

/// Takes a backup of the database the stack runs, labelled with `version` (the release
/// whose data it is) and `reason`, then prunes to `[backup] keep`. Returns its record.
pub fn take(
    session: &Session,
    config: &Config,
    containers: &[ContainerState],
    version: &str,
    reason: &str,
) -> Result<BackupRecord> {
    let database = database_container(containers)
        .with_context(|| format!("no database container runs on {}: there is nothing to back up", session.name))?;
    let dir = backups_dir(&session.paths);
    let created = time::OffsetDateTime::now_utc();
    let name = backup_name(&created, version);
    let program = session.runtime.program();
    let out = session
        .run(Effect::Change, &dump_cmd(program, &database.name, &config.database.name, &dir, &name))
        .with_context(|| format!("backing up the database {} on {}", config.database.name, session.name))?;
    let (sha256, bytes) = match out.trim().split_once(' ') {
        Some((sum, size)) => (sum.to_string(), size.trim().parse().unwrap_or(0)),
        None if session.dry_run => (String::new(), 0),
        None => bail!("the backup on {} reported {out:?}, not its checksum and size", session.name),
    };
    let record = BackupRecord {
        name: name.clone(),
        version: version.to_string(),
        created: created
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| crate::support::log::now_rfc3339()),
        reason: reason.to_string(),
        by: crate::release::state::who_am_i(),
        database: config.database.name.clone(),
        bytes,
        sha256,
    };
    let json = serde_json::to_string(&record)? + "\n";
    session.upload(json.as_bytes(), &format!("{dir}/{name}.json"), 0o600)?;
    if !session.dry_run {
        session.log.info(format!("backup {dir}/{name} ({:.1} MB, {reason})", record.bytes as f64 / 1e6));
    }
    let records = list(session)?;
    let old = prunable(&records, config.backup.keep as usize);
    if !old.is_empty() {
        session.run(Effect::Change, &remove_cmd(&dir, &old))?;
        session.log.info(format!(
            "removed {} old backup(s) beyond `[backup] keep` = {}",
            old.len(),
            config.backup.keep
        ));
    }
    Ok(record)
}

/// The backup a deploy takes before a release whose backend differs from the running
/// one's (a new backend may migrate the schema): its name, for the release's record,
/// or why there is none (`skip`: `--skip-backup`). None on a first deploy or when the
/// backend is the same. A failed backup is an error: the deploy stops there, before
/// anything changed.
pub fn before_release(
    session: &Session,
    config: &Config,
    history: &History,
    running: &[ContainerState],
    images: &[Image],
    version: &str,
    skip: bool,
) -> Result<Option<String>> {
    let Some(current) = history.current() else { return Ok(None) };
    let backend =
        |images: &[Image]| images.iter().find(|i| i.service == Service::BackendApi.name()).map(|i| i.reference.clone());
    if backend(images) == backend(&current.images) || database_container(running).is_none() {
        return Ok(None);
    }
    if skip {
        session.log.warn(format!(
            "no backup of the database before {version} starts a new backend (--skip-backup); recorded in the history"
        ));
        return Ok(Some("skipped (--skip-backup)".to_string()));
    }
    let record = take(session, config, running, &current.version, &format!("before deploy of {version}")).context(
        "the backup before the new backend failed, so nothing was changed; fix it, or deploy with --skip-backup",
    )?;
    Ok(Some(record.name))
}

/// The host's backups, oldest first.
pub fn list(session: &Session) -> Result<Vec<BackupRecord>> {
    let text = session.run(Effect::Read, &list_cmd(&backups_dir(&session.paths)))?;
    Ok(parse_list(&text))
}

/// Checks that `record`'s file is intact (its sha256 on the host) and a dump of this
/// app's database (`pg_restore --list`, inside the database container). Changes nothing.
pub fn check(session: &Session, config: &Config, database: &str, record: &BackupRecord) -> Result<()> {
    let dir = backups_dir(&session.paths);
    let sum = session.run(Effect::Read, &sha256_cmd(&dir, &record.name))?;
    if !record.sha256.is_empty() && sum.trim() != record.sha256 {
        bail!(
            "the backup {dir}/{} is corrupt: its sha256 is {} but was {} when it was taken; choose another with \
             `--from` (`cargo xtask backup --list --host {}`)",
            record.name,
            sum.trim(),
            record.sha256,
            session.name
        );
    }
    let program = session.runtime.program();
    let (ok, listing, err) = session.try_run(Effect::Read, &contents_cmd(program, database, &dir, &record.name))?;
    if !ok {
        bail!(
            "{dir}/{} is not a PostgreSQL backup pg_restore can read ({}); choose another with `--from`",
            record.name,
            err.lines().last().unwrap_or("no reason given")
        );
    }
    match dumped_database(&listing) {
        Some(name) if name == config.database.name => Ok(()),
        other => bail!(
            "{dir}/{} is a backup of the database {}, not of this app's `{}` (`[database] name`): refused",
            record.name,
            other.as_deref().unwrap_or("(unnamed)"),
            config.database.name
        ),
    }
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The data from before, kept as a backup.
    pub before: BackupRecord,
    /// Tables in the restored database.
    pub tables: usize,
}

/// How a restore stops the backend and brings the release back: compose on one host,
/// Swarm on a cluster.
pub trait BackendControl {
    /// Stops every backend task, so no write comes in while the data is replaced.
    fn stop_backend(&self) -> Result<()>;
    /// Starts the release again and waits (bounded) until it serves; `Ok(Err(why))`
    /// when it does not.
    fn start_and_wait(&self) -> Result<std::result::Result<(), String>>;
}

/// A single host's stack, run by compose from its release directory.
pub struct ComposeBackend<'a> {
    pub session: &'a Session<'a>,
    pub stack: &'a Stack,
    pub config: &'a Config,
    pub release_dir: &'a str,
}

impl BackendControl for ComposeBackend<'_> {
    fn stop_backend(&self) -> Result<()> {
        let containers = rollout::read_containers(self.session, self.stack)?;
        for backend in containers.iter().filter(|c| c.service == "backend" && c.status == "running") {
            let stop = self.session.runtime_cmd(["stop", "--time", "30", backend.name.as_str()]);
            self.session.run(Effect::Change, &stop)?;
        }
        Ok(())
    }

    fn start_and_wait(&self) -> Result<std::result::Result<(), String>> {
        let started =
            rollout::start_and_wait(self.session, self.stack, self.config, self.release_dir, OnInterrupt::Finish)?;
        Ok(started.map(|_| ()).map_err(|failure| failure.reason))
    }
}

/// Restores `record` into the stack's database (design: the data's one way back).
///
/// In order, stopping at the first failure: the file is checked (sha256, a dump of this
/// database); the backend stops (the frontend answers that the API is unavailable), so
/// no write is lost; the data now is backed up; the dump is restored into a fresh
/// database beside the live one and checked (it has tables); the restored database
/// takes the live one's name, the live one another (one transaction); the release
/// starts again and must get healthy, and then the data from before is dropped (its
/// backup stays). Until the swap, a failure leaves the live database as it was and
/// starts the backend again; after it, the swap is undone. Seen through once started:
/// a Ctrl-C does not stop it.
///
/// `session` is where the database runs (and its backups are); `containers` the
/// stack's containers there; `backend` stops and starts the backend.
pub fn restore(
    session: &Session,
    config: &Config,
    containers: &[ContainerState],
    backend: &dyn BackendControl,
    version: &str,
    record: &BackupRecord,
) -> Result<Restored> {
    let database = database_container(containers)
        .with_context(|| format!("no database container runs on {}: deploy first", session.name))?
        .name
        .clone();
    check(session, config, &database, record)?;
    let _critical = crate::support::interrupt::Critical::enter();
    let program = session.runtime.program();
    let dir = backups_dir(&session.paths);
    let live = config.database.name.as_str();
    let role = config.database.user.as_str();
    // Names PostgreSQL accepts (validated identifiers, suffixes of letters and digits).
    let scratch = format!("{live}_restoring");
    let old = format!("{live}_before_{}", record.name.get(..15).unwrap_or("restore").to_ascii_lowercase());
    let sql = |name: &str, statements: &[String]| -> Result<String> {
        session.run(Effect::Change, &psql_cmd(program, &database, name, statements))
    };
    let restart = || backend.start_and_wait();

    // The backend stops first, so the backup of the data now holds every write.
    if let Err(err) = backend.stop_backend() {
        let _ = restart();
        return Err(err.context(format!("stopping the backend; the database on {} is unchanged", session.name)));
    }
    let before = match take(session, config, containers, version, &format!("before restore of {}", record.name)) {
        Ok(before) => before,
        Err(err) => {
            let _ = restart();
            return Err(err.context(format!("the database on {} is unchanged", session.name)));
        }
    };

    // A fresh database, the dump restored into it and checked: the live one untouched.
    sql(
        "postgres",
        &[
            format!("DROP DATABASE IF EXISTS \"{scratch}\""),
            format!("CREATE DATABASE \"{scratch}\" OWNER \"{role}\""),
            format!("REVOKE ALL ON DATABASE \"{scratch}\" FROM PUBLIC"),
        ],
    )
    .context("creating a fresh database to restore into")
    .inspect_err(|_| {
        let _ = restart();
    })?;
    let drop_scratch = || {
        let _ = sql("postgres", &[format!("DROP DATABASE IF EXISTS \"{scratch}\"")]);
    };
    let restored = session
        .run(Effect::Change, &pg_restore_cmd(program, &database, &dir, &record.name, &scratch, role))
        .and_then(|_| sql(&scratch, &["SELECT count(*) FROM pg_tables WHERE schemaname = 'public'".to_string()]));
    let tables = match restored {
        Ok(count) => count.trim().parse::<usize>().unwrap_or(0),
        Err(err) => {
            drop_scratch();
            let _ = restart();
            return Err(
                err.context(format!("restoring {} failed; the database on {} is unchanged", record.name, session.name))
            );
        }
    };
    if tables == 0 && !session.dry_run {
        drop_scratch();
        let _ = restart();
        bail!("{} restored no table; the database on {} is unchanged", record.name, session.name);
    }

    // The restored database takes the live one's name.
    let swap = |from: &str, to: &str, aside: &str| {
        sql(
            "postgres",
            &[
                format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ('{from}', '{to}') AND pid <> pg_backend_pid()"
                ),
                format!("ALTER DATABASE \"{to}\" RENAME TO \"{aside}\"; ALTER DATABASE \"{from}\" RENAME TO \"{to}\""),
            ],
        )
    };
    if let Err(err) = swap(&scratch, live, &old) {
        drop_scratch();
        let _ = restart();
        return Err(err.context(format!("the database on {} is unchanged", session.name)));
    }
    session.log.info(format!("{} restored into {live} ({tables} tables); starting the backend", record.name));
    match restart()? {
        Ok(_) => {
            sql("postgres", &[format!("DROP DATABASE IF EXISTS \"{old}\"")])?;
            Ok(Restored { before, tables })
        }
        Err(failure) => {
            // Undo: the data from before takes its name back, the restored one is dropped.
            let _ = backend.stop_backend();
            swap(&old, live, &scratch)?;
            drop_scratch();
            let again = restart()?;
            bail!(
                "the backend did not get healthy on the restored data ({}); the data from before is back{}",
                failure,
                if again.is_ok() {
                    " and serving"
                } else {
                    ", but the release is not healthy: see `cargo xtask status`"
                }
            )
        }
    }
}

#[cfg(test)]
mod tests;
