//! The running stack on a target, as the compose CLI and the runtime see it: the
//! command lines that start and stop a release under one fixed project name (so named
//! volumes outlive releases), and the containers' state and health read back from
//! `inspect`. Knows compose's command line and labels; not how commands travel.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::host::probe::ComposeCommand;
use crate::host::runtime::RuntimeKind;
use crate::model::service::Service;
use crate::release::state::{COMPOSE_FILE, ENV_FILE};
use crate::support::command::Cmd;

/// The label compose puts on every container of a project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The edge's command that routes its new connections to a host (deploy/edge/route.sh).
pub const EDGE_ROUTE_COMMAND: &str = "cultivate-edge-route";
/// Restarts after which a container that is restarting again counts as crashing in a
/// loop (a healthy container that restarted long ago does not).
pub const CRASH_LOOP_RESTARTS: u32 = 3;

#[derive(Clone, Debug)]
pub struct Stack {
    pub compose: ComposeCommand,
    /// Docker, or Finch (whose compose has no healthchecks).
    pub runtime: RuntimeKind,
    /// The compose project name: the app's name, the same for every release.
    pub project: String,
}

impl Stack {
    fn compose_cmd(&self, release_dir: &str) -> Cmd {
        let argv = self.compose.argv();
        Cmd::new(argv[0]).args(argv[1..].iter().copied()).args([
            "--project-name",
            &self.project,
            "--file",
            &format!("{release_dir}/{COMPOSE_FILE}"),
            "--env-file",
            &format!("{release_dir}/{ENV_FILE}"),
        ])
    }

    /// Starts (or converges to) the release in `release_dir`. Containers whose
    /// definition is unchanged are left running; volumes are never touched.
    pub fn up_cmd(&self, release_dir: &str) -> Cmd {
        let up = self.compose_cmd(release_dir).args(["up", "--detach", "--remove-orphans"]);
        match self.compose {
            // podman-compose 1.6 recreates the whole project when any service changed,
            // but then creates only the changed ones: the others are gone and it waits
            // for them forever. Recreating all of them is what it meant to do.
            ComposeCommand::Podman(_) => up.arg("--force-recreate"),
            _ => up,
        }
    }

    /// Whether a service can be replaced beside itself (`up --scale`): Docker's
    /// compose, v1 or v2. podman-compose and Finch's compose start a release whole.
    pub fn swaps(&self) -> bool {
        matches!(self.compose, ComposeCommand::DockerV1(_) | ComposeCommand::DockerV2(_))
    }

    /// Starts containers of `service` from `release_dir`'s definition beside the
    /// running one, up to `count`, touching nothing else (compose creates the new ones
    /// from the new definition and, with `--no-recreate`, leaves the running one as it
    /// is).
    pub fn scale_cmd(&self, release_dir: &str, service: Service, count: u32) -> Cmd {
        let service = service.compose_name();
        self.compose_cmd(release_dir).args([
            "up",
            "--detach",
            "--no-deps",
            "--no-recreate",
            "--scale",
            &format!("{service}={count}"),
            service,
        ])
    }

    /// Stops `container`, giving it `grace_seconds` to finish the requests it has (the
    /// backend stops accepting on SIGTERM and drains; nginx, on its SIGQUIT, does the
    /// same), then removes it.
    pub fn retire_cmd(&self, container: &str, grace_seconds: u32) -> Cmd {
        Cmd::new("sh").args([
            "-c",
            "\"$1\" stop --time \"$2\" \"$3\" >/dev/null && \"$1\" rm \"$3\" >/dev/null",
            "retire",
            self.runtime.program(),
            &grace_seconds.to_string(),
            container,
        ])
    }

    /// Routes the edge's new connections to `host`: to the new frontend's own container
    /// name while a swap hands the frontend over, to the service's name otherwise. The
    /// connections it has keep their frontend. Does nothing where no edge runs.
    pub fn route_edge_cmd(&self, host: &str) -> Cmd {
        let script = "for edge in $(\"$1\" ps -q --filter \"label=$2=$3\" --filter \"label=$4=$5\" --filter status=running); do \
                      \"$1\" exec \"$edge\" \"$6\" \"$7\" || exit; done";
        Cmd::new("sh").args([
            "-c",
            script,
            "route-edge",
            self.runtime.program(),
            PROJECT_LABEL,
            &self.project,
            SERVICE_LABEL,
            Service::Edge.compose_name(),
            EDGE_ROUTE_COMMAND,
            host,
        ])
    }

