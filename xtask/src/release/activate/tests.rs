//! Every branch of a release going live, against a scripted host: no SSH, no engine,
//! no container. The script keeps the host's files, which release the stack runs
//! and which releases get healthy, and answers each command as the host would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::*;
use crate::host::scripted::{Reply, Scripted};
use crate::host::transport::Transport;
use crate::model::paths::DeploymentPaths;
use crate::model::service::Service;
use crate::support::command::Cmd;
use crate::support::log::Log;

const BASE: &str = "/opt/cultivate";

/// What the scripted host holds and how it behaves.
#[derive(Default)]
struct FakeHost {
    files: BTreeMap<String, Vec<u8>>,
    /// The release directory the stack was last brought up from.
    running: Option<String>,
    /// Versions whose containers get healthy once up.
    healthy: BTreeSet<String>,
    /// Image references the host lacks.
    missing_images: BTreeSet<String>,
    /// `inspect` calls after which the connection drops (None: never).
    inspects_before_drop: Option<usize>,
    /// How many `inspect` calls the connection stays dropped for, once it drops
    /// (None: for good).
    drop_lasts: Option<usize>,
    /// Uploads to paths ending so fail.
    failing_uploads: Option<String>,
    /// The containers, (name, version), of a service a swap runs two of (named
    /// `cultivate_<service>_<n>`); the others run the running release's one.
    swapping: Vec<(String, String)>,
    /// Where the edge routes new connections: the frontend service's name or a
    /// container's.
    edge_route: String,
    /// Versions whose containers the engine reports `starting` (Docker before 25: no
    /// check yet) though their checks pass when run (`docker exec`).
    starting: BTreeSet<String>,
}

impl FakeHost {
    fn answer(&mut self, cmd: &Cmd, input: &[u8]) -> Reply {
        let arg = |i: usize| cmd.args.get(i).map(String::as_str).unwrap_or_default();
        match (cmd.program.as_str(), arg(2)) {
            ("sh", "upload") if self.failing_uploads.as_ref().is_some_and(|f| arg(3).ends_with(f.as_str())) => {
                Reply::fail(1, "sh: 1: cannot create: No space left on device")
            }
            ("sh", "upload") => {
                self.files.insert(arg(3).to_string(), input.to_vec());
                Reply::ok("")
            }
            ("sh", "read") => Reply::ok(String::from_utf8_lossy(self.files.get(arg(3)).map_or(&[][..], |f| f))),
            ("sh", "check-release") => {
                let missing: Vec<&str> =
                    cmd.args[3..].iter().map(String::as_str).filter(|f| !self.files.contains_key(*f)).collect();
                Reply::ok(missing.join("\n"))
            }
            ("sh", "inspect-stack") => {
                if let Some(left) = self.inspects_before_drop.as_mut() {
                    if *left == 0 {
                        match self.drop_lasts.as_mut() {
                            Some(0) => self.inspects_before_drop = None,
                            Some(lasts) => {
                                *lasts -= 1;
                                return Reply::connection_lost();
                            }
                            None => return Reply::connection_lost(),
                        }
                    } else {
                        *left -= 1;
                    }
                }
                Reply::ok(self.inspect())
            }
            ("docker", _) if arg(0) == "image" && arg(1) == "inspect" => {
                let reference = cmd.args.last().map(String::as_str).unwrap_or_default();
                if self.missing_images.contains(reference) {
                    Reply::fail(1, format!("Error: No such image: {reference}"))
                } else {
                    Reply::ok("sha256:0")
                }
            }
            ("sh", "retire") => {
                let name = arg(5).to_string();
                self.swapping.retain(|(n, _)| *n != name);
                Reply::ok("")
            }
            ("sh", "route-edge") => {
                self.edge_route = cmd.args.last().cloned().unwrap_or_default();
                Reply::ok("")
            }
            ("docker", _) if arg(0) == "exec" => {
                let name = arg(1);
                let version = self.swapping.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                let version = version.or_else(|| self.running_version()).unwrap_or_default();
                if self.starting.contains(&version) || self.healthy.contains(&version) {
                    Reply::ok("ok")
                } else {
                    Reply::fail(1, "not ready")
                }
            }
            ("docker", _) if arg(0) == "rm" => {
                let name = arg(2).to_string();
                self.swapping.retain(|(n, _)| *n != name);
                Reply::ok("")
            }
            ("docker-compose", _) if cmd.args.iter().any(|a| a == "--scale") => {
                let file = cmd.args.iter().skip_while(|a| *a != "--file").nth(1).cloned().unwrap_or_default();
                let version = file.trim_end_matches("/docker-compose.yml").rsplit('/').next().unwrap_or_default();
                let service = cmd.args.last().cloned().unwrap_or_default();
                // The one running stays (`--no-recreate`).
                let prefix = format!("cultivate_{service}_");
                if !self.swapping.iter().any(|(name, _)| name.starts_with(&prefix)) {
                    let running = self.running_version().unwrap_or_default();
                    self.swapping.push((format!("{prefix}1"), running));
                }
                self.swapping.push((format!("{prefix}2"), version.to_string()));
                Reply::ok("")
            }
            ("docker-compose", _) => {
                let file = cmd.args.iter().skip_while(|a| *a != "--file").nth(1).cloned().unwrap_or_default();
                let dir = file.trim_end_matches("/docker-compose.yml").to_string();
                // Compose converges to one container of each service, of the release.
                self.swapping.clear();
                if cmd.args.iter().any(|a| a == "up") {
                    self.running = Some(dir);
                } else if cmd.args.iter().any(|a| a == "down") {
                    self.running = None;
                }
                Reply::ok("")
            }
            _ => Reply::ok(""),
        }
    }

