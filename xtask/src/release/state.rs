//! Release state on a host: where releases live, what `release.json` and the history
//! (`deployments.json`) hold, and the deploy lock. Everything here is data and the
//! command lines that read or write it; the tasks run those through a transport.
//!
//! Layout under the deployment path:
//!
//! ```text
//! releases/<version>/docker-compose.yml, .env (0600), release.json, certs/, secrets/
//! current -> releases/<version>       the release that is running
//! deployments.json                    every deploy and rollback, oldest first
//! deploy.lock                         held while a deploy or rollback runs
//! volumes/db_data                     the database (Linux); never under releases/
//! ```

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::model::image::Image;
use crate::model::paths::DeploymentPaths;
use crate::support::command::Cmd;
use crate::support::log::now_rfc3339;

pub const COMPOSE_FILE: &str = "docker-compose.yml";
pub const ENV_FILE: &str = ".env";
pub const STATE_FILE: &str = "release.json";
pub const HISTORY_FILE: &str = "deployments.json";
pub const LOCK_FILE: &str = "deploy.lock";
pub const CURRENT_LINK: &str = "current";

/// Paths of one host's releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub base: String,
    pub releases: String,
}

impl Layout {
    pub fn new(paths: &DeploymentPaths) -> Layout {
        Layout { base: paths.base.clone(), releases: paths.releases.clone() }
    }

    pub fn release_dir(&self, version: &str) -> String {
        format!("{}/{version}", self.releases)
    }

    pub fn release_file(&self, version: &str, name: &str) -> String {
        format!("{}/{version}/{name}", self.releases)
    }

    pub fn history(&self) -> String {
        format!("{}/{HISTORY_FILE}", self.base)
    }

    pub fn lock(&self) -> String {
        format!("{}/{LOCK_FILE}", self.base)
    }

    pub fn current(&self) -> String {
        format!("{}/{CURRENT_LINK}", self.base)
    }
}

/// Where a release stands (design: DeploymentState.status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Written, not yet started or not yet healthy.
    Pending,
    /// Started by a deploy and healthy: it became `current`.
    Active,
    /// Started and never healthy; the previous release was restored.
    Failed,
    /// Restored by a rollback (manual or automatic) and healthy: it became `current`.
    RolledBack,
}

