//! A release on a Docker Swarm (`[clusters.NAME]`): every node checked a member of the
//! manager's swarm, the images shipped to every node (each archive made once), the
//! data directory on the data node, the stack file written on the manager and
//! deployed with `docker stack deploy`, then every service's tasks running and no
//! update rolled back, and the release recorded in the manager's history.
//!
//! Swarm itself does the rolling update: the backend starts its new task first and
//! goes back by itself when it does not get healthy (`model::stack`).

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::host::selection::{self, Target};
use crate::host::session::{Effect, Session};
use crate::model::certificate::LocalCertificates;
use crate::model::config::{Cluster, Config};
use crate::model::image::Image;
use crate::model::stack;
use crate::release::rollout;
use crate::release::ship::{self, shared::Archives};
use crate::release::stack::ContainerState;
use crate::release::state::{self as release, DeploymentState, Layout, ReleaseStatus};
use crate::support::command::Cmd;
use crate::support::log::Log;

/// The stack file's name in a release directory on the manager.
pub const STACK_FILE: &str = "stack.yml";

/// What a cluster deploy works from.
pub struct ClusterRelease<'a> {
    pub config: &'a Config,
    pub name: &'a str,
    pub cluster: &'a Cluster,
    pub local: &'a crate::host::runtime::Runtime,
    /// The release's images, as built here.
    pub images: &'a [Image],
    pub version: &'a str,
    /// (name, bytes) of each file under secrets/.
    pub secrets: &'a [(String, Vec<u8>)],
    pub state_dir: &'a std::path::Path,
    pub started_at: &'a str,
    /// `--skip-backup`: no backup before a new backend starts (recorded).
    pub skip_backup: bool,
    /// The TLS pair, checked, when HTTPS is on: installed on every node.
    pub certs: Option<&'a LocalCertificates>,
    /// `--dry-run`: print what would change, change nothing.
    pub dry_run: bool,
}

/// What a cluster deploy did: each node and the bytes sent to it.
pub struct ClusterOutcome {
    pub nodes: Vec<(String, u64)>,
}

/// `docker stack deploy` of `file`, waiting (bounded) for the services to converge.
pub fn stack_deploy_cmd(file: &str, app: &str, timeout_seconds: u32) -> Cmd {
    Cmd::new("timeout").arg(timeout_seconds.to_string()).args([
        "docker",
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "--detach=false",
        "--prune",
        "-c",
        file,
        app,
    ])
}

/// Each service of the stack: its name, its running/desired tasks, the state of its
/// last update (`none` when it never had one), and last the image its spec names.
pub fn services_cmd(app: &str) -> Cmd {
    let script = "docker service ls --filter \"label=com.docker.stack.namespace=$1\" --format '{{.Name}} {{.Image}} {{.Replicas}}' | \
                  while read -r name image replicas; do \
                  echo \"$name $replicas $(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{else}}none{{end}}' \"$name\") $image\"; \
                  done";
    Cmd::new("sh").args(["-c", script, "services", app])
}

/// Why the stack is not serving, from [`services_cmd`]'s output: a service short of
/// its tasks, or an update Swarm rolled back or paused. Empty when all is well.
pub fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, replicas, state, ..] = words.as_slice() else { continue };
        let (running, desired) = replicas.split_once('/').unwrap_or((replicas, "?"));
        if running != desired.split_whitespace().next().unwrap_or(desired) {
            problems.push(format!("{name} runs {running} of {desired} tasks"));
        } else if let Some(unwanted) = wants_no_task(name, first_number(desired)) {
            problems.push(unwanted);
        }
        if state.starts_with("rollback") || *state == "paused" {
            problems.push(format!("{name}: Swarm's update ended {state}"));
        }
    }
    if problems.is_empty() && text.trim().is_empty() {
        problems.push("the stack has no services".to_string());
    }
    problems
}