    fn running_version(&self) -> Option<String> {
        self.running.as_deref().and_then(|dir| dir.rsplit('/').next()).map(String::from)
    }

    /// `inspect` of the services of the running release (and of the two containers a
    /// swap runs).
    fn inspect(&self) -> String {
        let Some(version) = self.running_version() else { return "[]".to_string() };
        let container = |service: Service, name: String, version: &str| {
            let health = match version {
                v if self.starting.contains(v) => "starting",
                v if self.healthy.contains(v) => "healthy",
                _ => "unhealthy",
            };
            serde_json::json!({
                "Name": format!("/{name}"),
                "RestartCount": 0,
                "Config": {"Image": format!("cultivate-{}:{version}", service.name()), "Labels": {
                    "com.docker.compose.project": "cultivate", "com.docker.compose.service": service.compose_name()}},
                "State": {"Status": "running", "ExitCode": 0, "Health": {"Status": health, "Log": [
                    {"Output": format!("{service} is {health}")}]}},
            })
        };
        let mut containers = Vec::new();
        for service in Service::ALL {
            let prefix = format!("cultivate_{}_", service.compose_name());
            let swapping: Vec<_> = self.swapping.iter().filter(|(name, _)| name.starts_with(&prefix)).collect();
            if !swapping.is_empty() {
                for (name, version) in swapping {
                    containers.push(container(service, name.clone(), version));
                }
            } else {
                containers.push(container(service, format!("cultivate_{}_1", service.compose_name()), &version));
            }
        }
        serde_json::Value::Array(containers).to_string()
    }

    /// A release directory as a deploy leaves it.
    fn with_release(mut self, version: &str) -> FakeHost {
        for name in ["docker-compose.yml", ".env", "release.json"] {
            self.files.insert(format!("{BASE}/releases/{version}/{name}"), b"x".to_vec());
        }
        self
    }
}

/// A session on the scripted host, and the host's state to inspect afterwards.
struct Fixture {
    config: Config,
    log: Log,
    host: Arc<Mutex<FakeHost>>,
    script: Scripted,
}