impl ReleaseStatus {
    /// Whether a release with this status was made `current`.
    pub fn ran(self) -> bool {
        matches!(self, ReleaseStatus::Active | ReleaseStatus::RolledBack)
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Active => "active",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::RolledBack => "rolled_back",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResult {
    pub service: String,
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `release.json`, and one entry of the history (design: DeploymentState).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentState {
    pub version: String,
    /// RFC 3339, when this entry was written.
    pub timestamp: String,
    /// The host's name as the deploy was given it.
    pub target_host: String,
    /// Who ran it: `user@machine`.
    #[serde(default)]
    pub deployed_by: String,
    pub images: Vec<Image>,
    /// sha256 of the rendered compose file, env file, deploy.toml, and the secrets and
    /// certificates given to the containers.
    pub configuration_hash: String,
    pub status: ReleaseStatus,
    #[serde(default)]
    pub health_checks: Vec<HealthCheckResult>,
    /// For a rollback: the release it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// The database backup taken before this release started (its name under
    /// `backups/`), or why none was (`skipped (--skip-backup)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// RFC 3339, when the deploy or rollback that wrote this entry began (its duration
    /// runs to `timestamp`). Absent in entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Compressed image bytes the deploy sent to the host (none for a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_shipped: Option<u64>,
}

/// `deployments.json`: every deploy and rollback on a host, oldest first, and the
/// other events that changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub deployments: Vec<DeploymentState>,
    /// What else was done to the host, oldest first: a broken lock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<HostEvent>,
}

/// Something done to a host that is not a release: kept in the history for the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvent {
    /// RFC 3339.
    pub timestamp: String,
    /// What was done: `lock-released`.
    pub kind: String,
    /// Who did it: `user@machine`.
    pub by: String,
    pub detail: String,
    /// How long it took, where that says something (a restore, a certificate change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl History {
    /// Reads `deployments.json` as `cat` printed it; an empty text is a new host.
    pub fn parse(text: &str, path: &str) -> Result<History> {
        if text.trim().is_empty() {
            return Ok(History::default());
        }
        serde_json::from_str(text)
            .with_context(|| format!("{path} on the host is not a deployment history; move it aside and deploy again"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the history serializes") + "\n"
    }

    /// The release that was made current last.
    pub fn current(&self) -> Option<&DeploymentState> {
        self.deployments.iter().rev().find(|d| d.status.ran())
    }

    /// `images` (a new release's, each named `name:<version>`), where an image is the
    /// same by content as the current release's image of that service, named as the
    /// current release names it: the compose file then names it unchanged, and compose
    /// keeps that service's container (a backend change restarts neither the database
    /// nor the frontend). Returns them, and the ones renamed.
    pub fn carry_over_unchanged(&self, images: Vec<Image>) -> (Vec<Image>, Vec<String>) {
        let Some(current) = self.current() else { return (images, Vec::new()) };
        let mut carried = Vec::new();
        let images = images
            .into_iter()
            .map(|image| match current.images.iter().find(|held| held.same_content(&image)) {
                Some(held) if held.reference != image.reference => {
                    carried.push(image.service.clone());
                    Image { reference: held.reference.clone(), ..image }
                }
                _ => image,
            })
            .collect();
        (images, carried)
    }

    /// The release to roll back to: the named one if it ran, else the last release
    /// that ran before the current one (with another version), among `existing`
    /// release directories.
    pub fn rollback_target(&self, to: Option<&str>, existing: &[String]) -> Result<&DeploymentState> {
        let current = self.current().map(|d| d.version.as_str());
        let listing = || {
            if existing.is_empty() { "none".to_string() } else { existing.join(", ") }
        };
        if let Some(version) = to {
            if Some(version) == current {
                bail!("{version} is already the current release; releases on the host: {}", listing());
            }
            return self
                .deployments
                .iter()
                .rev()
                .find(|d| d.version == version && d.status.ran() && existing.contains(&d.version))
                .with_context(|| {
                    format!(
                        "there is no release {version:?} that ran on the host to roll back to; releases on the \
                         host: {}",
                        listing()
                    )
                });
        }
        self.deployments
            .iter()
            .rev()
            .find(|d| d.status.ran() && Some(d.version.as_str()) != current && existing.contains(&d.version))
            .with_context(|| {
                format!(
                    "there is no earlier release to roll back to (current: {}); releases on the host: {}",
                    current.unwrap_or("none"),
                    listing()
                )
            })
    }

    /// Versions beyond the newest `keep` that ran, minus `protect`: their release
    /// directories can go. Failed releases go first; the current release and the one a
    /// rollback would restore never do, whatever `keep` is (a `keep` of 1 would
    /// otherwise strand every later automatic rollback).
    pub fn prunable(&self, existing: &[String], keep: usize, protect: &[&str]) -> Vec<String> {
        let mut kept: Vec<&str> = Vec::new();
        for entry in self.deployments.iter().rev() {
            if entry.status.ran() && !kept.contains(&entry.version.as_str()) && kept.len() < keep {
                kept.push(&entry.version);
            }
        }
        kept.extend(self.current().map(|d| d.version.as_str()));
        if let Ok(target) = self.rollback_target(None, existing) {
            kept.push(&target.version);
        }
        existing
            .iter()
            .filter(|v| !kept.contains(&v.as_str()) && !protect.contains(&v.as_str()))
            .filter(|v| self.deployments.iter().any(|d| &d.version == *v))
            .cloned()
            .collect()
    }
}

/// `deploy.lock`: who holds the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// `user@machine` that took it.
    pub who: String,
    /// RFC 3339.
    pub since: String,
    pub pid: u32,
    /// The machine the holder runs on.
    pub origin: String,
    pub version: String,
    /// deploy or rollback.
    pub operation: String,
    /// How often the holder renews the lock (touches the file), in seconds. Absent in
    /// locks written before heartbeats: those are judged by `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u32>,
}

impl LockHolder {
    pub fn new(operation: &str, version: &str) -> LockHolder {
        let origin = crate::support::project::host_name();
        LockHolder {
            who: who_am_i(),
            since: now_rfc3339(),
            pid: std::process::id(),
            origin,
            version: version.to_string(),
            operation: operation.to_string(),
            heartbeat_seconds: None,
        }
    }

    /// A holder that renews the lock at the pace `[runtime] lock_timeout_seconds` asks.
    pub fn renewing(operation: &str, version: &str, timeout_seconds: u32) -> LockHolder {
        let beat = heartbeat_interval(timeout_seconds).as_secs() as u32;
        LockHolder { heartbeat_seconds: Some(beat), ..LockHolder::new(operation, version) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the lock serializes") + "\n"
    }

    /// How long ago the lock was taken, by the clock of this machine.
    pub fn age_seconds(&self) -> Option<i64> {
        let since = time::OffsetDateTime::parse(&self.since, &time::format_description::well_known::Rfc3339).ok()?;
        Some((time::OffsetDateTime::now_utc() - since).whole_seconds())
    }

    /// Whether the holder is known to be alive: only when it runs on this machine can
    /// its process be checked.
    pub fn alive_here(&self) -> Option<bool> {
        (self.origin == crate::support::project::host_name())
            .then(|| Cmd::new("kill").args(["-0", &self.pid.to_string()]).succeeds())
    }

    /// Stale: a holder on this machine whose process is gone, at once; a holder on
    /// another machine, whose process cannot be checked, once its lock has gone
    /// `timeout_seconds` without a heartbeat (`silent_seconds`, by the host's clock:
    /// no two machines' clocks are compared), or, for a lock without heartbeats, once
    /// older than that. A live holder here is never stale.
    pub fn is_stale(&self, silent_seconds: Option<i64>, timeout_seconds: u32) -> bool {
        match self.alive_here() {
            Some(alive) => !alive,
            None => {
                let silent = if self.heartbeat_seconds.is_some() { silent_seconds } else { self.age_seconds() };
                silent.is_none_or(|age| age > i64::from(timeout_seconds))
            }
        }
    }
}

/// How often a holder renews its lock: often enough that a few missed beats fit in
/// `[runtime] lock_timeout_seconds`.
pub fn heartbeat_interval(timeout_seconds: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from((timeout_seconds / 4).clamp(1, 15)))
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {} (pid {} on {}) since {}, version {}",
            self.operation, self.who, self.pid, self.origin, self.since, self.version
        )
    }
}