    /// Removes `container` at once, whatever it is doing.
    pub fn remove_cmd(&self, container: &str) -> Cmd {
        Cmd::new(self.runtime.program()).args(["rm", "--force", container])
    }

    /// Stops and removes the release's containers and networks; never its volumes.
    pub fn down_cmd(&self, release_dir: &str) -> Cmd {
        self.compose_cmd(release_dir).args(["down", "--remove-orphans"])
    }

    /// `inspect` of every container of the project, as a JSON array (`[]` when none).
    pub fn inspect_cmd(&self) -> Cmd {
        let script = "ids=$(\"$1\" ps -a -q --filter \"label=$2=$3\"); \
                      if [ -z \"$ids\" ]; then echo '[]'; else \"$1\" inspect $ids; fi";
        Cmd::new("sh").args(["-c", script, "inspect-stack", self.runtime.program(), PROJECT_LABEL, &self.project])
    }

    /// The last `lines` lines of a container's log (stdout and stderr together).
    pub fn logs_cmd(&self, container: &str, lines: u32, follow: bool, timestamps: bool) -> Cmd {
        let mut cmd = Cmd::new(self.runtime.program()).args(["logs", "--tail", &lines.to_string()]);
        if follow {
            cmd = cmd.arg("--follow");
        }
        if timestamps {
            cmd = cmd.arg("--timestamps");
        }
        cmd.arg(container)
    }

    /// The service's health check, run now: Podman runs the container's own check
    /// (which only systemd's timers run otherwise); Finch, which has no healthchecks,
    /// runs the service's health command inside the container.
    pub fn health_probe_cmd(&self, container: &str, service: Service) -> Cmd {
        match self.runtime {
            RuntimeKind::Podman => Cmd::new("podman").args(["healthcheck", "run", container]),
            _ => Cmd::new(self.runtime.program())
                .args(["exec", container])
                .args(service.health_command().iter().copied()),
        }
    }

    /// Whether the deploy runs the health checks itself rather than reading what the
    /// engine recorded.
    pub fn probes_health(&self) -> bool {
        self.runtime != RuntimeKind::Docker
    }
}

/// What `inspect` says of one container.
#[derive(Clone, Debug, Deserialize)]
struct Inspected {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "RestartCount", default)]
    restart_count: u32,
    #[serde(rename = "Config")]
    config: InspectedConfig,
    #[serde(rename = "State")]
    state: InspectedState,
    #[serde(rename = "NetworkSettings", default)]
    network: Option<InspectedNetwork>,
}

#[derive(Clone, Debug, Deserialize)]
struct InspectedConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Deserialize)]
struct InspectedState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: i64,
    #[serde(rename = "Health", default)]
    health: Option<InspectedHealth>,
}

#[derive(Clone, Debug, Deserialize)]
struct InspectedHealth {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Log", default)]
    log: Option<Vec<HealthProbe>>,
}

#[derive(Clone, Debug, Deserialize)]
struct HealthProbe {
    #[serde(rename = "Output", default)]
    output: String,
}

#[derive(Clone, Debug, Deserialize)]
struct InspectedNetwork {
    #[serde(rename = "Ports", default)]
    ports: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
}

#[derive(Clone, Debug, Deserialize)]
struct PortBinding {
    #[serde(rename = "HostPort", default)]
    host_port: String,
}

/// One container of the stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    pub name: String,
    pub service: String,
    pub image: String,
    /// created, running, restarting, exited, …
    pub status: String,
    pub exit_code: i64,
    /// The engine's health status, when the image or compose file defines a check.
    pub health: Option<String>,
    /// The last health probe's output.
    pub health_output: Option<String>,
    /// Host ports the container publishes.
    pub host_ports: Vec<u16>,
    /// How often the engine restarted it (its restart policy).
    pub restart_count: u32,
}

impl ContainerState {
    /// Failed for good: exited, dead, reported unhealthy, or crashing in a loop under
    /// its restart policy.
    pub fn has_failed(&self) -> bool {
        matches!(self.status.as_str(), "exited" | "dead")
            || self.health.as_deref() == Some("unhealthy")
            || (self.status == "restarting" && self.restart_count >= CRASH_LOOP_RESTARTS)
    }
}