impl Fixture {
    fn new(host: FakeHost) -> Fixture {
        let config =
            Config::parse("[app]\nname = \"cultivate\"\n[health]\ntimeout_seconds = 2\n", "deploy.toml", &|_| None)
                .unwrap();
        let host = Arc::new(Mutex::new(host));
        let shared = Arc::clone(&host);
        let script = Scripted::new(move |cmd, input| shared.lock().unwrap().answer(cmd, input));
        Fixture { config, log: Log::new(false), host, script }
    }

    fn session(&self) -> Session<'_> {
        let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &self.config, None).unwrap();
        Session::for_tests("scripted", Transport::Scripted(self.script.clone()), &self.log, paths)
    }

    /// Puts `version` live with `history` on the host, as a deploy's last step does.
    fn go_live(&self, version: &str, history: &History) -> Result<History> {
        self.go_live_state(state(version, ReleaseStatus::Pending), history)
    }

    fn go_live_state(&self, state: DeploymentState, history: &History) -> Result<History> {
        let session = self.session();
        let layout = Layout::new(&session.paths);
        let stack = crate::release::rollout::stack(&session, &self.config);
        self.host.lock().unwrap().files.insert(layout.history(), history.to_json().into_bytes());
        go_live(&session, &self.config, &stack, &layout, state, history)
    }

    /// The history as the host holds it now.
    fn history(&self) -> Vec<(String, ReleaseStatus)> {
        let host = self.host.lock().unwrap();
        let text = host.files.get(&format!("{BASE}/deployments.json")).cloned().unwrap_or_default();
        let history = History::parse(&String::from_utf8_lossy(&text), "deployments.json").unwrap();
        history.deployments.into_iter().map(|d| (d.version, d.status)).collect()
    }

    /// The releases the stack was brought up from, in order.
    fn ups(&self) -> Vec<String> {
        self.script
            .calls()
            .iter()
            .filter(|c| c.cmd.program == "docker-compose" && c.cmd.args.iter().any(|a| a == "up"))
            .filter_map(|c| c.cmd.args.iter().skip_while(|a| *a != "--file").nth(1).cloned())
            .map(|file| file.trim_end_matches("/docker-compose.yml").rsplit('/').next().unwrap_or_default().to_string())
            .collect()
    }

    fn ran(&self, needle: &str) -> bool {
        self.script.lines().iter().any(|line| line.contains(needle))
    }
}

fn state(version: &str, status: ReleaseStatus) -> DeploymentState {
    DeploymentState {
        version: version.into(),
        timestamp: "2026-12-03T00:00:00Z".into(),
        target_host: "scripted".into(),
        deployed_by: "test@here".into(),
        images: vec![crate::model::image::Image {
            service: "web-frontend".into(),
            reference: format!("cultivate-web-frontend:{version}"),
            id: "sha256:0".into(),
            layers: Vec::new(),
            config_fingerprint: String::new(),
            size_bytes: 0,
        }],
        configuration_hash: String::new(),
        status,
        health_checks: Vec::new(),
        replaced: None,
        backup: None,
        started: None,
        bytes_shipped: None,
    }
}

fn history_of(entries: &[(&str, ReleaseStatus)]) -> History {
    History { deployments: entries.iter().map(|(v, s)| state(v, *s)).collect(), ..History::default() }
}

/// v2 was started, recorded as failed, and v1 started again and recorded.
fn assert_v2_failed_and_v1_restored(fixture: &Fixture) {
    assert_eq!(fixture.ups(), ["v2", "v1"]);
    assert_eq!(
        fixture.history(),
        [
            ("v1".into(), ReleaseStatus::Active),
            ("v2".into(), ReleaseStatus::Failed),
            ("v1".into(), ReleaseStatus::RolledBack)
        ]
    );
}

#[test]
fn a_healthy_release_becomes_current_and_is_recorded() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v2".into());
    let fixture = Fixture::new(host);
    let written = fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap();
    assert_eq!(written.current().map(|c| c.version.as_str()), Some("v2"));
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::Active), ("v2".into(), ReleaseStatus::Active)]);
    assert_eq!(fixture.ups(), ["v2"]);
    assert!(fixture.ran("point-current"), "{:?}", fixture.script.lines());
}

