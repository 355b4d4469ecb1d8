//! The Docker Swarm stack file of a release, made from the same typed compose model a
//! single host runs (`compose::render`), for `docker stack deploy`.
//!
//! What changes from one host to a swarm:
//! - every `${VAR}` is resolved from the release's env file: the stack file stands alone;
//! - each service gets `deploy:` for Swarm. The database and the backend are placed on
//!   the node labelled for data ([`DATA_LABEL`]): they share the socket volume, and
//!   peer authentication needs one kernel. The database updates stop-first (two
//!   servers never open one data directory); the backend starts the new task first and
//!   goes back by itself when it does not get healthy. The frontend runs on every node
//!   (`mode: global`) and reaches the backend by its service name over the overlay
//!   network (DNS round robin, no virtual IP); the routing mesh publishes its ports on
//!   every node;
//! - no edge: the routing mesh is the swarm's own;
//! - the networks are overlays; `restart` and `depends_on` (which Swarm ignores) go;
//! - secrets become Swarm secrets, named after their content (a Swarm secret cannot
//!   change: new content is a new secret), mounted for the backend's user only (Swarm
//!   would make them root's, readable by every user in the container).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::compose::{DeployResources, Healthcheck, Logging, Mount, Rendered, ServiceDefinition};
pub use crate::model::config::Publish;
use crate::model::service::BACKEND_UID;

/// The node label that places the database and the backend: `cultivate.data=true`.
pub const DATA_LABEL: &str = "cultivate.data";

/// The `docker stack deploy` file format this is written in.
pub const STACK_VERSION: &str = "3.8";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackFile {
    pub version: String,
    pub services: BTreeMap<String, StackService>,
    pub networks: BTreeMap<String, StackNetwork>,
    pub volumes: BTreeMap<String, crate::model::compose::Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, StackSecret>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackService {
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    pub networks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub logging: Logging,
    pub deploy: SwarmDeploy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretMount>,
}

/// A Swarm secret as a service mounts it, at `/run/secrets/<target>` (where compose
/// mounts a file-based secret on one host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretMount {
    pub source: String,
    pub target: String,
    /// Owner and group, as strings: the stack file format says so.
    pub uid: String,
    pub gid: String,
    /// The file's mode (0o400, written in decimal: YAML reads it as a plain number).
    pub mode: u32,
}

/// The mode of a secret in a task: readable by its owner only, as on one host (0600
/// there; read-only here, as Swarm's secrets are).
pub const SECRET_MODE: u32 = 0o400;