/// The count a replicas field starts with (`1`, or `1 (max 1 per node)`); not 0 when
/// unreadable, so that nothing unreadable is reported as wanting no task.
fn first_number(field: &str) -> u32 {
    field.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// A service that wants no task serves nothing, though it is short of none: scaled to 0
/// (a restore cut off between its two scales leaves the backend so), or a global
/// service with no node to run on.
fn wants_no_task(service: &str, desired: u32) -> Option<String> {
    (desired == 0).then(|| {
        format!(
            "{service} wants no task (scaled to 0, or no node available to it): a cut-off `restore --cluster` leaves \
             the backend so; run it again, or `docker service scale {service}=1` on the manager"
        )
    })
}

pub fn deploy(release: &ClusterRelease, log: &Log) -> Result<ClusterOutcome> {
    let ClusterRelease { config, name, cluster, version, .. } = *release;
    let parallel = config.deploy.parallel as usize;
    // Every node reached and checked at once.
    let sessions = open_nodes(config, (name, cluster), release.dry_run, log)?;
    let transports: Vec<&crate::host::transport::Transport> = sessions.iter().map(|s| &s.transport).collect();
    let swarm = crate::host::swarm::examine(name, cluster, &transports, false)?;
    if !swarm.missing.is_empty() {
        bail!("the swarm of cluster `{name}` is not ready:\n  - {}", swarm.missing.join("\n  - "));
    }
    let manager = &sessions[0];
    // The stack file names one path for each mount, on whichever node a task runs.
    if let Some(other) = sessions.iter().find(|s| s.paths != manager.paths) {
        bail!(
            "the nodes of cluster `{name}` keep the deployment in different places ({} on {}, {} on {}): give them \
             the same paths (`[paths]`, or the same in each `[hosts.NAME]` table)",
            manager.paths.base,
            manager.name,
            other.paths.base,
            other.name
        );
    }
    let result = rollout::with_lock(manager, config, "deploy", version, || {
        let layout = Layout::new(&manager.paths);
        let history = rollout::read_history(manager, &layout)?;
        // An image unchanged since the current release keeps its name there, so Swarm
        // sees no change to that service and leaves its tasks running (a backend
        // change restarts neither the database nor the frontends). Tagged so here
        // too: the archive is saved by that name.
        let (images, carried) = history.carry_over_unchanged(release.images.to_vec());
        for image in images.iter().filter(|i| carried.contains(&i.service)) {
            log.info(format!("{}: unchanged since {}, which stays its image", image.service, image.reference));
            if !release.dry_run {
                release.local.tag(&image.id, &image.reference)?;
            }
        }
        let images = images.as_slice();
        // Images to every node, before the stack changes.
        let archives = Archives::default();
        let shipped = selection::each(&sessions, parallel, |session| {
            ship::ship_all(session, release.local, images, release.state_dir, Some(&archives))
        });
        let mut nodes = Vec::new();
        for (session, result) in sessions.iter().zip(shipped) {
            let (_, bytes) = result.with_context(|| format!("shipping the images to {}", session.name))?;
            nodes.push((session.name.clone(), bytes));
        }
        let data = sessions.iter().find(|s| s.name == cluster.data_node).context("the data node's session")?;
        rollout::ensure_data_dir(data, images)?;
        // The data, backed up on the data node before a new backend starts (it may
        // migrate the schema), as on one host.
        let running = node_containers(data, &config.app.name)?;
        let backup = crate::release::backup::before_release(
            data,
            config,
            &history,
            &running,
            images,
            version,
            release.skip_backup,
        )?;
        // The secrets, where `docker stack deploy` reads them: on the manager.
        let digest = stack::secrets_digest(release.secrets);
        let secrets_dir = format!("{}/secrets-{digest}", manager.paths.config);
        for (file, bytes) in release.secrets {
            manager.upload(bytes, &format!("{secrets_dir}/{file}"), 0o600)?;
        }
        // The certificates are each node's, where its frontend mounts them (as on one
        // host); a frontend running there reloads them in place.
        if let Some(certs) = release.certs {
            for (session, (_, reloaded)) in sessions.iter().zip(install_certs(&sessions, config, certs)?) {
                if let Some(reloaded) = reloaded.filter(|_| !session.dry_run) {
                    session.log.info(format!(
                        "certificate {} installed on {}; reloaded {}",
                        certs.summary.serial,
                        session.name,
                        if reloaded.is_empty() { "no running frontend".to_string() } else { reloaded.join(", ") }
                    ));
                }
            }
        }
        let names: Vec<String> = release.secrets.iter().map(|(n, _)| n.clone()).collect();
        let mut rendered = crate::model::compose::render(crate::model::compose::RenderInput {
            config,
            paths: &manager.paths,
            engine: crate::model::platform::LinuxEngine::Docker,
            version,
            images,
            secrets: &names,
            start_interval: manager.knows_start_interval(),
        });
        for (key, value) in rendered.env.vars.iter_mut() {
            match key.as_str() {
                "SECRETS_PATH" => *value = secrets_dir.clone(),
                "SERVER_NAMES" if config.http.server_names.is_empty() => log.warn(format!(
                    "`[http] server_names` is not set: plain HTTP on cluster {name} redirects to https://{value}/. \
                     Set it to the names your site is reached by."
                )),
                _ => {}
            }
        }
        let monitor = config.health.interval_seconds * config.health.retries;
        let stack = stack::stack_file(&rendered, &config.app.name, &digest, monitor, cluster.publish);
        let yaml = stack::to_yaml(&stack);
        let file = layout.release_file(version, STACK_FILE);
        manager.upload(yaml.as_bytes(), &file, 0o644)?;
        let state = DeploymentState {
            version: version.to_string(),
            timestamp: crate::support::log::now_rfc3339(),
            target_host: format!("cluster {name}"),
            deployed_by: release::who_am_i(),
            images: images.to_vec(),
            configuration_hash: crate::support::digest::sha256(yaml.as_bytes()),
            status: ReleaseStatus::Pending,
            health_checks: Vec::new(),
            replaced: None,
            backup,
            started: Some(release.started_at.to_string()),
            bytes_shipped: Some(nodes.iter().map(|(_, b)| b).sum()),
        };
        rollout::write_state(manager, &layout, &state)?;
        let history =
            apply(manager, config, (name, cluster), (&layout, &history), (state, ReleaseStatus::Active), log)?;
        if !release.dry_run {
            let secrets: Vec<String> = stack.secrets.values().map(|s| s.name.clone()).collect();
            prune(&sessions, config, &layout, &history, version, &secrets);
        }
        Ok(ClusterOutcome { nodes })
    });
    for session in &sessions {
        rollout::save_log(session, config, release::LoggedTask::Deploy, version);
        session.close();
    }
    result
}

/// A session to every node of the cluster, opened at once. A node that cannot be
/// reached stops the task before anything changed: the images (or certificates) go to
/// every node before the stack does, and a node without them could not run its tasks.
fn open_nodes<'a>(
    config: &Config,
    (name, cluster): (&str, &Cluster),
    dry_run: bool,
    log: &'a Log,
) -> Result<Vec<Session<'a>>> {
    let targets: Vec<Target> = cluster.nodes.iter().cloned().map(Target::Host).collect();
    let opened = selection::each(&targets, config.deploy.parallel as usize, |target| {
        Session::open(config, target, false, dry_run, log)
    });
    let mut sessions = Vec::new();
    for (target, session) in targets.iter().zip(opened) {
        let node = target.name();
        sessions.push(session.with_context(|| {
            format!(
                "node {node} of cluster `{name}` cannot be reached, so nothing was changed: every node gets the \
                 release before the stack does. Bring {node} back, or take it out of the swarm (`docker node rm` on \
                 the manager) and out of `nodes` in [clusters.{name}]"
            )
        })?);
    }
    Ok(sessions)
}