#[test]
fn an_unhealthy_release_is_recorded_failed_and_the_previous_one_restored() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    let fixture = Fixture::new(host);
    let err = fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err().to_string();
    assert!(err.contains("failed to start or became unhealthy"), "{err}");
    assert!(err.contains("the previous release v1 was restored and is healthy"), "{err}");
    assert_v2_failed_and_v1_restored(&fixture);
    // The failing containers' logs are saved beside the failed release (Property 33).
    let host = fixture.host.lock().unwrap();
    assert!(
        host.files.keys().any(|f| f.starts_with(&format!("{BASE}/releases/v2/failure-"))),
        "{:?}",
        host.files.keys()
    );
}

#[test]
fn a_restore_that_fails_too_says_so_and_keeps_the_data() {
    let fixture = Fixture::new(FakeHost::default().with_release("v1").with_release("v2"));
    let err = fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err().to_string();
    assert!(err.contains("restoring the previous release v1 failed too"), "{err}");
    assert!(err.contains("The data volume is untouched"), "{err}");
    assert_eq!(fixture.ups(), ["v2", "v1"]);
    assert!(!fixture.ran(" down "), "a volume-keeping down is not expected here either");
    assert_eq!(fixture.history().last(), Some(&("v2".into(), ReleaseStatus::Failed)));
}

/// Issue 12: an error once the release started (here the connection dropping during
/// the health wait) used to end the deploy with nothing recorded and the new release
/// left running while the history named the old one. Now it is a failure like any
/// other: recorded, and the previous release restored.
#[test]
fn an_ssh_drop_during_the_health_wait_is_recorded_and_the_previous_release_restored() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    host.healthy.insert("v2".into());
    host.inspects_before_drop = Some(0);
    host.drop_lasts = Some(1);
    let fixture = Fixture::new(host);
    let err = format!("{:#}", fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err());
    assert!(err.contains("the connection to the scripted host was lost"), "{err}");
    assert!(err.contains("the previous release v1 was restored and is healthy"), "{err}");
    assert_v2_failed_and_v1_restored(&fixture);
}

/// A host that stays unreachable: the restore is tried, and the error names the lost
/// connection (the next command finds the difference and reports it: `rollout::drift`).
#[test]
fn a_host_that_stays_unreachable_gets_the_restore_tried_and_the_loss_named() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    host.inspects_before_drop = Some(0);
    let fixture = Fixture::new(host);
    let err = format!("{:#}", fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err());
    assert!(err.contains("the connection to the scripted host was lost"), "{err}");
    assert_eq!(fixture.ups(), ["v2", "v1"]);
}

/// A healthy release whose history cannot be written is not left running unrecorded:
/// the previous release comes back, and the host runs what its history says.
#[test]
fn a_history_that_cannot_be_written_puts_the_recorded_release_back() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    host.healthy.insert("v2".into());
    host.failing_uploads = Some("deployments.json".into());
    let fixture = Fixture::new(host);
    let history = history_of(&[("v1", ReleaseStatus::Active)]);
    let err = format!("{:#}", fixture.go_live("v2", &history).unwrap_err());
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(fixture.ups(), ["v2", "v1"]);
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::Active)]);
    assert_eq!(fixture.host.lock().unwrap().running.as_deref(), Some("/opt/cultivate/releases/v1"));
    assert!(!fixture.ran("point-current /opt/cultivate/current /opt/cultivate/releases/v2"));
}

/// Ctrl-C or SIGTERM while the new release starts: it is given up, recorded as failed,
/// and the previous release restored to the end, however healthy the new one was.
#[test]
fn an_interrupt_during_the_health_wait_restores_the_previous_release() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    host.healthy.insert("v2".into());
    let fixture = Fixture::new(host);
    crate::support::interrupt::force_for_this_thread();
    let err = format!("{:#}", fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err());
    assert!(!crate::support::interrupt::interrupted(), "the interruption was not acknowledged");
    assert!(err.contains("interrupted while the release was starting"), "{err}");
    assert!(err.contains("the previous release v1 was restored and is healthy"), "{err}");
    assert_v2_failed_and_v1_restored(&fixture);
}

