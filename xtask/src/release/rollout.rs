//! What deploy and rollback share once a release is on the host: the deploy lock,
//! starting a release and waiting until every service is healthy (Properties 23, 31),
//! the failing containers' logs (Property 33), and the history and `current` pointer.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::host::session::{Effect, Session, with_backoff};
use crate::model::config::Config;
use crate::model::image::Image;
use crate::model::service::Service;
use crate::release::stack::{ContainerState, Stack};
use crate::release::state::{self as release, DeploymentState, HealthCheckResult, History, Layout, LockHolder};
use crate::support::command::Cmd;
use crate::support::interrupt;
use crate::support::log::now_rfc3339;

/// The deploy lock, held until dropped (released on every path out of a task,
/// except a killed process: then the next deploy finds it stale).
pub struct Lock<'s, 'a> {
    session: &'s Session<'a>,
    path: String,
    holder: LockHolder,
}

/// How many times taking the lock looks again after a takeover found it changed or
/// another takeover under way.
const LOCK_ATTEMPTS: u32 = 20;

impl<'s, 'a> Lock<'s, 'a> {
    /// Takes the lock, or refuses with the holder's details. A stale lock (its holder's
    /// process gone from this machine, or a holder elsewhere silent for `[runtime]
    /// lock_timeout_seconds`), or a lock file a killed taker left without its record, is
    /// taken over with a warning, atomically: of several takers exactly one wins.
    pub fn take(session: &'s Session<'a>, config: &Config, operation: &str, version: &str) -> Result<Lock<'s, 'a>> {
        let layout = Layout::new(&session.paths);
        let path = layout.lock();
        let timeout = config.runtime.lock_timeout_seconds;
        let holder = LockHolder::renewing(operation, version, timeout);
        let record = holder.to_json();
        if session.dry_run {
            session.run(Effect::Change, &release::take_lock_cmd(&path))?;
            return Ok(Lock { session, path, holder });
        }
        // Taking failed and no lock file was there: released meanwhile (look again),
        // or the file cannot be created at all (the error, should it last).
        let mut not_created = None;
        for _ in 0..LOCK_ATTEMPTS {
            let cmd = release::take_lock_cmd(&path);
            session.log.debug(format!("$ {cmd}"));
            let taken = session.transport.output_with_input(&cmd, &mut record.as_bytes());
            let Err(failed) = taken else {
                session.log.info(format!("took the deploy lock {path}"));
                return Ok(Lock { session, path, holder });
            };
            let text = match read_holder(session, &path)? {
                HeldBy::Holder { text, silent_seconds, holder: current } => {
                    if !current.is_stale(silent_seconds, timeout) {
                        bail!(
                            "{} is locked: a {current}. Wait for it to finish. If that process is gone (on another \
                             machine), the lock is taken over once it has gone {timeout} s without a heartbeat \
                             (`[runtime] lock_timeout_seconds`), or break it with `cargo xtask lock --host {} \
                             --release`.",
                            session.name,
                            session.name
                        );
                    }
                    session.log.warn(format!("taking over a stale deploy lock on {}: {current}", session.name));
                    text
                }
                HeldBy::Nothing => {
                    not_created = Some(failed);
                    continue;
                }
                HeldBy::Unreadable(text) => {
                    let what = if text.trim().is_empty() {
                        "is empty".to_string()
                    } else {
                        format!("holds no lock record ({:?})", text.chars().take(80).collect::<String>())
                    };
                    session.log.warn(format!(
                        "{path} on {} {what}: left by a deploy killed while taking the lock; taking it over",
                        session.name
                    ));
                    text
                }
            };
            not_created = None;
            let takeover = release::takeover_lock_cmd(&path, &text);
            session.log.debug(format!("$ {takeover}"));
            let answer = session
                .transport
                .output_with_input(&takeover, &mut record.as_bytes())
                .with_context(|| format!("could not take over {path} on {}", session.name))?;
            match release::Takeover::parse(&answer) {
                Some(release::Takeover::Taken) => {
                    session.log.info(format!("took over the deploy lock {path}"));
                    return Ok(Lock { session, path, holder });
                }
                // Another taker is at it, or was first: look again.
                Some(release::Takeover::Busy) => std::thread::sleep(Duration::from_millis(100)),
                Some(release::Takeover::Changed) => {}
                None => bail!("could not take over {path} on {}: `{takeover}` printed {answer:?}", session.name),
            }
        }
        if let Some(failed) = not_created {
            return Err(failed).with_context(|| format!("could not create {path}"));
        }
        bail!("could not take the deploy lock {path} on {}: it kept changing hands", session.transport)
    }
}