/// Installs the TLS pair on every node (in parallel), where the frontends mount it
/// (`DeploymentPaths::certs`), and reloads the frontends running there. Returns, per
/// node, the frontends reloaded (`None`: it had this pair already).
fn install_certs(
    sessions: &[Session],
    config: &Config,
    certs: &LocalCertificates,
) -> Result<Vec<(String, Option<Vec<String>>)>> {
    let installed = selection::each(sessions, config.deploy.parallel as usize, |session| {
        let containers = node_containers(session, &config.app.name)?;
        crate::release::certs::install_and_reload(session, certs, &containers)
    });
    let mut done = Vec::new();
    for (session, result) in sessions.iter().zip(installed) {
        let reloaded = result.with_context(|| format!("installing the certificates on {}", session.name))?;
        done.push((session.name.clone(), reloaded));
    }
    Ok(done)
}

/// `certs --cluster`: the renewed pair on every node, each node's frontends reloaded in
/// place (no task restarted), under the manager's lock, recorded in its history.
/// Returns, per node, the frontends reloaded (`None`: it had this pair already).
pub fn renew_certs(
    config: &Config,
    (name, cluster): (&str, &Cluster),
    certs: &LocalCertificates,
    dry_run: bool,
    log: &Log,
) -> Result<Vec<(String, Option<Vec<String>>)>> {
    let began = std::time::Instant::now();
    let sessions = open_nodes(config, (name, cluster), dry_run, log)?;
    let manager = &sessions[0];
    let result = rollout::with_lock(manager, config, "certs", &certs.summary.serial, || {
        let layout = Layout::new(&manager.paths);
        let history = rollout::read_history(manager, &layout)?;
        let current = history.current().with_context(|| {
            format!("nothing is deployed on cluster {name}: deploy first (`cargo xtask deploy --cluster {name}`)")
        })?;
        // Only a release that mounts the nodes' certificates is reached by a renewal.
        let stack =
            manager.run(Effect::Read, &release::read_cmd(&layout.release_file(&current.version, STACK_FILE)))?;
        let dir = manager.paths.certs();
        if !stack.contains(&format!("source: {dir}")) && !dry_run {
            bail!(
                "the running release {} on cluster {name} serves no HTTPS: deploy it once with `[http] https = true` \
                 (`cargo xtask deploy --cluster {name}`)",
                current.version
            );
        }
        let done = install_certs(&sessions, config, certs)?;
        if done.iter().any(|(_, reloaded)| reloaded.is_some()) {
            let reloaded: Vec<String> = done.iter().flat_map(|(_, r)| r.iter().flatten()).cloned().collect();
            let detail =
                format!("{} (the nodes of cluster {name})", crate::release::certs::installed_detail(certs, &reloaded));
            rollout::record_event(manager, &layout, "certificates", &detail, Some(began.elapsed()))?;
        }
        Ok(done)
    });
    for session in &sessions {
        rollout::save_log(session, config, release::LoggedTask::Certs, "certificates");
        session.close();
    }
    result
}

