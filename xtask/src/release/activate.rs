//! Making a release the one that serves: start it and wait for health, point
//! `current` at it and record it; when it does not get healthy, fall back to the
//! release before it. One `restore` serves deploy's automatic rollback and the
//! rollback task.

use anyhow::{Result, bail};

use crate::host::session::{Effect, Session};
use crate::model::config::Config;
use crate::model::image::{Image, names_same_image};
use crate::model::platform::TargetOs;
use crate::model::service::Service;
use crate::release::rollout::{self, OnInterrupt, StartFailure};
use crate::release::stack::{ContainerState, Stack};
use crate::release::state::{self as release, DeploymentState, History, Layout, ReleaseStatus};
use crate::support::interrupt;

/// Starts `state` (written, not yet started) and makes it current when healthy.
/// Otherwise (unhealthy, interrupted by the user, or any error once it started: an SSH
/// drop, a history that cannot be written) its failure is recorded and the previous
/// release in `history` restored (checked complete first, so nothing is stopped for a
/// target that cannot start); a first deploy's stack is stopped. Either way the data
/// volume is never touched. Returns the history as written on success.
pub fn go_live(
    session: &Session,
    config: &Config,
    stack: &Stack,
    layout: &Layout,
    state: DeploymentState,
    history: &History,
) -> Result<History> {
    let version = state.version.clone();
    // The release to fall back to: the last one that ran with another version (a
    // redeploy of the current version falls back past itself).
    let previous = history.deployments.iter().rev().find(|d| d.status.ran() && d.version != version).cloned();
    let redeploy_of_current = history.current().is_some_and(|c| c.version == version);
    let release_dir = layout.release_dir(&version);
    if redeploy_of_current && let Some(health) = already_serving(session, stack, history, &state)? {
        session.log.info(format!(
            "{version} already runs healthy with these images and this configuration: nothing to restart"
        ));
        let entry = DeploymentState {
            status: ReleaseStatus::Active,
            health_checks: health,
            timestamp: crate::support::log::now_rfc3339(),
            ..state
        };
        return rollout::record(session, layout, history, &entry);
    }
    // From here until the host is recorded, Ctrl-C and SIGTERM restore, not abandon.
    let _critical = interrupt::Critical::enter();
    let started = (|| -> Result<std::result::Result<History, StartFailure>> {
        if let Some(failure) = swap(session, stack, config, &release_dir, &state.images, OnInterrupt::GiveUp)? {
            return Ok(Err(failure));
        }
        let health = match rollout::start_and_wait(session, stack, config, &release_dir, OnInterrupt::GiveUp)? {
            Ok(health) => health,
            Err(failure) => return Ok(Err(failure)),
        };
        let entry = DeploymentState {
            status: ReleaseStatus::Active,
            health_checks: health,
            timestamp: crate::support::log::now_rfc3339(),
            ..state.clone()
        };
        // The history is the record; `current` follows it.
        let written = rollout::record(session, layout, history, &entry)?;
        session.run(Effect::Change, &release::point_current_cmd(layout, &version))?;
        Ok(Ok(written))
    })();
    let failure = match started {
        Ok(Ok(written)) => return Ok(written),
        Ok(Err(failure)) => failure,
        Err(err) => StartFailure { reason: format!("{err:#}"), logs: Vec::new() },
    };
    interrupt::acknowledge();
    rollout::report_failure(session, &release_dir, &failure);
    let failed =
        DeploymentState { status: ReleaseStatus::Failed, timestamp: crate::support::log::now_rfc3339(), ..state };
    // The failure is recorded when the host lets it be; the restore goes ahead anyway.
    let history = match rollout::record(session, layout, history, &failed) {
        Ok(written) => written,
        Err(err) => {
            session.log.warn(format!("could not record {version} as failed on {}: {err:#}", session.name));
            history.clone()
        }
    };
    match previous {
        Some(previous) => {
            // Nothing is stopped for a target that cannot start: a pruned directory or
            // a removed image would leave the host with neither release.
            if let Err(err) = rollout::check_restorable(session, layout, &previous) {
                bail!(
                    "{}; the automatic rollback did not start: {err:#}. {version}'s containers are left as they are \
                     for inspection (`cargo xtask logs`). The data volume is untouched.",
                    failure.reason
                );
            }
            session.log.warn(format!("rolling back to {}", previous.version));
            match restore(session, config, stack, layout, &history, &previous, Some(version))? {
                Ok(_) => {
                    bail!("{}; the previous release {} was restored and is healthy", failure.reason, previous.version)
                }
                Err(second) => bail!(
                    "{}; restoring the previous release {} failed too: {}. The data volume is untouched.",
                    failure.reason,
                    previous.version,
                    second.reason
                ),
            }
        }
        None if redeploy_of_current => bail!(
            "{}; {version} was redeployed over itself and there is no other release to go back to: its containers \
             are left as they are for inspection (`cargo xtask logs`). The data volume is untouched.",
            failure.reason
        ),
        None => {
            session.log.warn("no previous release to restore: stopping the failed one (the data volume is kept)");
            session.run(Effect::Change, &stack.down_cmd(&release_dir))?;
            bail!(
                "{}; this was the first deploy on {}, so its containers were stopped. The database's data is kept \
                 ({}) for the next deploy.",
                failure.reason,
                session.name,
                data_location(session)
            )
        }
    }
}