/// Parses `inspect` output (a JSON array) into the project's containers, by service.
pub fn parse_containers(json: &str) -> Result<Vec<ContainerState>> {
    let inspected: Vec<Inspected> =
        serde_json::from_str(json.trim()).context("cannot read the containers' `inspect` output")?;
    let mut containers: Vec<ContainerState> = inspected
        .into_iter()
        .map(|c| {
            let labels = c.config.labels.unwrap_or_default();
            let mut host_ports: Vec<u16> = c
                .network
                .and_then(|n| n.ports)
                .unwrap_or_default()
                .into_values()
                .flatten()
                .flatten()
                .filter_map(|b| b.host_port.parse().ok())
                .collect();
            host_ports.sort_unstable();
            host_ports.dedup();
            ContainerState {
                name: c.name.trim_start_matches('/').to_string(),
                service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                image: c.config.image,
                status: c.state.status,
                exit_code: c.state.exit_code,
                health_output: c
                    .state
                    .health
                    .as_ref()
                    .and_then(|h| h.log.as_ref()?.last().map(|p| p.output.trim().to_string())),
                health: c.state.health.map(|h| h.status).filter(|s| !s.is_empty()),
                host_ports,
                restart_count: c.restart_count,
            }
        })
        .collect();
    containers.sort_by(|a, b| {
        let rank = |s: &str| Service::ALL.iter().position(|x| x.compose_name() == s).unwrap_or(Service::ALL.len());
        rank(&a.service).cmp(&rank(&b.service)).then(a.name.cmp(&b.name))
    });
    Ok(containers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::platform::Version;

    fn stack() -> Stack {
        Stack {
            compose: ComposeCommand::DockerV1(Version(vec![1, 29])),
            runtime: RuntimeKind::Docker,
            project: "cultivate".into(),
        }
    }

    #[test]
    fn up_and_down_name_the_project_and_never_remove_volumes() {
        let up = stack().up_cmd("/opt/c/releases/v1").to_string();
        assert_eq!(
            up,
            "docker-compose --project-name cultivate --file /opt/c/releases/v1/docker-compose.yml \
             --env-file /opt/c/releases/v1/.env up --detach --remove-orphans"
        );
        let down = stack().down_cmd("/opt/c/releases/v1").to_string();
        assert!(down.ends_with("down --remove-orphans"), "{down}");
        assert!(!down.contains("-v") && !down.contains("--volumes"), "{down}");
        let finch =
            Stack { compose: ComposeCommand::Finch(Version(vec![1, 2])), runtime: RuntimeKind::Finch, ..stack() };
        assert!(finch.up_cmd("/Users/a/c/releases/v1").to_string().starts_with("finch compose --project-name"));
    }

    /// The route command run by `sh` against a stand-in `docker` that lists `edges`
    /// and whose `exec` exits `exec_status`: its status, and what the stand-in saw.
    fn route_with(edges: &str, exec_status: u8) -> (bool, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("cultivate-route-{}-{}-{exec_status}", std::process::id(), edges.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = format!(
            "#!/bin/sh\necho \"$*\" >> \"{log}\"\ncase \"$1\" in ps) printf '{edges}' ;; exec) exit {exec_status} ;; esac\n",
            log = dir.join("calls").display()
        );
        std::fs::write(dir.join("docker"), fake).unwrap();
        std::fs::set_permissions(dir.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cmd = stack().route_edge_cmd("cultivate_frontend_2");
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
        let status = std::process::Command::new(&cmd.program).args(&cmd.args).env("PATH", path).status().unwrap();
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
        std::fs::remove_dir_all(&dir).unwrap();
        (status.success(), calls)
    }

    #[test]
    fn the_edge_is_routed_where_it_runs_and_a_refusal_is_reported() {
        let (ok, calls) = route_with("e1\\n", 0);
        assert!(ok, "{calls}");
        let lines: Vec<&str> = calls.lines().collect();
        assert_eq!(
            lines,
            [
                "ps -q --filter label=com.docker.compose.project=cultivate --filter \
                 label=com.docker.compose.service=edge --filter status=running",
                "exec e1 cultivate-edge-route cultivate_frontend_2",
            ]
        );
        // No edge (a first deploy): nothing to route, not an error.
        let (ok, calls) = route_with("", 0);
        assert!(ok && !calls.contains("exec"), "{calls}");
        // An edge that refuses (or an image without the command) fails the command.
        let (ok, _) = route_with("e1\\n", 127);
        assert!(!ok);
    }

    #[test]
    fn podman_recreates_the_project_and_runs_the_checks_itself() {
        let podman =
            Stack { compose: ComposeCommand::Podman(Version(vec![1, 6, 0])), runtime: RuntimeKind::Podman, ..stack() };
        let up = podman.up_cmd("/opt/c/releases/v1").to_string();
        assert_eq!(
            up,
            "podman-compose --project-name cultivate --file /opt/c/releases/v1/docker-compose.yml \
             --env-file /opt/c/releases/v1/.env up --detach --remove-orphans --force-recreate"
        );
        assert!(podman.probes_health());
        assert_eq!(
            podman.health_probe_cmd("cultivate_backend_1", Service::BackendApi).to_string(),
            "podman healthcheck run cultivate_backend_1"
        );
        assert!(podman.inspect_cmd().to_string().contains("podman"));
        // Docker records its checks' results; nothing is run for them.
        assert!(!stack().probes_health());
        assert!(!stack().up_cmd("/opt/c/releases/v1").to_string().contains("--force-recreate"));
        let finch =
            Stack { compose: ComposeCommand::Finch(Version(vec![1, 2])), runtime: RuntimeKind::Finch, ..stack() };
        assert!(finch.probes_health());
        assert_eq!(
            finch.health_probe_cmd("cultivate_backend_1", Service::BackendApi).to_string(),
            "finch exec cultivate_backend_1 /usr/local/bin/backend-api healthcheck"
        );
    }

    /// As Podman 5.8 prints it: no leading `/`, the image under `localhost/`, and
    /// "starting" until a check runs.
    #[test]
    fn podman_inspect_output_is_read_too() {
        let json = r#"[{"Name": "cultivate_frontend_1", "RestartCount": 0, "Config": {"Image": "localhost/cultivate-web-frontend:v2",
          "Labels": {"com.docker.compose.project": "cultivate", "com.docker.compose.service": "frontend", "io.podman.compose.project": "cultivate"}},
          "State": {"Status": "running", "ExitCode": 0, "Health": {"Status": "starting", "FailingStreak": 0, "Log": null}},
          "NetworkSettings": {"Ports": {"443/tcp": null, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}}}]"#;
        let containers = parse_containers(json).unwrap();
        assert_eq!(containers[0].name, "cultivate_frontend_1");
        assert_eq!(containers[0].service, "frontend");
        assert_eq!(containers[0].health.as_deref(), Some("starting"));
        assert_eq!(containers[0].health_output, None);
        assert_eq!(containers[0].host_ports, [8080]);
        assert!(!containers[0].has_failed());
    }

    #[test]
    fn inspect_output_gives_service_state_health_and_ports() {
        let json = r#"[
          {"Name":"/cultivate_frontend_1","Config":{"Image":"cultivate-web-frontend:v1","Labels":{"com.docker.compose.service":"frontend"}},
           "State":{"Status":"running","ExitCode":0,"Health":{"Status":"healthy","Log":[{"Output":"ok\n"}]}},
           "NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}],"443/tcp":null}}},
          {"Name":"/cultivate_database_1","RestartCount":0,"Config":{"Image":"cultivate-database:v1","Labels":{"com.docker.compose.service":"database"}},
           "State":{"Status":"exited","ExitCode":1},"NetworkSettings":{"Ports":{}}}
        ]"#;
        let containers = parse_containers(json).unwrap();
        assert_eq!(containers[0].service, "database");
        assert!(containers[0].has_failed());
        assert_eq!(containers[0].health, None);
        assert_eq!(containers[1].name, "cultivate_frontend_1");
        assert_eq!(containers[1].health.as_deref(), Some("healthy"));
        assert_eq!(containers[1].health_output.as_deref(), Some("ok"));
        assert_eq!(containers[1].host_ports, vec![8080]);
        assert!(parse_containers("[]").unwrap().is_empty());
        let looping = r#"[{"Name":"/b","RestartCount":3,"Config":{"Image":"x"},"State":{"Status":"restarting"}}]"#;
        assert!(parse_containers(looping).unwrap()[0].has_failed());
        assert!(parse_containers("not json").is_err());
    }
}
