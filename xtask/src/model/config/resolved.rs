//! The configuration as the tasks use it: complete, defaults applied, checked.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub app: App,
    pub images: Images,
    pub http: Http,
    pub database: Database,
    pub backend: Backend,
    pub paths: Paths,
    pub resources: Resources,
    pub runtime: Runtime,
    pub health: Health,
    pub ssh: SshSettings,
    pub backup: BackupSettings,
    pub deploy: DeploySettings,
    pub minimums: crate::model::platform::Minimums,
    pub hosts: BTreeMap<String, Host>,
    /// `[groups]`: a name for several of `hosts`, each a key of `hosts`.
    pub groups: BTreeMap<String, Vec<String>>,
    /// `[clusters.NAME]`: hosts that run the app together under an orchestrator.
    pub clusters: BTreeMap<String, Cluster>,
}

/// `[clusters.NAME]`: a Docker Swarm of `[hosts]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// Where the swarm is formed (`swarm init`) and the stack deployed from.
    pub manager: String,
    /// Every node, the manager first.
    pub nodes: Vec<String>,
    /// The node labelled for data: the database and the backend run there, sharing
    /// the socket volume (peer authentication needs one machine's kernel).
    pub data_node: String,
    /// How the frontend's ports are published on the nodes.
    pub publish: Publish,
}

/// `ingress`: Swarm's routing mesh answers on every node and the frontend updates
/// start-first; it needs the kernel's IPVS. `host`: each node's frontend binds the
/// ports itself (it runs on every node anyway); it updates stop-first, one node at a
/// time, the others serving meanwhile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    #[default]
    Ingress,
    Host,
}

/// `[deploy]`: how a deploy to several hosts runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploySettings {
    /// Hosts worked on at once.
    pub parallel: u32,
    /// A failure on one host rolls the hosts that succeeded back too.
    pub all_or_nothing: bool,
}

/// `[backup]`: database backups on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupSettings {
    /// Backups kept on the host, newest first.
    pub keep: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshSettings {
    pub connect_timeout_seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct App {
    /// Compose project name: names the stack's containers, networks and volumes.
    pub name: String,
    pub environment: AppEnvironment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnvironment {
    Production,
    Staging,
}

impl fmt::Display for AppEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppEnvironment::Production => "production",
            AppEnvironment::Staging => "staging",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Images {
    pub base: String,
    pub builder: String,
    pub database: String,
    pub backend: String,
    pub frontend: String,
    /// The edge proxy that holds the published ports on Docker targets (deploy/edge).
    pub edge: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Http {
    pub port: u16,
    pub https_port: u16,
    pub https: bool,
    /// Directory holding fullchain.pem and privkey.pem; set exactly when `https` is.
    pub cert_path: Option<String>,
    /// The names the site is reached by; HTTP redirects only to these (the first for
    /// any other Host). Empty: the target's address.
    pub server_names: Vec<String>,
    /// A certificate expiring within this many days is warned about.
    pub cert_warn_days: u32,
}

impl Http {
    /// The host ports the stack publishes (the edge on Docker, else the frontend):
    /// HTTP, and HTTPS when it is on.
    pub fn published_ports(&self) -> Vec<u16> {
        if self.https { vec![self.port, self.https_port] } else { vec![self.port] }
    }

    /// Where the site answers at `address`: `https://` when HTTPS is on, the port left
    /// out when it is the scheme's own.
    pub fn url(&self, address: &str) -> String {
        let (scheme, port, default) =
            if self.https { ("https", self.https_port, 443) } else { ("http", self.port, 80) };
        if port == default { format!("{scheme}://{address}/") } else { format!("{scheme}://{address}:{port}/") }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Database {
    pub user: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Paths {
    /// Overrides the target OS's default deployment path.
    pub deployment: PathSetting,
    /// Overrides the target OS's default log path.
    pub logs: PathSetting,
    /// Whether the Finch VM mounts /Volumes on macOS targets.
    pub finch_mounts_volumes: bool,
}

/// A path override from the environment and from the file, kept apart because a
/// host's own table sits between them in precedence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathSetting {
    pub env: Option<String>,
    pub file: Option<String>,
}

impl PathSetting {
    /// Environment, then the host's table, then `[paths]`.
    pub fn pick<'a>(&'a self, host: Option<&'a str>) -> Option<&'a str> {
        self.env.as_deref().or(host).or(self.file.as_deref())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resources {
    pub database: Limits,
    pub backend: Limits,
    pub frontend: Limits,
    pub edge: Limits,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limits {
    /// A Compose byte size, e.g. `512m`.
    pub memory: String,
    pub cpus: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Runtime {
    pub restart: String,
    pub log_max_size: String,
    pub log_max_files: u32,
    pub keep_releases: u32,
    /// A deploy lock older than this whose holder is not known to be alive is stale.
    pub lock_timeout_seconds: u32,
    /// How many deploy logs stay under the host's log path.
    pub keep_logs: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// How long a deploy waits for every service to be healthy.
    pub timeout_seconds: u32,
    pub interval_seconds: u32,
    pub retries: u32,
    pub start_period_seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// A host name, an alias from ~/.ssh/config, or an IP address, optionally with
    /// `:port` (`[v6]:port` for IPv6).
    pub address: String,
    pub user: String,
    /// `port` from the file; `None` leaves the port to `address` (`host:port`), then to
    /// ~/.ssh/config, then to ssh's default (22). A port in both places must agree.
    pub port: Option<u16>,
    pub identity_file: Option<String>,
    pub os: Option<crate::model::platform::TargetOs>,
    /// `docker` or `podman` on a Linux host; `None`: Docker when the host has it, else
    /// Podman when it has that, else Docker is what `--install` installs.
    pub engine: Option<crate::model::platform::LinuxEngine>,
    pub deployment_path: Option<String>,
    pub log_path: Option<String>,
}