/// The services' health when the stack already is `state`'s release: the current
/// release has its version, images (ids and layers) and configuration hash, and every
/// service runs healthy on its image. `None` when anything differs: then it is started
/// (compose converges, and Podman's recreates every container).
fn already_serving(
    session: &Session,
    stack: &Stack,
    history: &History,
    state: &DeploymentState,
) -> Result<Option<Vec<release::HealthCheckResult>>> {
    let Some(current) = history.current() else { return Ok(None) };
    let same_image = |a: &Image, b: &Image| a.service == b.service && a.id == b.id && a.layers == b.layers;
    let same_release = current.version == state.version
        && current.configuration_hash == state.configuration_hash
        && current.images.len() == state.images.len()
        && current.images.iter().all(|a| state.images.iter().any(|b| same_image(a, b)));
    if !same_release || session.dry_run {
        return Ok(None);
    }
    let containers = rollout::read_containers(session, stack)?;
    let on_its_image = |image: &Image| {
        let Some(service) = Service::ALL.into_iter().find(|s| s.name() == image.service) else { return false };
        containers.iter().any(|c| c.service == service.compose_name() && names_same_image(&c.image, &image.reference))
    };
    if !state.images.iter().all(on_its_image) {
        return Ok(None);
    }
    let health = rollout::evaluate(session, stack, &containers)?;
    Ok(health.iter().all(|h| h.status == "healthy").then_some(health))
}

/// Starts the release `target` (already on the host) and, once healthy, records it as
/// rolled back, replacing `replaced`, and points `current` at it. A failure to get
/// healthy is reported (its logs saved in its directory) and returned. Ctrl-C does not
/// stop it halfway: it is the way back to a recorded state.
pub fn restore(
    session: &Session,
    config: &Config,
    stack: &Stack,
    layout: &Layout,
    history: &History,
    target: &DeploymentState,
    replaced: Option<String>,
) -> Result<std::result::Result<DeploymentState, StartFailure>> {
    let _critical = interrupt::Critical::enter();
    let began = crate::support::log::now_rfc3339();
    let dir = layout.release_dir(&target.version);
    if let Some(failure) = swap(session, stack, config, &dir, &target.images, OnInterrupt::Finish)? {
        rollout::report_failure(session, &dir, &failure);
        return Ok(Err(failure));
    }
    match rollout::start_and_wait(session, stack, config, &dir, OnInterrupt::Finish)? {
        Ok(health) => {
            let entry = DeploymentState {
                status: ReleaseStatus::RolledBack,
                timestamp: crate::support::log::now_rfc3339(),
                health_checks: health,
                replaced,
                // The rollback's own record, not the deploy's that brought the release.
                deployed_by: release::who_am_i(),
                started: Some(began),
                bytes_shipped: None,
                backup: None,
                ..target.clone()
            };
            rollout::record(session, layout, history, &entry)?;
            session.run(Effect::Change, &release::point_current_cmd(layout, &target.version))?;
            Ok(Ok(entry))
        }
        Err(failure) => {
            rollout::report_failure(session, &dir, &failure);
            Ok(Err(failure))
        }
    }
}

/// How long a replaced backend or frontend is given to finish the requests it has.
const DRAIN_SECONDS: u32 = 30;

/// Twice the resolver's `valid=1s` in the frontend's nginx, which sends the backend
/// its requests (web-frontend/nginx/nginx.conf.template).
const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// After the edge is routed (the route returns once its old workers, which resolve the
/// service's name, take no more connections): a connection an old worker took just
/// before reaches its frontend within the edge's 1 s connect timeout.
const ROUTE_SETTLE: std::time::Duration = std::time::Duration::from_millis(1200);

/// How whoever sends a swapped service its traffic moves to the new container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handover {
    /// The frontend's nginx resolves the backend's name each second and retries a
    /// request the old one refuses (HTTP): it is enough that the name resolves to both
    /// for [`RESOLVE_WAIT`] before the old one stops.
    Resolve,
    /// The edge passes TCP and cannot retry a connection the old frontend resets (one
    /// queued at its listener as nginx closes it): the edge is routed to the new
    /// frontend by its own name before the old one stops, and back to the service's
    /// name once the old one is gone.
    RouteEdge,
}