/// Deploys the stack file of `state`'s release from the manager, waits (bounded) for
/// it, and records it: `done` when every service runs all its tasks and no update
/// went back, else failed (and an error saying why). Returns the history with it.
fn apply(
    manager: &Session,
    config: &Config,
    (name, cluster): (&str, &Cluster),
    (layout, history): (&Layout, &release::History),
    (mut state, done): (DeploymentState, ReleaseStatus),
    log: &Log,
) -> Result<release::History> {
    let file = layout.release_file(&state.version, STACK_FILE);
    log.info(format!("deploying stack {} from {file} on {}", config.app.name, cluster.manager));
    let wait = config.health.timeout_seconds;
    let (deployed, out, err) = manager.try_run(Effect::Change, &stack_deploy_cmd(&file, &config.app.name, wait))?;
    log.debug(format!("{out}\n{err}"));
    if manager.dry_run {
        state.status = done;
        return rollout::record(manager, layout, history, &state);
    }
    let status = manager.run(Effect::Read, &services_cmd(&config.app.name))?;
    let problems = problems(&status);
    if !deployed || !problems.is_empty() {
        state.status = ReleaseStatus::Failed;
        state.timestamp = crate::support::log::now_rfc3339();
        let _ = rollout::record(manager, layout, history, &state);
        let said = |text: &str| text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let why = if deployed {
            format!("{} (the stack deploy said: {})", problems.join("; "), said(&out))
        } else {
            format!("`docker stack deploy` failed: {}", said(&err))
        };
        bail!(
            "the stack did not converge on cluster `{name}`: {why} (`docker service ps` on {} says more)",
            cluster.manager
        );
    }
    state.status = done;
    state.timestamp = crate::support::log::now_rfc3339();
    let history = rollout::record(manager, layout, history, &state)?;
    manager.run(Effect::Change, &release::point_current_cmd(layout, &state.version))?;
    Ok(history)
}

