//! The file as written: every value optional, so validation can name all that is
//! missing. Each field is a key of [`super::KNOWN_KEYS`]; the tests hold the two together.
//! (`Serialize`, in tests only, lets them list the fields.)

use std::collections::BTreeMap;

use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) app: RawApp,
    #[serde(default)]
    pub(super) images: RawImages,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) backend: RawBackend,
    #[serde(default)]
    pub(super) paths: RawPaths,
    #[serde(default)]
    pub(super) resources: RawResources,
    #[serde(default)]
    pub(super) runtime: RawRuntime,
    #[serde(default)]
    pub(super) health: RawHealth,
    #[serde(default)]
    pub(super) ssh: RawSsh,
    #[serde(default)]
    pub(super) backup: RawBackup,
    #[serde(default)]
    pub(super) deploy: RawDeploy,
    #[serde(default)]
    pub(super) minimums: RawMinimums,
    #[serde(default)]
    pub(super) hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(super) clusters: BTreeMap<String, RawCluster>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawCluster {
    pub(super) engine: Option<String>,
    pub(super) manager: Option<String>,
    pub(super) nodes: Option<Vec<String>>,
    pub(super) data_node: Option<String>,
    pub(super) publish: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawDeploy {
    pub(super) parallel: Option<i64>,
    pub(super) all_or_nothing: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawSsh {
    pub(super) connect_timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawBackup {
    pub(super) keep: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawMinimums {
    pub(super) docker: Option<String>,
    pub(super) compose_v2: Option<String>,
    pub(super) compose_v1: Option<String>,
    pub(super) finch: Option<String>,
    pub(super) podman: Option<String>,
    pub(super) podman_compose: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawApp {
    pub(super) name: Option<String>,
    pub(super) environment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawImages {
    pub(super) base: Option<String>,
    pub(super) builder: Option<String>,
    pub(super) database: Option<String>,
    pub(super) backend: Option<String>,
    pub(super) frontend: Option<String>,
    pub(super) edge: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawHttp {
    pub(super) port: Option<i64>,
    pub(super) https_port: Option<i64>,
    pub(super) https: Option<bool>,
    pub(super) cert_path: Option<String>,
    pub(super) server_names: Option<Vec<String>>,
    pub(super) cert_warn_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawDatabase {
    pub(super) user: Option<String>,
    pub(super) name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawBackend {
    pub(super) port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawPaths {
    pub(super) deployment: Option<String>,
    pub(super) logs: Option<String>,
    pub(super) finch_mounts_volumes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawResources {
    #[serde(default)]
    pub(super) database: RawLimits,
    #[serde(default)]
    pub(super) backend: RawLimits,
    #[serde(default)]
    pub(super) frontend: RawLimits,
    #[serde(default)]
    pub(super) edge: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawLimits {
    pub(super) memory: Option<String>,
    pub(super) cpus: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawRuntime {
    pub(super) restart: Option<String>,
    pub(super) log_max_size: Option<String>,
    pub(super) log_max_files: Option<i64>,
    pub(super) keep_releases: Option<i64>,
    pub(super) lock_timeout_seconds: Option<i64>,
    pub(super) keep_logs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawHealth {
    pub(super) timeout_seconds: Option<i64>,
    pub(super) interval_seconds: Option<i64>,
    pub(super) retries: Option<i64>,
    pub(super) start_period_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct RawHost {
    pub(super) address: Option<String>,
    pub(super) user: Option<String>,
    pub(super) port: Option<i64>,
    pub(super) identity_file: Option<String>,
    pub(super) os: Option<String>,
    pub(super) engine: Option<String>,
    pub(super) deployment_path: Option<String>,
    pub(super) log_path: Option<String>,
}
