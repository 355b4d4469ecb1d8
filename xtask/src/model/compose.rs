//! The compose model: typed structs for the part of the Compose Specification we use,
//! serialized with serde_norway, and the env file rendered beside the compose file.
//! Pure functions of the configuration, the target OS, its paths and the release.
//!
//! One file serves `docker compose` (v2), `docker-compose` (v1), `podman-compose` and
//! `finch compose`: no top-level `version:` or `name:` (v1 rejects `name`; the project
//! name is given on the command line), volumes in the long syntax (a path may hold
//! `:`), and for Finch no service `healthcheck` nor health conditions, which nerdctl
//! does not implement. Health conditions only where the engine checks every second
//! while a container starts (Docker 25+ with Compose v2.20.2+); elsewhere compose
//! would wait a whole check interval, so the services start in order and the deploy
//! checks the ones still starting itself. Podman keeps the healthchecks but starts in
//! order only:
//! `podman-compose` waits for a health condition by polling a status that only
//! systemd's timers update, so on a host without them it waits forever; the deploy
//! runs the checks itself while it waits (release::rollout).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::config::{Config, Limits};
use crate::model::image::Image;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{LinuxEngine, TargetOs};
use crate::model::service::Service;

pub const SOCKET_VOLUME: &str = "db_socket";
pub const DATA_VOLUME: &str = "db_data";
pub const INTERNAL_NETWORK: &str = "internal";
pub const EDGE_NETWORK: &str = "edge";
pub use crate::model::service::SOCKET_DIR;
pub const DATA_DIR: &str = "/var/lib/postgresql/data";
pub const CERT_DIR: &str = "/etc/nginx/certs";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComposeFile {
    pub services: Services,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
}

/// The services, in dependency order; the edge on Docker targets only.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Services {
    pub database: ServiceDefinition,
    pub backend: ServiceDefinition,
    pub frontend: ServiceDefinition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<ServiceDefinition>,
}

impl Services {
    /// Each definition with its service's compose name.
    pub fn iter(&self) -> Vec<(&'static str, &ServiceDefinition)> {
        let mut all = vec![
            (Service::Database.compose_name(), &self.database),
            (Service::BackendApi.compose_name(), &self.backend),
            (Service::WebFrontend.compose_name(), &self.frontend),
        ];
        if let Some(edge) = &self.edge {
            all.push((Service::Edge.compose_name(), edge));
        }
        all
    }