#[test]
fn a_failed_first_deploy_stops_its_stack_and_keeps_the_data() {
    let fixture = Fixture::new(FakeHost::default().with_release("v1"));
    let err = fixture.go_live("v1", &History::default()).unwrap_err().to_string();
    assert!(err.contains("this was the first deploy on scripted"), "{err}");
    assert!(err.contains("/opt/cultivate/volumes/db_data"), "{err}");
    assert!(fixture.ran("down --remove-orphans"), "{:?}", fixture.script.lines());
    assert!(!fixture.ran("--volumes") && !fixture.ran(" -v"), "volumes removed: {:?}", fixture.script.lines());
    assert_eq!(fixture.host.lock().unwrap().running, None);
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::Failed)]);
}

#[test]
fn a_failed_redeploy_of_the_only_release_leaves_its_containers_for_inspection() {
    let fixture = Fixture::new(FakeHost::default().with_release("v1"));
    let err = fixture.go_live("v1", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err().to_string();
    assert!(err.contains("v1 was redeployed over itself"), "{err}");
    assert!(!fixture.ran("down --remove-orphans"));
    assert_eq!(fixture.ups(), ["v1"]);
}

/// A redeploy of the running release with nothing changed restarts nothing: no `up`,
/// recorded again as active. Anything different (configuration, images, health, what
/// runs) and the release is started as usual.
#[test]
fn a_redeploy_with_nothing_changed_restarts_nothing() {
    let running = |healthy: bool| {
        let mut host = FakeHost::default().with_release("v1");
        host.running = Some(format!("{BASE}/releases/v1"));
        if healthy {
            host.healthy.insert("v1".into());
        }
        host
    };
    let current = |hash: &str| {
        let mut entry = state("v1", ReleaseStatus::Active);
        entry.configuration_hash = hash.into();
        History { deployments: vec![entry], ..History::default() }
    };
    let pending = |hash: &str, id: &str| {
        let mut entry = state("v1", ReleaseStatus::Pending);
        entry.configuration_hash = hash.into();
        entry.images[0].id = id.into();
        entry
    };

    let fixture = Fixture::new(running(true));
    let written = fixture.go_live_state(pending("h1", "sha256:0"), &current("h1")).unwrap();
    assert!(fixture.ups().is_empty(), "{:?}", fixture.script.lines());
    assert_eq!(written.current().map(|c| c.version.as_str()), Some("v1"));
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::Active), ("v1".into(), ReleaseStatus::Active)]);
    assert!(written.current().unwrap().health_checks.iter().all(|h| h.status == "healthy"));

    // Another configuration, another image under the same version: started.
    for changed in [pending("h2", "sha256:0"), pending("h1", "sha256:1")] {
        let fixture = Fixture::new(running(true));
        fixture.go_live_state(changed, &current("h1")).unwrap();
        assert_eq!(fixture.ups(), ["v1"]);
    }
    // Not healthy, or not running at all: started (and here it stays unhealthy).
    for host in [running(false), FakeHost::default().with_release("v1")] {
        let fixture = Fixture::new(host);
        assert!(fixture.go_live_state(pending("h1", "sha256:0"), &current("h1")).is_err());
        assert_eq!(fixture.ups(), ["v1"]);
    }
}

#[test]
fn a_redeploy_falls_back_past_the_current_version() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    let fixture = Fixture::new(host);
    let history = history_of(&[("v1", ReleaseStatus::Active), ("v2", ReleaseStatus::Active)]);
    let err = fixture.go_live("v2", &history).unwrap_err().to_string();
    assert!(err.contains("the previous release v1 was restored"), "{err}");
    assert_eq!(fixture.ups(), ["v2", "v1"]);
}