/// The services swapped beside themselves, in order, each with the service that must
/// stay as it is for the swap to hold, and how its traffic moves: the backend while the
/// database keeps its container (a new database restarts anyway, and the backend with
/// it), the frontend while the edge, which holds the ports, keeps its.
const SWAPPED: [(Service, Service, Handover); 2] = [
    (Service::BackendApi, Service::Database, Handover::Resolve),
    (Service::WebFrontend, Service::Edge, Handover::RouteEdge),
];

/// Restores the release before the current one on `session`'s host, or `to`: what
/// runs when it is not the current release (a deploy cut off while starting) is put
/// back as recorded first. The caller holds the lock. With `ask`, the user confirms.
/// Returns the version that serves. Should the restored release not get healthy,
/// what ran before is started again.
pub fn roll_back(session: &Session, config: &Config, to: Option<&str>, ask: bool) -> Result<String> {
    let layout = Layout::new(&session.paths);
    let stack = rollout::stack(session, config);
    let history = rollout::read_history(session, &layout)?;
    let existing = rollout::existing_releases(session, &layout)?;
    let drift = rollout::drift(history.current(), &rollout::read_containers(session, &stack)?);
    let current = history.current().map(|c| c.version.clone());
    // What runs is not the recorded current release (a deploy killed or cut off while
    // starting): a rollback without --to, or --to the current one, puts that back.
    let reconcile = history
        .current()
        .filter(|c| !drift.is_empty() && to.is_none_or(|to| to == c.version))
        .filter(|c| existing.contains(&c.version));
    let (target, replaced) = match reconcile {
        Some(recorded) => {
            session.log.warn(format!(
                "what runs on {} is not the current release {}: {}. Restoring {} as recorded",
                session.name,
                recorded.version,
                drift.join("; "),
                recorded.version
            ));
            (recorded.clone(), None)
        }
        None => (history.rollback_target(to, &existing)?.clone(), current.clone()),
    };
    rollout::check_restorable(session, &layout, &target)
        .map_err(|err| anyhow::anyhow!("{err:#}; nothing was changed"))?;
    if ask && !session.dry_run {
        crate::host::session::confirm(&format!(
            "Roll {} back from {} to {} (deployed {})?",
            session.name,
            current.as_deref().unwrap_or("nothing"),
            target.version,
            target.timestamp
        ))?;
    }
    session.log.info(format!(
        "rolling {} back from {} to {}",
        session.name,
        current.as_deref().unwrap_or("nothing"),
        target.version
    ));
    match restore(session, config, &stack, &layout, &history, &target, replaced)? {
        Ok(_) => Ok(target.version),
        Err(failure) => {
            // Put back what was running; the data volume was never touched.
            if let Some(current) = &current {
                session.log.warn(format!("restarting {current}, which was running before"));
                let dir = layout.release_dir(current);
                match rollout::start_and_wait(session, &stack, config, &dir, rollout::OnInterrupt::Finish)? {
                    Ok(_) => bail!("{}; {current} is running again", failure.reason),
                    Err(second) => bail!("{}; restarting {current} failed too: {}", failure.reason, second.reason),
                }
            }
            bail!("{}", failure.reason)
        }
    }
}

/// Replaces the running backend and frontend with `release_dir`'s, each without losing
/// a request, where compose can scale (Docker's): see [`swap_one`]. The first failure
/// is returned; what was swapped before it stays (the restore that follows swaps it
/// back).
fn swap(
    session: &Session,
    stack: &Stack,
    config: &Config,
    release_dir: &str,
    images: &[Image],
    on_interrupt: OnInterrupt,
) -> Result<Option<StartFailure>> {
    if !stack.swaps() || session.dry_run {
        return Ok(None);
    }
    // A swap stopped between its routes left the edge routed to one container by its
    // own name, which `up` may remove: the service's name again, first.
    route_edge(session, stack, Service::WebFrontend.compose_name());
    for swapped in SWAPPED {
        if let Some(failure) = swap_one(session, stack, config, release_dir, images, swapped, on_interrupt)? {
            return Ok(Some(failure));
        }
    }
    Ok(None)
}

/// Routes the edge's new connections to `host`; whether it did. An edge that cannot
/// (an image from before the route command) is named, and the name's resolution hands
/// the frontend over as before.
fn route_edge(session: &Session, stack: &Stack, host: &str) -> bool {
    match session.try_run(Effect::Change, &stack.route_edge_cmd(host)) {
        Ok((true, _, _)) => true,
        Ok((false, _, stderr)) => {
            session.log.warn(format!("the edge could not route to {host}: {}", stderr.trim()));
            false
        }
        Err(err) => {
            session.log.warn(format!("the edge could not route to {host}: {err:#}"));
            false
        }
    }
}

