//! The services of the stack, under every name they go by: the image and its build
//! folder (`backend-api`), the compose service (`backend`), the configured image
//! repository, and the health command each runs. Three are the application; the
//! fourth, the edge, is the deployment's own: on Docker targets it holds the published
//! ports so that the frontend can be replaced behind it (deploy/edge/Dockerfile).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::config::Config;
use crate::model::platform::{LinuxEngine, TargetOs};

/// The database socket directory, as the database and the backend mount it.
pub const SOCKET_DIR: &str = "/var/run/postgresql";

/// The backend's OS user (`apiuser`, as its image creates it): peer authentication maps
/// it to the database role, and it alone reads the secrets.
pub const BACKEND_UID: u32 = 1001;

/// The services, in build and start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Database,
    BackendApi,
    WebFrontend,
    Edge,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Database, Service::BackendApi, Service::WebFrontend, Service::Edge];

    /// The services a target runs. The edge only where compose can run two of a
    /// service side by side (Docker's, v1 and v2): elsewhere (Podman, Finch) nothing
    /// could be swapped behind it, so the frontend holds the ports itself.
    pub fn on_target(os: TargetOs, engine: LinuxEngine) -> Vec<Service> {
        let edge = os == TargetOs::Linux && engine == LinuxEngine::Docker;
        Service::ALL.into_iter().filter(|service| *service != Service::Edge || edge).collect()
    }

    /// The image's name: `database`, `backend-api`, `web-frontend`, `edge`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Database => "database",
            Service::BackendApi => "backend-api",
            Service::WebFrontend => "web-frontend",
            Service::Edge => "edge",
        }
    }

    /// Its build folder, from the project's root.
    pub fn build_dir(self) -> &'static str {
        match self {
            Service::Edge => "deploy/edge",
            other => other.name(),
        }
    }

    /// The service's name in the compose file: `database`, `backend`, `frontend`, `edge`.
    pub fn compose_name(self) -> &'static str {
        match self {
            Service::Database => "database",
            Service::BackendApi => "backend",
            Service::WebFrontend => "frontend",
            Service::Edge => "edge",
        }
    }

    /// The service whose compose name is `name`.
    pub fn from_compose_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|service| service.compose_name() == name)
    }

    /// The configured image repository (`[images]`), without a tag.
    pub fn image(self, config: &Config) -> &str {
        match self {
            Service::Database => &config.images.database,
            Service::BackendApi => &config.images.backend,
            Service::WebFrontend => &config.images.frontend,
            Service::Edge => &config.images.edge,
        }
    }

    /// The health command inside its container (compose's healthcheck `test` without
    /// `CMD`). Finch has no healthchecks: a deploy runs these through `exec` there.
    pub fn health_command(self) -> &'static [&'static str] {
        match self {
            Service::Database => &["pg_isready", "-q", "-h", SOCKET_DIR, "-d", "postgres", "-U", "postgres"],
            Service::BackendApi => &["/usr/local/bin/backend-api", "healthcheck"],
            // The edge's check goes through it to a frontend: healthy when the path is.
            Service::WebFrontend | Service::Edge => &["curl", "-fsS", "http://127.0.0.1:80/nginx-health"],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