/// After a deploy: the releases beyond `[runtime] keep_releases` removed from the
/// manager, their images no kept release uses from every node, and the stack's Swarm
/// secrets the release does not name (a rollback's stack deploy makes them again from
/// its release's files, which stay). Failures only warn.
fn prune(
    sessions: &[Session],
    config: &Config,
    layout: &Layout,
    history: &release::History,
    version: &str,
    secrets: &[String],
) {
    let manager = &sessions[0];
    let unused = match rollout::prune_releases(manager, config, layout, history, version) {
        Ok(unused) => unused,
        Err(err) => {
            manager.log.warn(format!("could not prune old releases: {err:#}"));
            Vec::new()
        }
    };
    if !unused.is_empty() {
        selection::each(sessions, config.deploy.parallel as usize, |session| {
            // Swarm keeps the containers of past tasks, which hold their images.
            let _ = session.try_run(Effect::Change, &remove_stopped_containers_cmd(&config.app.name));
            rollout::remove_images(session, &unused);
        });
    }
    if let Err(err) = manager.run(Effect::Change, &remove_unused_secrets_cmd(&config.app.name, secrets)) {
        manager.log.warn(format!("could not remove the stack's old secrets: {err:#}"));
    }
}

/// Removes the stopped containers of the stack's past tasks on a node (Swarm keeps a
/// few per task slot; their records stay on the manager).
pub fn remove_stopped_containers_cmd(app: &str) -> Cmd {
    Cmd::new("docker").args([
        "container".to_string(),
        "prune".to_string(),
        "--force".to_string(),
        "--filter".to_string(),
        stack_filter(app),
    ])
}

/// Removes the stack's Swarm secrets but `keep`; one a service still uses stays (Swarm
/// refuses it).
pub fn remove_unused_secrets_cmd(app: &str, keep: &[String]) -> Cmd {
    let script = "app=$1; shift; \
        for s in $(docker secret ls --filter \"label=com.docker.stack.namespace=$app\" --format '{{.Name}}'); do \
        used=; for k in \"$@\"; do [ \"$s\" = \"$k\" ] && used=1; done; \
        [ -n \"$used\" ] || docker secret rm \"$s\" >/dev/null 2>&1 || true; done; exit 0";
    Cmd::new("sh").args(["-c", script, "remove-unused-secrets", app]).args(keep.iter().cloned())
}

/// `rollback --cluster`: the release before the current one (or `to`), its stack file
/// deployed again from the manager (its images are still on the nodes), checked and
/// recorded `rolled_back`. Returns the version that serves.
pub fn roll_back(
    config: &Config,
    (name, cluster): (&str, &Cluster),
    to: Option<&str>,
    dry_run: bool,
    log: &Log,
) -> Result<String> {
    let manager = Session::open(config, &Target::Host(cluster.manager.clone()), false, dry_run, log)?;
    let result = rollout::with_lock(&manager, config, "rollback", to.unwrap_or("previous"), || {
        let layout = Layout::new(&manager.paths);
        let history = rollout::read_history(&manager, &layout)?;
        let existing = rollout::existing_releases(&manager, &layout)?;
        let target = history.rollback_target(to, &existing)?.clone();
        let current = history.current().map(|c| c.version.clone());
        log.info(format!(
            "rolling cluster {name} back from {} to {}",
            current.as_deref().unwrap_or("nothing"),
            target.version
        ));
        let state = DeploymentState {
            timestamp: crate::support::log::now_rfc3339(),
            deployed_by: release::who_am_i(),
            replaced: current,
            bytes_shipped: None,
            backup: None,
            started: Some(crate::support::log::now_rfc3339()),
            ..target
        };
        apply(&manager, config, (name, cluster), (&layout, &history), (state.clone(), ReleaseStatus::RolledBack), log)?;
        Ok(state.version)
    });
    let version = result.as_ref().map_or("none".to_string(), String::clone);
    rollout::save_log(&manager, config, release::LoggedTask::Rollback, &version);
    manager.close();
    result
}