/// What the lock file says when taking it failed.
enum HeldBy {
    /// A lock record: the file's text, the seconds since its last heartbeat, its holder.
    Holder { text: String, silent_seconds: Option<i64>, holder: LockHolder },
    /// No lock file: it was released meanwhile, or it cannot be created.
    Nothing,
    /// A lock file without a record, still so after [`LOCK_WRITE_GRACE`].
    Unreadable(String),
}

/// A taker creates the lock file and writes its record at once: one seen empty or
/// half-written is given this long before it counts as a killed taker's.
const LOCK_WRITE_GRACE: Duration = Duration::from_secs(1);

/// The lock file's holder as the host shows it now.
pub fn read_lock(session: &Session, path: &str) -> Result<Option<(Option<i64>, String)>> {
    let listing = session.run(Effect::Read, &release::read_lock_cmd(path))?;
    Ok(release::parse_lock_listing(&listing))
}

fn read_holder(session: &Session, path: &str) -> Result<HeldBy> {
    let parse = |text: &str| serde_json::from_str::<LockHolder>(text.trim()).ok();
    let Some((silent, text)) = read_lock(session, path)? else { return Ok(HeldBy::Nothing) };
    if let Some(holder) = parse(&text) {
        return Ok(HeldBy::Holder { text, silent_seconds: silent, holder });
    }
    std::thread::sleep(LOCK_WRITE_GRACE);
    let Some((silent, text)) = read_lock(session, path)? else { return Ok(HeldBy::Nothing) };
    Ok(match parse(&text) {
        Some(holder) => HeldBy::Holder { text, silent_seconds: silent, holder },
        None => HeldBy::Unreadable(text),
    })
}

/// The deploy lock as `cargo xtask lock` shows it.
#[derive(Debug, serde::Serialize)]
pub struct LockView {
    pub path: String,
    /// The lock file's text, as read.
    pub text: String,
    /// Its holder, when the text is a lock record.
    pub holder: Option<LockHolder>,
    /// Seconds since the holder last renewed it, by the host's clock.
    pub silent_seconds: Option<i64>,
    /// Whether a deploy would take it over now.
    pub stale: bool,
}

/// Who holds the host's deploy lock, if anyone.
pub fn inspect_lock(session: &Session, config: &Config) -> Result<Option<LockView>> {
    let path = Layout::new(&session.paths).lock();
    let Some((silent_seconds, text)) = read_lock(session, &path)? else { return Ok(None) };
    let holder = serde_json::from_str::<LockHolder>(text.trim()).ok();
    let stale = holder.as_ref().is_none_or(|h| h.is_stale(silent_seconds, config.runtime.lock_timeout_seconds));
    Ok(Some(LockView { path, text, holder, silent_seconds, stale }))
}