#[test]
fn an_incomplete_rollback_target_is_not_started() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    host.files.remove(&format!("{BASE}/releases/v1/.env"));
    host.missing_images.insert("cultivate-web-frontend:v1".into());
    let fixture = Fixture::new(host);
    let err = fixture.go_live("v2", &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err().to_string();
    assert!(err.contains("the automatic rollback did not start"), "{err}");
    assert!(err.contains("/opt/cultivate/releases/v1/.env") && err.contains("cultivate-web-frontend:v1"), "{err}");
    assert_eq!(fixture.ups(), ["v2"], "the incomplete release was started");
}

#[test]
fn restore_records_the_release_it_replaced() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.healthy.insert("v1".into());
    let fixture = Fixture::new(host);
    let session = fixture.session();
    let layout = Layout::new(&session.paths);
    let stack = crate::release::rollout::stack(&session, &fixture.config);
    let target = DeploymentState {
        deployed_by: "someone@else".into(),
        backup: Some("20261203T000000Z-v0.dump".into()),
        bytes_shipped: Some(5),
        ..state("v1", ReleaseStatus::Active)
    };
    let entry = restore(&session, &fixture.config, &stack, &layout, &History::default(), &target, Some("v2".into()))
        .unwrap()
        .unwrap();
    assert_eq!((entry.status, entry.replaced.as_deref()), (ReleaseStatus::RolledBack, Some("v2")));
    // The rollback's record is its own: who ran it, when it began, nothing shipped, no
    // backup (not those of the deploy that first brought v1).
    assert_eq!(entry.deployed_by, crate::release::state::who_am_i());
    assert_eq!((entry.backup.as_deref(), entry.bytes_shipped), (None, None));
    assert!(entry.started.as_deref().is_some_and(|s| s <= entry.timestamp.as_str()), "{entry:?}");
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::RolledBack)]);
}

/// The release's images: the backend its own, the others unchanged since v1 (named as
/// v1 names them).
fn backend_change(version: &str) -> DeploymentState {
    change_of(Service::BackendApi, version)
}

/// The release's images: `changed`'s its own, the others unchanged since v1.
fn change_of(changed: Service, version: &str) -> DeploymentState {
    let mut entry = state(version, ReleaseStatus::Pending);
    entry.images = Service::ALL
        .iter()
        .map(|service| {
            let tag = if *service == changed { version } else { "v1" };
            crate::model::image::Image {
                service: service.name().into(),
                reference: format!("cultivate-{}:{tag}", service.name()),
                id: format!("sha256:{tag}"),
                layers: Vec::new(),
                config_fingerprint: String::new(),
                size_bytes: 0,
            }
        })
        .collect();
    entry
}

/// Issue 12, item 2: a backend-only change starts the new backend beside the old one,
/// and only once it is healthy does the old one drain and go; `up` comes after.
#[test]
fn a_backend_change_is_swapped_beside_the_running_backend() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.running = Some(format!("{BASE}/releases/v1"));
    host.healthy.extend(["v1".to_string(), "v2".to_string()]);
    let fixture = Fixture::new(host);
    fixture.go_live_state(backend_change("v2"), &history_of(&[("v1", ReleaseStatus::Active)])).unwrap();
    let lines = fixture.script.lines();
    let position = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let scale = position("--scale").expect("the new backend started beside the old");
    assert!(
        lines[scale].contains("--no-deps --no-recreate --scale") && lines[scale].ends_with(" backend"),
        "{lines:#?}"
    );
    let retire = position("retire docker 30 cultivate_backend_1").expect("the old backend drained and removed");
    let up = lines.iter().rposition(|l| l.contains("docker-compose") && l.contains(" up ")).unwrap();
    assert!(scale < retire && retire < up, "{lines:#?}");
    assert_eq!(fixture.history(), [("v1".into(), ReleaseStatus::Active), ("v2".into(), ReleaseStatus::Active)]);
}