/// A port published through the routing mesh: every node answers on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub target: u16,
    pub published: u16,
    pub protocol: String,
    pub mode: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SwarmDeploy {
    /// `replicated` or `global`.
    pub mode: String,
    /// `dnsrr` for the backend: its name resolves to its tasks' addresses, with no
    /// virtual IP. A virtual IP needs the kernel's IPVS, which not every node has
    /// (these test hosts' kernel lacks it), and the frontend's nginx resolves the name
    /// every second anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    pub update_config: UpdateConfig,
    pub rollback_config: UpdateConfig,
    pub restart_policy: RestartPolicy,
    pub resources: DeployResources,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub constraints: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpdateConfig {
    pub parallelism: u32,
    /// `start-first` (the new task healthy before the old one stops) or `stop-first`.
    pub order: String,
    /// `rollback` on the update; `pause` on the rollback itself.
    pub failure_action: String,
    /// How long a new task is watched for failure after it started.
    pub monitor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    pub condition: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StackNetwork {
    pub driver: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackSecret {
    /// The Swarm secret's name: the key and the content's digest.
    pub name: String,
    pub file: String,
}

/// The stack file of `rendered` (a Linux Docker render), `secrets_digest` naming its
/// secrets' content (the digest part of their `secrets-<digest>` directory).
pub fn stack_file(
    rendered: &Rendered,
    app: &str,
    secrets_digest: &str,
    monitor_seconds: u32,
    publish: Publish,
) -> StackFile {
    let env = &rendered.env;
    let resolve = |text: &str| {
        let mut text = text.to_string();
        for (key, value) in &env.vars {
            text = text.replace(&format!("${{{key}}}"), value);
        }
        text
    };
    let update = |order: &str, failure_action: &str| UpdateConfig {
        parallelism: 1,
        order: order.to_string(),
        failure_action: failure_action.to_string(),
        monitor: format!("{monitor_seconds}s"),
    };
    let on_data_node = Some(Placement { constraints: vec![format!("node.labels.{DATA_LABEL} == true")] });
    let service = |definition: &ServiceDefinition, mode: &str, placement: Option<Placement>, order: &str| {
        let ports = definition
            .ports
            .iter()
            .filter_map(|mapping| {
                let (published, target) = resolve(mapping).split_once(':').map(|(p, t)| (p.parse(), t.parse()))?;
                Some(PublishedPort {
                    target: target.ok()?,
                    published: published.ok()?,
                    protocol: "tcp".to_string(),
                    mode: if publish == Publish::Host { "host" } else { "ingress" }.to_string(),
                })
            })
            .collect();
        StackService {
            image: definition.image.clone(),
            environment: definition.environment.iter().map(|e| resolve(e)).collect(),
            ports,
            volumes: definition.volumes.iter().map(|m| Mount { source: resolve(&m.source), ..m.clone() }).collect(),
            networks: definition.networks.clone(),
            // The stack file format (3.x) has no `start_interval`: `docker stack
            // deploy` refuses it.
            healthcheck: definition.healthcheck.clone().map(|check| Healthcheck { start_interval: None, ..check }),
            logging: definition.logging.clone(),
            deploy: SwarmDeploy {
                mode: mode.to_string(),
                endpoint_mode: None,
                replicas: (mode == "replicated").then_some(1),
                placement,
                update_config: update(order, "rollback"),
                rollback_config: update(order, "pause"),
                restart_policy: RestartPolicy { condition: "any".to_string() },
                resources: definition.deploy.resources.clone(),
            },
            secrets: definition
                .secrets
                .iter()
                .map(|key| SecretMount {
                    source: key.clone(),
                    target: key.clone(),
                    uid: BACKEND_UID.to_string(),
                    gid: BACKEND_UID.to_string(),
                    mode: SECRET_MODE,
                })
                .collect(),
        }
    };
    let compose = &rendered.compose;
    // The frontend publishes the ports the edge would hold on one host.
    let mut frontend = compose.services.frontend.clone();
    if frontend.ports.is_empty() {
        frontend.ports = compose.services.published().ports.clone();
    }
    let mut backend = service(&compose.services.backend, "replicated", on_data_node.clone(), "start-first");
    backend.deploy.endpoint_mode = Some("dnsrr".to_string());
    let services = BTreeMap::from([
        ("database".to_string(), service(&compose.services.database, "replicated", on_data_node, "stop-first")),
        ("backend".to_string(), backend),
        // A port bound on the node itself is held by one task at a time.
        (
            "frontend".to_string(),
            service(&frontend, "global", None, if publish == Publish::Host { "stop-first" } else { "start-first" }),
        ),
    ]);
    let used: Vec<&String> = services.values().flat_map(|s| &s.networks).collect();
    let networks = compose
        .networks
        .iter()
        .filter(|(name, _)| used.contains(name))
        .map(|(name, network)| {
            (name.clone(), StackNetwork { driver: "overlay".to_string(), internal: network.internal })
        })
        .collect();
    let secrets = compose
        .secrets
        .iter()
        .map(|(key, secret)| {
            let name = format!("{app}_{key}_{secrets_digest}");
            (key.clone(), StackSecret { name, file: resolve(&secret.file) })
        })
        .collect();
    StackFile { version: STACK_VERSION.to_string(), services, networks, volumes: compose.volumes.clone(), secrets }
}

/// The digest that names a release's Swarm secrets, as the secrets' directory on a
/// host is named.
pub fn secrets_digest(files: &[(String, Vec<u8>)]) -> String {
    crate::support::digest::files_digest(files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())))
}

/// The stack file as YAML.
pub fn to_yaml(stack: &StackFile) -> String {
    // Our own plain structs always serialize; a failure here is a bug in the model.
    serde_norway::to_string(stack).expect("the stack model serializes to YAML")
}

#[cfg(test)]
mod tests;