/// Breaks the lock `view` showed, provided it is still the same: takes it over, records
/// the break in the host's history, and releases it. A holder known to be running (on
/// this machine) is refused: stop it first.
pub fn break_lock(session: &Session, config: &Config, view: &LockView) -> Result<()> {
    if let Some(holder) = &view.holder
        && holder.alive_here() == Some(true)
    {
        bail!(
            "the lock on {} is held by process {} on this machine, which is running: stop it first (`kill {}`), \
             then release the lock if it is still there",
            session.name,
            holder.pid,
            holder.pid
        );
    }
    let ours = LockHolder::renewing("lock release", "-", config.runtime.lock_timeout_seconds);
    let takeover = release::takeover_lock_cmd(&view.path, &view.text);
    let answer = session.transport.output_with_input(&takeover, &mut ours.to_json().as_bytes())?;
    if release::Takeover::parse(&answer) != Some(release::Takeover::Taken) {
        bail!(
            "the lock on {} changed while it was being released ({answer}): look again with `cargo xtask lock --host {}`",
            session.name,
            session.name
        );
    }
    let lock = Lock { session, path: view.path.clone(), holder: ours };
    let layout = Layout::new(&session.paths);
    let detail = match &view.holder {
        Some(holder) => format!("released the deploy lock held by a {holder}"),
        None => format!("released a deploy lock file without a record ({:?})", view.text.trim()),
    };
    record_event(session, &layout, "lock-released", &detail, None)?;
    drop(lock);
    session.log.info(format!("{detail} on {}; recorded in {}", session.name, layout.history()));
    Ok(())
}

impl Drop for Lock<'_, '_> {
    fn drop(&mut self) {
        let cmd = release::release_lock_cmd(&self.path, &self.holder);
        match self.session.try_run(Effect::Change, &cmd) {
            Ok(_) => self.session.log.debug(format!("released the deploy lock {}", self.path)),
            Err(err) => self.session.log.warn(format!("could not release the deploy lock {}: {err:#}", self.path)),
        }
    }
}

/// Runs `work` holding the deploy lock, released however `work` ends. Meanwhile a
/// heartbeat renews the lock, so a holder on another machine is known alive.
pub fn with_lock<T>(
    session: &Session,
    config: &Config,
    operation: &str,
    version: &str,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let lock = Lock::take(session, config, operation, version)?;
    let interval = release::heartbeat_interval(config.runtime.lock_timeout_seconds);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        if !session.dry_run {
            let renew = release::renew_lock_cmd(&lock.path, &lock.holder);
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if let Err(err) = session.transport.output(&renew) {
                        session.log.warn(format!(
                            "could not renew the deploy lock on {} (another deploy may take it over): {err:#}",
                            session.name
                        ));
                    }
                }
            });
        }
        let result = work();
        drop(stop);
        result
    });
    drop(lock);
    result
}

/// The database's data directory on a Linux host, owned by postgres (uid 999) with
/// mode 0700, created through the database image so no root login is needed.
pub fn ensure_data_dir(session: &Session, images: &[Image]) -> Result<()> {
    let volumes = &session.paths.volumes;
    let data = format!("{volumes}/{}", crate::model::compose::DATA_VOLUME);
    let (exists, _, _) = session.try_run(Effect::Read, &Cmd::new("test").args(["-d", &data]))?;
    if exists {
        return Ok(());
    }
    let database = images.iter().find(|i| i.service == "database").context("no database image in the release")?;
    let cmd = Cmd::new(session.runtime.program()).args([
        "run",
        "--rm",
        "--user",
        "0",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        "-v",
        &format!("{volumes}:/volumes"),
        &database.reference,
        "-c",
        &format!(
            "mkdir -p /volumes/{0} && chown 999:999 /volumes/{0} && chmod 700 /volumes/{0}",
            crate::model::compose::DATA_VOLUME
        ),
    ]);
    session.run(Effect::Change, &Cmd::new("mkdir").args(["-p", volumes]))?;
    session.run(Effect::Change, &cmd).context("creating the database's data directory")?;
    if session.dry_run {
        return Ok(());
    }
    session.log.info(format!("created the database's data directory {data} (owner uid 999, mode 0700)"));
    Ok(())
}

/// Why a release did not become healthy, with the failing containers' logs.
#[derive(Debug)]
pub struct StartFailure {
    pub reason: String,
    /// (container, its last log lines) for each failing or unhealthy service.
    pub logs: Vec<(String, String)>,
}

/// What a wait for health does when the user interrupts (Ctrl-C, SIGTERM): a deploy's
/// new release gives up (and the previous one is restored); a restore is seen through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    GiveUp,
    Finish,
}