/// `user@machine` of whoever runs this.
pub fn who_am_i() -> String {
    format!("{}@{}", local_user(), crate::support::project::host_name())
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| Cmd::new("id").arg("-un").output())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Creates `path` from stdin only if it does not exist (O_EXCL through `set -C`): the
/// one atomic step that takes a free lock. Exits 3 when the lock is held.
pub fn take_lock_cmd(path: &str) -> Cmd {
    let script = "mkdir -p \"$(dirname \"$1\")\" || exit 1; \
                  if ( set -C; cat > \"$1\" ) 2>/dev/null; then exit 0; fi; \
                  test -e \"$1\" && exit 3; exit 1";
    Cmd::new("sh").args(["-c", script, "take-lock"]).arg(path)
}

/// What [`takeover_lock_cmd`] printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// The lock is ours now.
    Taken,
    /// Another takeover is under way.
    Busy,
    /// The lock no longer holds what was read: someone else took or released it.
    Changed,
}

impl Takeover {
    pub fn parse(text: &str) -> Option<Takeover> {
        match text.trim() {
            "taken" => Some(Takeover::Taken),
            "busy" => Some(Takeover::Busy),
            "changed" => Some(Takeover::Changed),
            _ => None,
        }
    }
}

/// Replaces a stale lock that still holds exactly `expected` (as read, trimmed) with
/// the record on stdin, and prints a [`Takeover`]. A compare-and-swap: takeovers
/// exclude each other through `<lock>.takeover` (created O_EXCL; one that a killed
/// takeover left is removed after a minute), and the new record replaces the old in
/// one `mv`, so the lock file never disappears and no plain taker slips in between.
pub fn takeover_lock_cmd(path: &str, expected: &str) -> Cmd {
    let script = "lock=$1; guard=\"$1.takeover\"; \
                  if ! ( set -C; : > \"$guard\" ) 2>/dev/null; then \
                    [ -z \"$(find \"$guard\" -mmin +1 2>/dev/null)\" ] || rm -f \"$guard\"; echo busy; exit 0; fi; \
                  trap 'rm -f \"$guard\" \"$lock.new.$$\"' EXIT; \
                  if [ ! -e \"$lock\" ] || [ \"$(cat \"$lock\")\" != \"$2\" ]; then echo changed; exit 0; fi; \
                  cat > \"$lock.new.$$\" && mv -f \"$lock.new.$$\" \"$lock\" && echo taken";
    Cmd::new("sh").args(["-c", script, "takeover-lock"]).arg(path).arg(expected.trim())
}