/// Replaces the running container of `service` with `release_dir`'s when its image
/// changes and `stays` runs the release's image already: the new one starts beside the
/// old one; once it is healthy, whoever sends it traffic moves to it (see
/// [`Handover`]); then the old one stops taking connections, drains for up to
/// [`DRAIN_SECONDS`] and is removed. `up` then finds the service as the release
/// defines it and leaves it alone. A new container that does not get healthy is
/// removed, the old one serving on, and its failure returned.
fn swap_one(
    session: &Session,
    stack: &Stack,
    config: &Config,
    release_dir: &str,
    images: &[Image],
    (service, stays, handover): (Service, Service, Handover),
    on_interrupt: OnInterrupt,
) -> Result<Option<StartFailure>> {
    let wanted = |service: Service| images.iter().find(|i| i.service == service.name()).map(|i| i.reference.as_str());
    let (Some(service_image), Some(staying_image)) = (wanted(service), wanted(stays)) else {
        return Ok(None);
    };
    let containers = rollout::read_containers(session, stack)?;
    let of = |service: Service| -> Vec<&ContainerState> {
        containers.iter().filter(|c| c.service == service.compose_name() && c.status == "running").collect()
    };
    let (running, staying) = (of(service), of(stays));
    let [old] = running[..] else { return Ok(None) };
    let stays_as_is = matches!(staying[..], [kept] if names_same_image(&kept.image, staying_image));
    let serving = old.health.as_deref() == Some("healthy");
    if names_same_image(&old.image, service_image) || !stays_as_is || !serving {
        return Ok(None);
    }
    let name = service.compose_name();
    session.log.info(format!("{name}: starting {service_image} beside {} ({})", old.name, old.image));
    let (started, _, stderr) = session.try_run(Effect::Change, &stack.scale_cmd(release_dir, service, 2))?;
    let newcomers = |containers: &[ContainerState]| -> Vec<ContainerState> {
        containers.iter().filter(|c| c.service == name && c.name != old.name).cloned().collect()
    };
    enum Swap {
        Healthy,
        Failed(String),
    }
    let limit = std::time::Duration::from_secs(config.health.timeout_seconds.into());
    let mut last = Vec::new();
    let outcome = if !started {
        Some(Swap::Failed(format!("starting a second {name} failed: {}", stderr.trim())))
    } else {
        crate::host::session::with_backoff(
            limit,
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(1),
            || {
                if on_interrupt == OnInterrupt::GiveUp && interrupt::interrupted() {
                    return Ok(Some(Swap::Failed(format!("interrupted while the new {name} was starting"))));
                }
                last = newcomers(&rollout::read_containers(session, stack)?);
                Ok(match last.as_slice() {
                    [new] if new.has_failed() => Some(Swap::Failed(format!("the new {name} {} failed", new.name))),
                    [new] if new.health.as_deref() == Some("healthy") => Some(Swap::Healthy),
                    // Checked now: Docker before 25 checks first after a whole interval.
                    [new]
                        if new.health.as_deref() == Some("starting")
                            && rollout::passes_check(session, stack, new, service)?.0 =>
                    {
                        Some(Swap::Healthy)
                    }
                    _ => None,
                })
            },
        )?
    };
    match outcome {
        Some(Swap::Healthy) => {
            let new = &last[0];
            // The sender knows the new one before the old one stops taking connections.
            let routed = handover == Handover::RouteEdge && route_edge(session, stack, &new.name);
            if routed {
                session.log.info(format!("edge: new connections go to {}", new.name));
            }
            std::thread::sleep(if routed { ROUTE_SETTLE } else { RESOLVE_WAIT });
            session.run(Effect::Change, &stack.retire_cmd(&old.name, DRAIN_SECONDS))?;
            if routed {
                route_edge(session, stack, name);
            }
            session.log.info(format!("{name}: {} serves; {} drained and removed", new.name, old.name));
            Ok(None)
        }
        failed => {
            let reason = match failed {
                Some(Swap::Failed(reason)) => reason,
                _ => format!("the new {name} was not healthy after {} s", config.health.timeout_seconds),
            };
            let failure = rollout::failure(session, stack, &last, reason);
            for new in newcomers(&rollout::read_containers(session, stack)?) {
                let _ = session.try_run(Effect::Change, &stack.remove_cmd(&new.name))?;
            }
            session.log.warn(format!("{name}: the new one was removed; {} serves on", old.name));
            Ok(Some(failure))
        }
    }
}

/// Where the database's data lives on the target, for messages.
pub fn data_location(session: &Session) -> String {
    match session.os {
        TargetOs::Linux => format!("{}/{}", session.paths.volumes, crate::model::compose::DATA_VOLUME),
        TargetOs::Macos => format!("named volume {}", crate::model::compose::DATA_VOLUME),
    }
}

#[cfg(test)]
mod tests;