/// Starts the release in `release_dir` and waits until every service is healthy,
/// with exponential backoff and an overall limit of `[health] timeout_seconds`.
pub fn start_and_wait(
    session: &Session,
    stack: &Stack,
    config: &Config,
    release_dir: &str,
    on_interrupt: OnInterrupt,
) -> Result<std::result::Result<Vec<HealthCheckResult>, StartFailure>> {
    let up = stack.up_cmd(release_dir);
    let (started, _, stderr) = session.try_run(Effect::Change, &up)?;
    if session.dry_run {
        return Ok(Ok(Vec::new()));
    }
    let given_up = || on_interrupt == OnInterrupt::GiveUp && interrupt::interrupted();
    if !started || given_up() {
        // Compose gives up when a dependency turns unhealthy; the containers tell why.
        let containers = read_containers(session, stack)?;
        let reason = if started {
            "interrupted while the release was starting".to_string()
        } else {
            format!("`{up}` failed: {}", last_lines(&stderr, 5))
        };
        return Ok(Err(failure(session, stack, &containers, reason)));
    }
    enum Wait {
        Healthy,
        Failed,
        Interrupted,
    }
    let limit = Duration::from_secs(config.health.timeout_seconds.into());
    let mut last = Vec::new();
    let mut last_health = Vec::new();
    let outcome = with_backoff(limit, Duration::from_millis(250), Duration::from_secs(2), || {
        if given_up() {
            return Ok(Some(Wait::Interrupted));
        }
        last = read_containers(session, stack)?;
        last_health = evaluate(session, stack, &last)?;
        if last.iter().any(ContainerState::has_failed) {
            return Ok(Some(Wait::Failed));
        }
        Ok(last_health.iter().all(|h| h.status == "healthy").then_some(Wait::Healthy))
    })?;
    match outcome {
        // The health just seen: evaluating again would run the checks again.
        Some(Wait::Healthy) => Ok(Ok(last_health)),
        Some(Wait::Interrupted) => {
            Ok(Err(failure(session, stack, &last, "interrupted while waiting for health".to_string())))
        }
        Some(Wait::Failed) => {
            let failed: Vec<&str> = last.iter().filter(|c| c.has_failed()).map(|c| c.service.as_str()).collect();
            Ok(Err(failure(
                session,
                stack,
                &last,
                format!("{} failed to start or became unhealthy", failed.join(", ")),
            )))
        }
        None => {
            let waiting: Vec<&str> =
                last_health.iter().filter(|h| h.status != "healthy").map(|h| h.service.as_str()).collect();
            Ok(Err(failure(
                session,
                stack,
                &last,
                format!("{} not healthy after {} s", waiting.join(", "), config.health.timeout_seconds),
            )))
        }
    }
}

/// How what runs differs from the release the history records as current, one line
/// per difference; empty when they agree. A deploy killed while its release started,
/// or cut off from the host, leaves such a difference; `status` reports it and `deploy`
/// and `rollback` put it right.
pub fn drift(current: Option<&DeploymentState>, containers: &[ContainerState]) -> Vec<String> {
    let Some(current) = current else {
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        return if names.is_empty() {
            Vec::new()
        } else {
            vec![format!("containers run ({}) but no release is recorded as current", names.join(", "))]
        };
    };
    let mut differences = Vec::new();
    for service in Service::ALL {
        let Some(expected) = current.images.iter().find(|i| i.service == service.name()) else { continue };
        // Every container of the service: a swap cut short leaves two backends.
        let of_service: Vec<&ContainerState> =
            containers.iter().filter(|c| c.service == service.compose_name()).collect();
        if of_service.is_empty() {
            differences.push(format!(
                "{} has no container (the current release {} runs {})",
                service.compose_name(),
                current.version,
                expected.reference
            ));
        }
        for c in of_service {
            if !crate::model::image::names_same_image(&c.image, &expected.reference) {
                differences.push(format!(
                    "{} runs {} ({}), but the current release {} runs {}",
                    service.compose_name(),
                    c.image,
                    c.name,
                    current.version,
                    expected.reference
                ));
            }
        }
    }
    differences
}