    /// The one service that publishes the site's ports.
    pub fn published(&self) -> &ServiceDefinition {
        self.edge.as_ref().unwrap_or(&self.frontend)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceDefinition {
    pub image: String,
    /// `KEY=value` strings: a list never lets a YAML 1.1 reader turn `yes` into a bool.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    pub networks: Vec<String>,
    #[serde(skip_serializing_if = "DependsOn::is_empty")]
    pub depends_on: DependsOn,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub restart: String,
    pub logging: Logging,
    pub deploy: Deploy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// A volume or bind mount in the long syntax.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DependsOn {
    /// Start order only (Finch, Podman).
    Order(Vec<String>),
    /// Start once each dependency is healthy.
    Healthy(BTreeMap<String, Condition>),
}

impl DependsOn {
    fn is_empty(&self) -> bool {
        match self {
            DependsOn::Order(names) => names.is_empty(),
            DependsOn::Healthy(names) => names.is_empty(),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        match self {
            DependsOn::Order(names) => names.iter().map(String::as_str).collect(),
            DependsOn::Healthy(names) => names.keys().map(String::as_str).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub condition: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
    /// How often the check runs during `start_period` (Docker 25+, Compose v2.20.2+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Logging {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deploy {
    pub resources: DeployResources,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployResources {
    pub limits: DeployLimits,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployLimits {
    /// A string, as the specification writes it (`"0.5"`).
    pub cpus: String,
    pub memory: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Podman: no DNS server on this network. The frontend sits on two networks and
    /// nginx asks the first nameserver only; Podman lists one per network in no set
    /// order, and the edge network's does not know the backend.
    #[serde(rename = "x-podman.disable_dns", skip_serializing_if = "std::ops::Not::not")]
    pub podman_disable_dns: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Volume {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub file: String,
}

/// What a release renders from.
#[derive(Clone, Copy, Debug)]
pub struct RenderInput<'a> {
    pub config: &'a Config,
    pub paths: &'a DeploymentPaths,
    /// What runs the stack on a Linux target (ignored for macOS, which runs Finch).
    pub engine: LinuxEngine,
    /// The image tag every service is pinned to, but for those in `images`.
    pub version: &'a str,
    /// The release's images: a service's `image:` is its reference here when given. A
    /// service whose image did not change keeps the reference of the release that
    /// brought it, so compose keeps its container.
    pub images: &'a [Image],
    /// Names of the files under `secrets/` (each becomes a file-based secret).
    pub secrets: &'a [String],
    /// The target honours `start_interval`: checks run every second while a container
    /// starts, so a release is healthy when its services are, not at the next interval.
    pub start_interval: bool,
}

/// The compose file and its env file for one release.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub compose: ComposeFile,
    pub env: EnvFile,
}

impl Rendered {
    pub fn compose_yaml(&self) -> String {
        to_yaml(&self.compose)
    }
}

pub fn to_yaml(compose: &ComposeFile) -> String {
    // Our own plain structs always serialize; a failure here is a bug in the model.
    serde_norway::to_string(compose).expect("the compose model serializes to YAML")
}

pub fn render(input: RenderInput<'_>) -> Rendered {
    let RenderInput { config, paths, engine, version, images, secrets, start_interval } = input;
    let finch = paths.os == TargetOs::Macos;
    // Compose waits for a dependency's health only where the engine checks every second
    // while a container starts: elsewhere (Docker before 25, Compose v1) it would wait
    // for the first check, a whole interval, so the services start in order and the
    // deploy runs the checks of containers still starting itself (release::rollout).
    let health_gated = !finch && engine == LinuxEngine::Docker && start_interval;
    let https = config.http.https;
    let health = &config.health;
    let healthcheck = |service: Service| {
        (!finch).then(|| Healthcheck {
            test: std::iter::once("CMD").chain(service.health_command().iter().copied()).map(String::from).collect(),
            interval: format!("{}s", health.interval_seconds),
            timeout: format!("{}s", health.interval_seconds.max(3)),
            retries: health.retries,
            start_period: format!("{}s", health.start_period_seconds),
            start_interval: start_interval.then(|| "1s".to_string()),
        })
    };
    let depends_on = |service: &str| {
        if !health_gated {
            DependsOn::Order(vec![service.to_string()])
        } else {
            DependsOn::Healthy(BTreeMap::from([(
                service.to_string(),
                Condition { condition: "service_healthy".to_string() },
            )]))
        }
    };
    let pinned = |service: Service| {
        images
            .iter()
            .find(|image| image.service == service.name())
            .map_or_else(|| format!("{}:{version}", service.image(config)), |image| image.reference.clone())
    };
    let base_service = |service: Service, limits: &Limits| ServiceDefinition {
        image: pinned(service),
        environment: Vec::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        networks: vec![INTERNAL_NETWORK.to_string()],
        depends_on: DependsOn::Order(Vec::new()),
        healthcheck: None,
        restart: config.runtime.restart.clone(),
        logging: Logging {
            driver: "json-file".to_string(),
            options: BTreeMap::from([
                ("max-size".to_string(), config.runtime.log_max_size.clone()),
                ("max-file".to_string(), config.runtime.log_max_files.to_string()),
            ]),
        },
        deploy: Deploy {
            resources: DeployResources {
                limits: DeployLimits { cpus: format_cpus(limits.cpus), memory: limits.memory.clone() },
            },
        },
        secrets: Vec::new(),
    };
    let socket_mount = || Mount {
        kind: MountKind::Volume,
        source: SOCKET_VOLUME.to_string(),
        target: SOCKET_DIR.to_string(),
        read_only: false,
    };

    // Database: the only one with the data volume; socket shared with the backend only.
    let data_mount = match paths.os {
        // A host path makes backups a plain file copy on Linux.
        TargetOs::Linux => Mount {
            kind: MountKind::Bind,
            source: format!("${{DEPLOYMENT_PATH}}/volumes/{DATA_VOLUME}"),
            target: DATA_DIR.to_string(),
            read_only: false,
        },
        // Inside Finch's VM a named volume avoids the macOS file-sharing boundary.
        TargetOs::Macos => Mount {
            kind: MountKind::Volume,
            source: DATA_VOLUME.to_string(),
            target: DATA_DIR.to_string(),
            read_only: false,
        },
    };
    let mut database = base_service(Service::Database, &config.resources.database);
    database.environment = vec!["POSTGRES_USER=${POSTGRES_USER}".into(), "POSTGRES_DB=${POSTGRES_DB}".into()];
    database.volumes = vec![socket_mount(), data_mount];
    database.healthcheck = healthcheck(Service::Database);

    let mut backend = base_service(Service::BackendApi, &config.resources.backend);
    backend.environment = vec![
        format!("DATABASE_URL=postgresql://${{POSTGRES_USER}}@/${{POSTGRES_DB}}?host={SOCKET_DIR}"),
        "PORT=${BACKEND_PORT}".into(),
        "APP_ENV=${APP_ENV}".into(),
    ];
    backend.volumes = vec![socket_mount()];
    backend.depends_on = depends_on("database");
    backend.healthcheck = healthcheck(Service::BackendApi);
    backend.secrets = secrets.to_vec();

    // Frontend: on the edge network with the edge (or alone there, publishing the
    // ports itself where there is no edge).
    let mut frontend = base_service(Service::WebFrontend, &config.resources.frontend);
    frontend.environment = vec!["BACKEND_HOST=backend".into(), "BACKEND_PORT=${BACKEND_PORT}".into()];
    let mut ports = vec!["${HTTP_PORT}:80".to_string()];
    if https {
        frontend.environment.push("HTTPS_PUBLIC_PORT=${HTTPS_PORT}".into());
        frontend.environment.push("SERVER_NAMES=${SERVER_NAMES}".into());
        ports.push("${HTTPS_PORT}:443".into());
        frontend.volumes.push(Mount {
            kind: MountKind::Bind,
            source: "${CERT_PATH}".into(),
            target: CERT_DIR.into(),
            read_only: true,
        });
    }
    frontend.networks.push(EDGE_NETWORK.to_string());
    frontend.depends_on = depends_on("backend");
    frontend.healthcheck = healthcheck(Service::WebFrontend);

    // Edge: the only service publishing ports where it runs; on the edge network only.
    // Its definition names nothing that changes with a release, so `up` keeps it.
    let edge = Service::on_target(paths.os, engine).contains(&Service::Edge).then(|| {
        let mut edge = base_service(Service::Edge, &config.resources.edge);
        edge.ports = std::mem::take(&mut ports);
        edge.networks = vec![EDGE_NETWORK.to_string()];
        edge.depends_on = depends_on("frontend");
        edge.healthcheck = healthcheck(Service::Edge);
        edge
    });
    frontend.ports = ports;

    let mut volumes = BTreeMap::from([(SOCKET_VOLUME.to_string(), Volume::default())]);
    if paths.os == TargetOs::Macos {
        volumes.insert(DATA_VOLUME.to_string(), Volume::default());
    }
    let compose = ComposeFile {
        services: Services { database, backend, frontend, edge },
        networks: BTreeMap::from([
            (INTERNAL_NETWORK.to_string(), Network { internal: true, ..Network::default() }),
            (
                EDGE_NETWORK.to_string(),
                Network { podman_disable_dns: engine == LinuxEngine::Podman, ..Network::default() },
            ),
        ]),
        volumes,
        secrets: secrets
            .iter()
            .map(|name| (name.clone(), Secret { file: format!("${{SECRETS_PATH}}/{name}") }))
            .collect(),
    };
    Rendered { compose, env: env_file(config, paths, !secrets.is_empty()) }
}

/// `1.0` → `"1.0"`, `0.25` → `"0.25"`.
fn format_cpus(cpus: f64) -> String {
    let text = format!("{cpus}");
    if text.contains('.') { text } else { format!("{text}.0") }
}

/// The name HTTP redirects to when `[http] server_names` is unset and the target has
/// no address of its own (`--local`, `render`).
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// The variables the compose file interpolates, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFile {
    pub vars: Vec<(String, String)>,
}

/// Where a release's secrets are on the target, until a deploy names the directory
/// that holds their content (`<config>/secrets-<digest>`).
pub fn default_secrets_path(paths: &DeploymentPaths) -> String {
    format!("{}/secrets", paths.config)
}

fn env_file(config: &Config, paths: &DeploymentPaths, secrets: bool) -> EnvFile {
    let mut vars = vec![
        ("APP_ENV", config.app.environment.to_string()),
        ("HTTP_PORT", config.http.port.to_string()),
        ("HTTPS_PORT", config.http.https_port.to_string()),
        ("ENABLE_HTTPS", config.http.https.to_string()),
        ("POSTGRES_USER", config.database.user.clone()),
        ("POSTGRES_DB", config.database.name.clone()),
        ("BACKEND_PORT", config.backend.port.to_string()),
        ("DEPLOYMENT_PATH", paths.base.clone()),
        ("LOG_PATH", paths.logs.clone()),
    ];
    if config.http.https {
        // The host's certificates, where a deploy installs them: `[http] cert_path`
        // is the directory on this machine they are read from.
        vars.push(("CERT_PATH", paths.certs()));
    }
    if secrets {
        vars.push(("SECRETS_PATH", default_secrets_path(paths)));
    }
    if config.http.https {
        // The only names HTTP redirects to (never the client's Host header). Unset, a
        // deploy puts the target's address here.
        let names = if config.http.server_names.is_empty() {
            DEFAULT_SERVER_NAME.to_string()
        } else {
            config.http.server_names.join(" ")
        };
        vars.push(("SERVER_NAMES", names));
    }
    EnvFile { vars: vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
}

impl EnvFile {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `KEY=value` lines. Values other than plain words are single-quoted, which both
    /// Compose v1 and v2 read literally (no escapes, no interpolation); a value holding
    /// a single quote is double-quoted with `\` escapes instead.
    pub fn render(&self) -> String {
        let mut text = String::from("# Written by cargo xtask; read by compose for ${VAR} in docker-compose.yml.\n");
        for (key, value) in &self.vars {
            text.push_str(&format!("{key}={}\n", quote_env_value(value)));
        }
        text
    }
}

pub fn quote_env_value(value: &str) -> String {
    let plain = value.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-:@+,".contains(c));
    if plain && !value.is_empty() {
        value.to_string()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$");
        format!("\"{escaped}\"")
    }
}

/// Every `${NAME}` (or `${NAME:-default}`) the YAML interpolates.
pub fn referenced_variables(yaml: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = yaml;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if end > 0 && !names.iter().any(|n| n == &after[..end]) {
            names.push(after[..end].to_string());
        }
        rest = &after[end..];
    }
    names
}

#[cfg(test)]
mod tests;