/// Issue 12, item 2: the edge passes TCP and cannot retry a connection the old
/// frontend resets as it closes its listener, so it is routed to the new frontend by
/// that container's own name before the old one stops, and back to the service's name
/// once the old one is gone; a route left by a stopped swap is undone first.
#[test]
fn a_frontend_change_routes_the_edge_to_the_new_frontend_before_the_old_one_stops() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.running = Some(format!("{BASE}/releases/v1"));
    host.healthy.extend(["v1".to_string(), "v2".to_string()]);
    host.edge_route = "cultivate_frontend_7".into();
    let fixture = Fixture::new(host);
    fixture
        .go_live_state(change_of(Service::WebFrontend, "v2"), &history_of(&[("v1", ReleaseStatus::Active)]))
        .unwrap();
    let lines = fixture.script.lines();
    let position = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let routes: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| l.contains("route-edge")).map(|(i, _)| i).collect();
    let [reset, to_new, back] = routes[..] else { panic!("three routes expected: {lines:#?}") };
    let scale = position("--scale 'frontend=2' frontend")
        .unwrap_or_else(|| panic!("the new frontend started beside the old: {lines:#?}"));
    let retire = position("retire docker 30 cultivate_frontend_1").expect("the old frontend drained and removed");
    assert!(lines[reset].ends_with("cultivate-edge-route frontend"), "{lines:#?}");
    assert!(lines[to_new].ends_with("cultivate-edge-route cultivate_frontend_2"), "{lines:#?}");
    assert!(lines[back].ends_with("cultivate-edge-route frontend"), "{lines:#?}");
    assert!(reset < scale && scale < to_new && to_new < retire && retire < back, "{lines:#?}");
    assert!(!fixture.ran("retire docker 30 cultivate_backend"), "the backend did not change: {lines:#?}");
    assert_eq!(fixture.host.lock().unwrap().edge_route, "frontend");
    assert_eq!(fixture.history().last(), Some(&("v2".into(), ReleaseStatus::Active)));
}

/// Issue 12, item 6: before Docker 25 the engine first checks a container after a whole
/// interval; a new backend the engine still reports starting is checked by the deploy,
/// and swapped in as soon as it passes (the timeout here, 2 s, is shorter than any
/// interval the engine would make it wait).
#[test]
fn a_starting_backend_that_passes_its_check_is_swapped_in_without_waiting_for_the_engine() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.running = Some(format!("{BASE}/releases/v1"));
    host.healthy.insert("v1".into());
    host.starting.insert("v2".into());
    let fixture = Fixture::new(host);
    fixture.go_live_state(backend_change("v2"), &history_of(&[("v1", ReleaseStatus::Active)])).unwrap();
    assert!(fixture.ran("exec cultivate_backend_2"), "{:?}", fixture.script.lines());
    assert!(fixture.ran("retire docker 30 cultivate_backend_1"), "{:?}", fixture.script.lines());
    assert_eq!(fixture.history().last(), Some(&("v2".into(), ReleaseStatus::Active)));
}

/// A new backend that never gets healthy is removed, and the old one, never stopped,
/// serves on; the release is recorded as failed.
#[test]
fn a_new_backend_that_never_gets_healthy_is_removed_and_the_old_one_serves_on() {
    let mut host = FakeHost::default().with_release("v1").with_release("v2");
    host.running = Some(format!("{BASE}/releases/v1"));
    host.healthy.insert("v1".into());
    let fixture = Fixture::new(host);
    let err = format!(
        "{:#}",
        fixture.go_live_state(backend_change("v2"), &history_of(&[("v1", ReleaseStatus::Active)])).unwrap_err()
    );
    assert!(err.contains("the new backend cultivate_backend_2 failed"), "{err}");
    assert!(fixture.ran("rm --force cultivate_backend_2"), "{:?}", fixture.script.lines());
    assert!(!fixture.ran("retire"), "the old backend was stopped: {:?}", fixture.script.lines());
    assert_eq!(fixture.history().last(), Some(&("v1".into(), ReleaseStatus::RolledBack)));
    assert!(fixture.history().contains(&("v2".into(), ReleaseStatus::Failed)));
}
