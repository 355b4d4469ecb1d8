//! The three services of the stack, under every name they go by: the image and its
//! build folder (`backend-api`), the compose service (`backend`), the configured image
//! repository, and the health command each runs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::config::Config;

/// The database socket directory, as the database and the backend mount it.
pub const SOCKET_DIR: &str = "/var/run/postgresql";

/// The three services, in build and start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Database,
    BackendApi,
    WebFrontend,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Database, Service::BackendApi, Service::WebFrontend];

    /// The image's and its build folder's name: `database`, `backend-api`, `web-frontend`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Database => "database",
            Service::BackendApi => "backend-api",
            Service::WebFrontend => "web-frontend",
        }
    }

    /// The service's name in the compose file: `database`, `backend`, `frontend`.
    pub fn compose_name(self) -> &'static str {
        match self {
            Service::Database => "database",
            Service::BackendApi => "backend",
            Service::WebFrontend => "frontend",
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
        }
    }

    /// The health command inside its container (compose's healthcheck `test` without
    /// `CMD`). Finch has no healthchecks: a deploy runs these through `exec` there.
    pub fn health_command(self) -> &'static [&'static str] {
        match self {
            Service::Database => &["pg_isready", "-q", "-h", SOCKET_DIR, "-d", "postgres", "-U", "postgres"],
            Service::BackendApi => &["/usr/local/bin/backend-api", "healthcheck"],
            Service::WebFrontend => &["curl", "-fsS", "http://127.0.0.1:80/nginx-health"],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