pub fn read_containers(session: &Session, stack: &Stack) -> Result<Vec<ContainerState>> {
    let text = session.run(Effect::Read, &stack.inspect_cmd())?;
    if session.dry_run && text.is_empty() {
        return Ok(Vec::new());
    }
    crate::release::stack::parse_containers(&text)
}

/// Whether `container` of `service` passes its check when run now, and its output.
pub fn passes_check(
    session: &Session,
    stack: &Stack,
    container: &ContainerState,
    service: Service,
) -> Result<(bool, String)> {
    let (ok, out, err) = session.try_run(Effect::Read, &stack.health_probe_cmd(&container.name, service))?;
    Ok((ok, format!("{out}{err}")))
}

/// Each service's health now: the engine's healthcheck as recorded (Docker), or run now
/// (Podman, whose checks only systemd's timers run; Finch, which has none: the
/// service's health command in its container). A container Docker still reports
/// starting is checked now too: before Docker 25 its first check comes only after a
/// whole interval, and the release is healthy when its services are.
pub fn evaluate(session: &Session, stack: &Stack, containers: &[ContainerState]) -> Result<Vec<HealthCheckResult>> {
    let mut results = Vec::new();
    for service in session.services() {
        let container = containers.iter().find(|c| c.service == service.compose_name());
        let (status, message) = match container {
            None => ("unhealthy", Some("no container".to_string())),
            Some(c) if c.status != "running" => {
                ("unhealthy", Some(format!("{} (exit code {})", c.status, c.exit_code)))
            }
            Some(c) => match c.health.as_deref() {
                Some("healthy") => ("healthy", None),
                Some(other) if !stack.probes_health() && other != "starting" => {
                    ("unhealthy", Some(format!("{other}: {}", c.health_output.clone().unwrap_or_default())))
                }
                _ => match passes_check(session, stack, c, service)? {
                    (true, _) => ("healthy", None),
                    (false, output) => ("unhealthy", Some(output)),
                },
            },
        };
        results.push(HealthCheckResult {
            service: service.compose_name().to_string(),
            status: status.to_string(),
            timestamp: now_rfc3339(),
            message,
        });
    }
    Ok(results)
}