/// Prints `silent <seconds since the lock file last changed, by the host's clock>`
/// and then the lock file, or nothing when there is no lock.
pub fn read_lock_cmd(path: &str) -> Cmd {
    let script = "[ -e \"$1\" ] || exit 0; \
                  changed=$(stat -c %Y \"$1\" 2>/dev/null || stat -f %m \"$1\"); \
                  echo \"silent $(( $(date +%s) - changed ))\"; cat \"$1\"";
    Cmd::new("sh").args(["-c", script, "read-lock"]).arg(path)
}

/// What [`read_lock_cmd`] printed: the seconds since the last heartbeat and the
/// file's text, or `None` when there is no lock file.
pub fn parse_lock_listing(text: &str) -> Option<(Option<i64>, String)> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let silent = first.strip_prefix("silent ")?.trim().parse().ok();
    Some((silent, rest.to_string()))
}

/// The holder's heartbeat: touches the lock while it is still ours.
pub fn renew_lock_cmd(path: &str, ours: &LockHolder) -> Cmd {
    let script = "grep -q \"$2\" \"$1\" 2>/dev/null && touch \"$1\"";
    Cmd::new("sh").args(["-c", script, "renew-lock"]).arg(path).arg(lock_marker(ours))
}

/// Releases the lock if it is still ours (the pid and origin match what we wrote).
pub fn release_lock_cmd(path: &str, ours: &LockHolder) -> Cmd {
    let script = "grep -q \"$2\" \"$1\" 2>/dev/null && rm -f \"$1\"; exit 0";
    Cmd::new("sh").args(["-c", script, "release-lock"]).arg(path).arg(lock_marker(ours))
}

fn lock_marker(holder: &LockHolder) -> String {
    format!("\"pid\":{},\"origin\":{}", holder.pid, serde_json::to_string(&holder.origin).unwrap_or_default())
}

/// Prints a file, or nothing when it does not exist.
pub fn read_cmd(path: &str) -> Cmd {
    Cmd::new("sh").args(["-c", "cat \"$1\" 2>/dev/null; exit 0", "read"]).arg(path)
}

/// Removes the directories of secrets and certificates (`<config>/secrets-<digest>`,
/// `certs-<digest>`) that no release left in `releases_dir` names in its `.env` (one
/// host) or its `stack.yml` (a cluster's manager).
pub fn remove_unused_content_dirs_cmd(config_dir: &str, releases_dir: &str) -> Cmd {
    let script = "cd \"$1\" 2>/dev/null || exit 0; \
                  for d in secrets-* certs-*; do [ -d \"$d\" ] || continue; \
                  grep -qsF \"/$d\" \"$2\"/*/.env \"$2\"/*/stack.yml || rm -rf -- \"$d\"; done; exit 0";
    Cmd::new("sh").args(["-c", script, "remove-unused-content"]).arg(config_dir).arg(releases_dir)
}

/// Lists the release directories, one version per line.
pub fn list_releases_cmd(layout: &Layout) -> Cmd {
    Cmd::new("sh")
        .args([
            "-c",
            "cd \"$1\" 2>/dev/null || exit 0; for d in *; do [ -d \"$d\" ] && echo \"$d\"; done; exit 0",
            "ls",
        ])
        .arg(&layout.releases)
}

/// Points `current` at a release (a new symlink renamed over the old one: atomic).
pub fn point_current_cmd(layout: &Layout, version: &str) -> Cmd {
    let script = "ln -sfn \"$2\" \"$1.new\" && mv -fT \"$1.new\" \"$1\" 2>/dev/null || \
                  { rm -f \"$1\"; mv -f \"$1.new\" \"$1\"; }";
    Cmd::new("sh").args(["-c", script, "point-current"]).arg(layout.current()).arg(layout.release_dir(version))
}