/// Docker's `--filter` for what `docker stack deploy` made for the stack `app` (its
/// namespace label).
fn stack_filter(app: &str) -> String {
    format!("label=com.docker.stack.namespace={app}")
}

/// The stack's running containers on one node, by `docker ps` (Swarm names them
/// `<app>_<service>.<slot>.<task>`): `<name> <service>` lines.
pub fn node_containers_cmd(app: &str) -> Cmd {
    Cmd::new("docker").args([
        "ps".to_string(),
        "--filter".to_string(),
        stack_filter(app),
        "--filter".to_string(),
        "status=running".to_string(),
        "--format".to_string(),
        "{{.Names}} {{.Label \"com.docker.swarm.service.name\"}}".to_string(),
    ])
}

/// [`node_containers_cmd`]'s output as the containers of a single host's stack are
/// read: each service by its name in the stack (`database`, not `<app>_database`).
pub fn parse_node_containers(text: &str, app: &str) -> Vec<ContainerState> {
    let prefix = format!("{app}_");
    text.lines()
        .filter_map(|line| {
            let (name, service) = line.trim().split_once(' ')?;
            Some(ContainerState {
                name: name.to_string(),
                service: service.trim().strip_prefix(&prefix)?.to_string(),
                status: "running".to_string(),
                ..ContainerState::default()
            })
        })
        .collect()
}

/// The stack's containers running on `session`'s node.
pub fn node_containers(session: &Session, app: &str) -> Result<Vec<ContainerState>> {
    Ok(parse_node_containers(&session.run(Effect::Read, &node_containers_cmd(app))?, app))
}

/// `docker service scale` of the stack's `service` to `replicas` tasks, waiting
/// (bounded) until they run (healthy, when the service has a check).
pub fn scale_cmd(app: &str, service: &str, replicas: u32, timeout_seconds: u32) -> Cmd {
    Cmd::new("timeout").arg(timeout_seconds.to_string()).args([
        "docker".to_string(),
        "service".to_string(),
        "scale".to_string(),
        "--detach=false".to_string(),
        format!("{app}_{service}={replicas}"),
    ])
}

/// The backend of a cluster's stack, for a restore: scaled by the manager to no task
/// (stopped: no write comes in) and back to its one task.
pub struct SwarmBackend<'a> {
    pub manager: &'a Session<'a>,
    pub app: &'a str,
    pub wait_seconds: u32,
}

impl crate::release::backup::BackendControl for SwarmBackend<'_> {
    fn stop_backend(&self) -> Result<()> {
        self.manager.run(Effect::Change, &scale_cmd(self.app, "backend", 0, self.wait_seconds))?;
        Ok(())
    }

    fn start_and_wait(&self) -> Result<std::result::Result<(), String>> {
        let (scaled, _, err) =
            self.manager.try_run(Effect::Change, &scale_cmd(self.app, "backend", 1, self.wait_seconds))?;
        if self.manager.dry_run {
            return Ok(Ok(()));
        }
        let problems = problems(&self.manager.run(Effect::Read, &services_cmd(self.app))?);
        Ok(match (scaled, problems.is_empty()) {
            (true, true) => Ok(()),
            (false, _) => Err(format!("`docker service scale` failed: {}", err.trim())),
            (true, false) => Err(problems.join("; ")),
        })
    }
}

/// A swarm node as the manager sees it.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub hostname: String,
    /// `ready` or `down` (or `unknown`, `disconnected`).
    pub state: String,
    pub availability: String,
    pub manager: bool,
}

/// A service of the stack: its tasks running against those wanted, where they run,
/// and its last update's state.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub running: u32,
    pub desired: u32,
    pub update: String,
    /// The nodes (host names) its running tasks are on.
    pub on: Vec<String>,
}

/// A cluster as its manager reports it.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub current: Option<DeploymentState>,
    pub nodes: Vec<NodeStatus>,
    pub services: Vec<ServiceStatus>,
    /// What is lost: nodes down, services short of tasks.
    pub lost: Vec<String>,
    /// Where the stack's services name other images than the current release: left by
    /// an interrupted deploy or rollback (Swarm goes on with a stack it was given), or
    /// changed by hand.
    pub drift: Vec<String>,
}