/// The failing (or not yet healthy) containers' last log lines.
pub fn failure(session: &Session, stack: &Stack, containers: &[ContainerState], reason: String) -> StartFailure {
    let mut logs = Vec::new();
    for container in containers {
        let healthy = container.status == "running" && container.health.as_deref().is_none_or(|h| h == "healthy");
        if healthy {
            continue;
        }
        let text = match session.try_run(Effect::Read, &stack.logs_cmd(&container.name, 60, false, false)) {
            Ok((_, out, err)) => format!("{out}\n{err}").trim().to_string(),
            Err(err) => format!("(could not read its logs: {err:#})"),
        };
        let health =
            container.health_output.as_deref().map(|h| format!("\nlast health check: {h}")).unwrap_or_default();
        logs.push((container.name.clone(), format!("{text}{health}")));
    }
    StartFailure { reason, logs }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Shows each failing container's logs in the log and saves them in the release
/// directory on the host (Property 33).
pub fn report_failure(session: &Session, release_dir: &str, failure: &StartFailure) {
    session.log.error(&failure.reason);
    for (container, logs) in &failure.logs {
        session.log.error(format!("logs of {container}:\n{logs}"));
        let path = format!("{release_dir}/failure-{container}.log");
        if let Err(err) = session.upload(logs.as_bytes(), &path, 0o600) {
            session.log.warn(format!("could not save {path}: {err:#}"));
        } else {
            session.log.info(format!("saved {container}'s logs to {path} on {}", session.name));
        }
    }
}

/// The host's history (empty on a new host).
pub fn read_history(session: &Session, layout: &Layout) -> Result<History> {
    let text = session.run(Effect::Read, &release::read_cmd(&layout.history()))?;
    History::parse(&text, &layout.history())
}

/// Adds an event (something done to the host that is not a release) to the host's
/// history. Called under the lock, which keeps anyone else from writing it meanwhile.
pub fn record_event(
    session: &Session,
    layout: &Layout,
    kind: &str,
    detail: &str,
    took: Option<Duration>,
) -> Result<()> {
    let mut history = read_history(session, layout)?;
    history.events.push(release::HostEvent {
        timestamp: now_rfc3339(),
        kind: kind.into(),
        by: release::who_am_i(),
        detail: detail.into(),
        duration_ms: took.map(|d| d.as_millis() as u64),
    });
    session.upload(history.to_json().as_bytes(), &layout.history(), 0o644)
}

/// Appends `entry` to `history` (as read under the lock, which keeps anyone else
/// from writing it meanwhile) and writes it, and the release's own `release.json`.
/// Returns the history as written.
pub fn record(session: &Session, layout: &Layout, history: &History, entry: &DeploymentState) -> Result<History> {
    let mut history = history.clone();
    history.deployments.push(entry.clone());
    session.upload(history.to_json().as_bytes(), &layout.history(), 0o644)?;
    write_state(session, layout, entry)?;
    Ok(history)
}

pub fn write_state(session: &Session, layout: &Layout, entry: &DeploymentState) -> Result<()> {
    let json = serde_json::to_string_pretty(entry)? + "\n";
    session.upload(json.as_bytes(), &layout.release_file(&entry.version, release::STATE_FILE), 0o644)
}

/// The release versions present on the host.
pub fn existing_releases(session: &Session, layout: &Layout) -> Result<Vec<String>> {
    let text = session.run(Effect::Read, &release::list_releases_cmd(layout))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// Removes releases beyond `[runtime] keep_releases` (never `version`, the current one
/// or the rollback target), with their images when no kept release uses them.
/// Failures only warn: the deploy itself succeeded.
pub fn prune(session: &Session, config: &Config, layout: &Layout, history: &History, version: &str) {
    match prune_releases(session, config, layout, history, version) {
        Ok(unused) => remove_images(session, &unused),
        Err(err) => session.log.warn(format!("could not prune old releases: {err:#}")),
    }
}

/// Removes the releases beyond `[runtime] keep_releases` and the secrets' directories
/// none of the kept names. Returns the images of the removed releases that no kept
/// release uses: the configured images only, never an image this tool did not build,
/// whatever the history on the host says. (An image unchanged over releases keeps the
/// tag of the release that brought it.)
pub fn prune_releases(
    session: &Session,
    config: &Config,
    layout: &Layout,
    history: &History,
    version: &str,
) -> Result<Vec<String>> {
    let existing = existing_releases(session, layout)?;
    let prunable = history.prunable(&existing, config.runtime.keep_releases as usize, &[version]);
    if prunable.is_empty() {
        return Ok(Vec::new());
    }
    session.run(Effect::Change, &release::remove_releases_cmd(layout, &prunable))?;
    session.run(Effect::Change, &release::remove_unused_content_dirs_cmd(&session.paths.config, &layout.releases))?;
    let kept: Vec<&str> = existing.iter().filter(|v| !prunable.contains(v)).map(String::as_str).collect();
    let mut unused = Vec::new();
    for old in &prunable {
        for entry in history.deployments.iter().filter(|d| &d.version == old) {
            for image in &entry.images {
                let used = history
                    .deployments
                    .iter()
                    .filter(|d| kept.contains(&d.version.as_str()))
                    .any(|d| d.images.iter().any(|i| i.reference == image.reference));
                let ours = Service::ALL.iter().any(|s| image.reference.starts_with(&format!("{}:", s.image(config))));
                if ours && !used && !unused.contains(&image.reference) {
                    unused.push(image.reference.clone());
                }
            }
        }
    }
    session.log.info(format!("pruned releases {} (keeping {})", prunable.join(", "), config.runtime.keep_releases));
    Ok(unused)
}

/// Removes `images` from the host's engine; one a container still uses stays (the
/// engine refuses it). Only warns.
pub fn remove_images(session: &Session, images: &[String]) {
    if images.is_empty() {
        return;
    }
    let rm = session.runtime_cmd(["image", "rm"]).args(images.iter().cloned());
    match session.try_run(Effect::Change, &rm) {
        Ok((true, _, _)) => session.log.info(format!("removed images {}", images.join(", "))),
        // One still in use (another release's container) stays; nothing is lost.
        Ok((false, _, err)) => session.log.info(format!("kept some old images on {}: {}", session.name, err.trim())),
        Err(err) => session.log.warn(format!("could not remove old images on {}: {err:#}", session.name)),
    }
}

/// The stack for this session and configuration.
pub fn stack(session: &Session, config: &Config) -> Stack {
    Stack { compose: session.compose.clone(), runtime: session.runtime, project: config.app.name.clone() }
}

/// Ends a host task: logs how it went (`done` on success), writes the log on the host
/// and closes the connection.
pub fn conclude<T>(
    session: &Session,
    config: &Config,
    task: release::LoggedTask,
    version: &str,
    result: &Result<T>,
    done: &str,
) {
    match result {
        Ok(_) => session.log.info(done),
        Err(err) => session.log.error(format!("{task} of {version} on {} failed: {err:#}", session.name)),
    }
    save_log(session, config, task, version);
    session.close();
}

/// Writes the task's log under the host's log path and keeps the newest
/// `[runtime] keep_logs` of this tool's logs (Property 34): only files named like
/// the ones it writes are ever removed, whatever else the directory holds. Failures
/// here only warn.
pub fn save_log(session: &Session, config: &Config, task: release::LoggedTask, version: &str) {
    if session.dry_run {
        return;
    }
    let dir = &session.paths.logs;
    let path = format!("{dir}/{}", release::log_file_name(task, &now_rfc3339(), version));
    session.log.info(format!("writing this log to {path} on {}", session.name));
    if let Err(err) = session.transport.upload(session.log.text().as_bytes(), &path, 0o640) {
        session.log.warn(format!("could not write the log on {}: {err:#}", session.name));
        return;
    }
    let pruned = (|| -> Result<()> {
        let listing = session.transport.output(&release::list_logs_cmd(dir))?;
        let old = release::prunable_logs(&listing, config.runtime.keep_logs as usize);
        if !old.is_empty() {
            session.transport.output(&release::remove_logs_cmd(dir, &old))?;
        }
        Ok(())
    })();
    if let Err(err) = pruned {
        session.log.warn(format!("could not prune old logs on {}: {err:#}", session.name));
    }
}

/// Whether the release `state` can be started again: its directory still holds the
/// compose and env files, and the host still holds every image it names. Checked
/// before anything is stopped, so an incomplete target changes nothing.
pub fn check_restorable(session: &Session, layout: &Layout, state: &DeploymentState) -> Result<()> {
    let files = [release::COMPOSE_FILE, release::ENV_FILE].map(|name| layout.release_file(&state.version, name));
    let test = crate::support::command::Cmd::new("sh")
        .args(["-c", "for f in \"$@\"; do [ -f \"$f\" ] || echo \"$f\"; done; exit 0", "check-release"])
        .args(files.iter().cloned());
    let missing_files = session.run(Effect::Read, &test)?;
    let missing_files: Vec<&str> = missing_files.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let missing_images: Vec<&str> = state
        .images
        .iter()
        .filter(|image| {
            let cmd = session.runtime_cmd(["image", "inspect", "--format", "{{.Id}}", image.reference.as_str()]);
            !matches!(session.try_run(Effect::Read, &cmd), Ok((true, _, _)))
        })
        .map(|image| image.reference.as_str())
        .collect();
    if missing_files.is_empty() && missing_images.is_empty() {
        return Ok(());
    }
    let mut gone = Vec::new();
    if !missing_files.is_empty() {
        gone.push(format!("its files {}", missing_files.join(", ")));
    }
    if !missing_images.is_empty() {
        gone.push(format!("its images {}", missing_images.join(", ")));
    }
    bail!(
        "release {} cannot be restored on {}: {} are gone from the host. Deploy that version again instead",
        state.version,
        session.name,
        gone.join(" and ")
    )
}

#[cfg(test)]
mod tests;