/// Removes release directories (never the volumes, which live outside releases/).
/// Only a directory this tool wrote goes: a direct child of `releases/` named by a
/// valid version and holding its `release.json`; anything else is left and named.
pub fn remove_releases_cmd(layout: &Layout, versions: &[String]) -> Cmd {
    let script = "releases=$1; shift; for v in \"$@\"; do d=\"$releases/$v\"; \
                  if [ -d \"$d\" ] && [ ! -L \"$d\" ] && [ -f \"$d/release.json\" ]; then rm -rf -- \"$d\"; \
                  else echo \"not a release written by cultivate, left alone: $d\" >&2; fi; done";
    let mut cmd = Cmd::new("sh").args(["-c", script, "remove-releases"]).arg(&layout.releases);
    for version in versions.iter().filter(|v| crate::model::image::validate_tag(v).is_ok()) {
        cmd = cmd.arg(version);
    }
    cmd
}

/// The name of a task's log on the host: `<task>-<RFC 3339 time without
/// colons>-<version>.log`.
pub fn log_file_name(task: LoggedTask, timestamp: &str, version: &str) -> String {
    format!("{task}-{}-{version}.log", timestamp.replace(':', ""))
}

/// Whether `name` is a log this tool wrote ([`log_file_name`] of a [`LoggedTask`]):
/// pruning removes nothing else, whatever else shares the log directory.
pub fn is_own_log_name(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".log") else { return false };
    let Some(rest) = LoggedTask::ALL.iter().find_map(|task| rest.strip_prefix(task.name())?.strip_prefix('-')) else {
        return false;
    };
    // 2026-12-03T074230.099192071Z-<version>
    let Some((stamp, version)) = rest.split_once('Z').and_then(|(s, v)| Some((s, v.strip_prefix('-')?))) else {
        return false;
    };
    let (whole, fraction) = stamp.split_once('.').unwrap_or((stamp, "1"));
    let digits = |text: &str, count: usize| text.len() == count && text.bytes().all(|b| b.is_ascii_digit());
    let shape = whole.len() == 17
        && digits(&whole[0..4], 4)
        && &whole[4..5] == "-"
        && digits(&whole[5..7], 2)
        && &whole[7..8] == "-"
        && digits(&whole[8..10], 2)
        && &whole[10..11] == "T"
        && digits(&whole[11..17], 6);
    shape
        && (1..=9).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && crate::model::image::validate_tag(version).is_ok()
}

/// The tasks that write a log on the host. Their logs are the only files ever pruned
/// there, so each task that writes one is named here (a name left out would leave its
/// logs to pile up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoggedTask {
    Deploy,
    Rollback,
    Certs,
    Backup,
    Restore,
}

impl LoggedTask {
    pub const ALL: [LoggedTask; 5] =
        [LoggedTask::Deploy, LoggedTask::Rollback, LoggedTask::Certs, LoggedTask::Backup, LoggedTask::Restore];

    pub fn name(self) -> &'static str {
        match self {
            LoggedTask::Deploy => "deploy",
            LoggedTask::Rollback => "rollback",
            LoggedTask::Certs => "certs",
            LoggedTask::Backup => "backup",
            LoggedTask::Restore => "restore",
        }
    }
}

impl fmt::Display for LoggedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lists the log directory's regular files, newest first (`ls -t`), one per line.
pub fn list_logs_cmd(dir: &str) -> Cmd {
    Cmd::new("sh")
        .args(["-c", "cd \"$1\" 2>/dev/null || exit 0; ls -1t -- . 2>/dev/null; exit 0", "list-logs"])
        .arg(dir)
}

/// Of the `listing` (newest first), this tool's logs beyond the newest `keep`.
pub fn prunable_logs(listing: &str, keep: usize) -> Vec<String> {
    listing.lines().map(str::trim).filter(|name| is_own_log_name(name)).skip(keep).map(String::from).collect()
}

/// Removes the named logs from `dir`, each only if it is a regular file (no symlink)
/// whose name is one this tool writes.
pub fn remove_logs_cmd(dir: &str, names: &[String]) -> Cmd {
    let script = "cd \"$1\" || exit 1; shift; for f in \"$@\"; do [ -f \"$f\" ] && [ ! -L \"$f\" ] && rm -f -- \"$f\"; done; exit 0";
    let mut cmd = Cmd::new("sh").args(["-c", script, "remove-logs"]).arg(dir);
    for name in names.iter().filter(|n| is_own_log_name(n) && !n.contains('/')) {
        cmd = cmd.arg(name);
    }
    cmd
}

#[cfg(test)]
mod tests;