pub fn nodes_status_cmd() -> Cmd {
    Cmd::new("docker").args([
        "node",
        "ls",
        "--format",
        "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}",
    ])
}

pub fn parse_nodes_status(text: &str) -> Vec<NodeStatus> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some(NodeStatus {
                hostname: words.first()?.to_string(),
                state: words.get(1)?.to_lowercase(),
                availability: words.get(2).unwrap_or(&"").to_lowercase(),
                manager: words.len() > 3,
            })
        })
        .collect()
}

/// The nodes each service's running tasks are on: `service node` lines.
pub fn placements_cmd(app: &str) -> Cmd {
    let script = "for s in $(docker stack services -q \"$1\"); do \
                  docker service ps \"$s\" --filter desired-state=running --format '{{.Name}} {{.Node}} {{.CurrentState}}'; \
                  done";
    Cmd::new("sh").args(["-c", script, "placements", app])
}

/// What runs on the cluster, read on its manager: the nodes, each service's tasks
/// and where they run, the current release, and what is lost.
pub fn status(session: &Session, name: &str, app: &str) -> Result<ClusterStatus> {
    let layout = Layout::new(&session.paths);
    let history = rollout::read_history(session, &layout)?;
    let nodes = parse_nodes_status(&session.run(Effect::Read, &nodes_status_cmd())?);
    let services_text = session.run(Effect::Read, &services_cmd(app))?;
    let placements = session.run(Effect::Read, &placements_cmd(app))?;
    let mut services = Vec::new();
    for line in services_text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [service, replicas, update, ..] = words.as_slice() else { continue };
        let (running, desired) = replicas.split_once('/').unwrap_or((replicas, "0"));
        let on = placements
            .lines()
            .filter(|l| l.starts_with(&format!("{service}.")) && l.contains(" Running"))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        services.push(ServiceStatus {
            name: service.to_string(),
            running: running.parse().unwrap_or(0),
            desired: desired.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0),
            update: update.to_string(),
            on,
        });
    }
    let lost = lost(&nodes, &services);
    let drift = drift(history.current(), app, &services_text);
    Ok(ClusterStatus { cluster: name.to_string(), current: history.current().cloned(), nodes, services, lost, drift })
}

/// What a cluster has lost: nodes not ready, services short of tasks or wanting none.
pub fn lost(nodes: &[NodeStatus], services: &[ServiceStatus]) -> Vec<String> {
    let mut lost: Vec<String> =
        nodes.iter().filter(|n| n.state != "ready").map(|n| format!("node {} is {}", n.hostname, n.state)).collect();
    for service in services {
        if service.running < service.desired {
            lost.push(format!("{} runs {} of {} tasks", service.name, service.running, service.desired));
        } else if let Some(unwanted) = wants_no_task(&service.name, service.desired) {
            lost.push(unwanted);
        }
    }
    lost
}

/// The services whose image differs from the one `current` names for them (from
/// [`services_cmd`]'s output: the name first, the image last), each said with both
/// images.
pub fn drift(current: Option<&DeploymentState>, app: &str, text: &str) -> Vec<String> {
    let prefix = format!("{app}_");
    let mut drift = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, .., image] = words.as_slice() else { continue };
        let Some(compose_name) = name.strip_prefix(&prefix) else { continue };
        let Some(service) = crate::model::service::Service::ALL.into_iter().find(|s| s.compose_name() == compose_name)
        else {
            continue;
        };
        let recorded = current.and_then(|c| c.images.iter().find(|i| i.service == service.name()));
        match recorded {
            Some(recorded) if recorded.reference == *image => {}
            Some(recorded) => drift.push(format!(
                "{compose_name} runs {image} but the current release {} names {}",
                current.map_or("", |c| c.version.as_str()),
                recorded.reference
            )),
            None => drift.push(format!("{compose_name} runs {image}, which no current release names")),
        }
    }
    drift
}

#[cfg(test)]
mod tests;
