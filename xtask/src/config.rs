//! The deployment configuration: `deploy/deploy.toml`, overridden by environment
//! variables, validated as a whole before anything runs.
//!
//! Precedence, highest first: environment variables (HTTP_PORT, …), the host's own
//! table (`[hosts.NAME]` paths), the file's tables, the documented defaults.
//! Every problem is reported at once: each missing required key, each value out of
//! range, each unknown key with the closest valid one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use crate::support::project::CONFIG_FILE;

/// The environment variables that override the file, and the key each overrides.
pub const ENV_OVERRIDES: [(&str, &str); 10] = [
    ("HTTP_PORT", "http.port"),
    ("HTTPS_PORT", "http.https_port"),
    ("ENABLE_HTTPS", "http.https"),
    ("CERT_PATH", "http.cert_path"),
    ("POSTGRES_USER", "database.user"),
    ("POSTGRES_DB", "database.name"),
    ("BACKEND_PORT", "backend.port"),
    ("DEPLOYMENT_PATH", "paths.deployment"),
    ("LOG_PATH", "paths.logs"),
    ("APP_ENV", "app.environment"),
];

/// Every key the file may hold; `*` stands for a host's name.
pub const KNOWN_KEYS: &[&str] = &[
    "app.name",
    "app.environment",
    "images.base",
    "images.builder",
    "images.database",
    "images.backend",
    "images.frontend",
    "http.port",
    "http.https_port",
    "http.https",
    "http.cert_path",
    "http.server_names",
    "database.user",
    "database.name",
    "backend.port",
    "paths.deployment",
    "paths.logs",
    "paths.finch_mounts_volumes",
    "resources.database.memory",
    "resources.database.cpus",
    "resources.backend.memory",
    "resources.backend.cpus",
    "resources.frontend.memory",
    "resources.frontend.cpus",
    "runtime.restart",
    "runtime.log_max_size",
    "runtime.log_max_files",
    "runtime.keep_releases",
    "runtime.lock_timeout_seconds",
    "runtime.keep_logs",
    "health.timeout_seconds",
    "health.interval_seconds",
    "health.retries",
    "health.start_period_seconds",
    "ssh.connect_timeout_seconds",
    "minimums.docker",
    "minimums.compose_v2",
    "minimums.compose_v1",
    "minimums.finch",
    "hosts.*.address",
    "hosts.*.user",
    "hosts.*.port",
    "hosts.*.identity_file",
    "hosts.*.os",
    "hosts.*.deployment_path",
    "hosts.*.log_path",
];

// ---------------------------------------------------------------------------------
// The file as written: every value optional, so validation can name all that is missing.

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    app: RawApp,
    #[serde(default)]
    images: RawImages,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    backend: RawBackend,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    resources: RawResources,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    minimums: RawMinimums,
    #[serde(default)]
    hosts: BTreeMap<String, RawHost>,
}

#[derive(Debug, Default, Deserialize)]
struct RawSsh {
    connect_timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMinimums {
    docker: Option<String>,
    compose_v2: Option<String>,
    compose_v1: Option<String>,
    finch: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawApp {
    name: Option<String>,
    environment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawImages {
    base: Option<String>,
    builder: Option<String>,
    database: Option<String>,
    backend: Option<String>,
    frontend: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawHttp {
    port: Option<i64>,
    https_port: Option<i64>,
    https: Option<bool>,
    cert_path: Option<String>,
    server_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDatabase {
    user: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawBackend {
    port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawPaths {
    deployment: Option<String>,
    logs: Option<String>,
    finch_mounts_volumes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawResources {
    #[serde(default)]
    database: RawLimits,
    #[serde(default)]
    backend: RawLimits,
    #[serde(default)]
    frontend: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
struct RawLimits {
    memory: Option<String>,
    cpus: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntime {
    restart: Option<String>,
    log_max_size: Option<String>,
    log_max_files: Option<i64>,
    keep_releases: Option<i64>,
    lock_timeout_seconds: Option<i64>,
    keep_logs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawHealth {
    timeout_seconds: Option<i64>,
    interval_seconds: Option<i64>,
    retries: Option<i64>,
    start_period_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawHost {
    address: Option<String>,
    user: Option<String>,
    port: Option<i64>,
    identity_file: Option<String>,
    os: Option<String>,
    deployment_path: Option<String>,
    log_path: Option<String>,
}

// ---------------------------------------------------------------------------------
// The configuration as the tasks use it: complete, defaults applied, checked.

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
    pub minimums: crate::model::platform::Minimums,
    pub hosts: BTreeMap<String, Host>,
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
    pub deployment_path: Option<String>,
    pub log_path: Option<String>,
}

/// The documented defaults (also written out in deploy/deploy.toml).
pub mod defaults {
    pub const APP_ENVIRONMENT: &str = "production";
    pub const BASE_IMAGE: &str = "debian:bookworm-slim";
    pub const BUILDER_IMAGE: &str = "rust:1-bookworm";
    pub const DATABASE_IMAGE: &str = "cultivate-database";
    pub const BACKEND_IMAGE: &str = "cultivate-backend-api";
    pub const FRONTEND_IMAGE: &str = "cultivate-web-frontend";
    pub const HTTP_PORT: u16 = 80;
    pub const HTTPS_PORT: u16 = 443;
    pub const HTTPS: bool = false;
    pub const POSTGRES_USER: &str = "apiuser";
    pub const POSTGRES_DB: &str = "cultivate";
    pub const BACKEND_PORT: u16 = 3000;
    pub const FINCH_MOUNTS_VOLUMES: bool = false;
    pub const DATABASE_MEMORY: &str = "512m";
    pub const DATABASE_CPUS: f64 = 1.0;
    pub const BACKEND_MEMORY: &str = "256m";
    pub const BACKEND_CPUS: f64 = 1.0;
    pub const FRONTEND_MEMORY: &str = "128m";
    pub const FRONTEND_CPUS: f64 = 0.5;
    pub const RESTART: &str = "unless-stopped";
    pub const LOG_MAX_SIZE: &str = "10m";
    pub const LOG_MAX_FILES: u32 = 5;
    pub const KEEP_RELEASES: u32 = 5;
    pub const LOCK_TIMEOUT_SECONDS: u32 = 1800;
    pub const KEEP_LOGS: u32 = 20;
    pub const HEALTH_TIMEOUT_SECONDS: u32 = 180;
    pub const HEALTH_INTERVAL_SECONDS: u32 = 5;
    pub const HEALTH_RETRIES: u32 = 5;
    pub const HEALTH_START_PERIOD_SECONDS: u32 = 30;
    pub const SSH_CONNECT_TIMEOUT_SECONDS: u32 = 10;
}

// ---------------------------------------------------------------------------------
// Problems, reported together.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing { key: String, why: &'static str },
    Invalid { key: String, value: String, expected: String },
    Unknown { key: String, suggestion: Option<String> },
    Conflict { message: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key, why } => write!(f, "missing `{key}` ({why})"),
            Problem::Invalid { key, value, expected } => write!(f, "`{key}` = {value}: {expected}"),
            Problem::Unknown { key, suggestion: Some(s) } => write!(f, "unknown key `{key}` (did you mean `{s}`?)"),
            Problem::Unknown { key, suggestion: None } => write!(f, "unknown key `{key}`"),
            Problem::Conflict { message } => f.write_str(message),
        }
    }
}

/// Every problem found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The keys reported missing, in order.
    pub fn missing_keys(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter_map(|p| match p {
                Problem::Missing { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        writeln!(f, "{}: {count} problem{}:", self.source, if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        write!(f, "Every key is documented in {CONFIG_FILE}.")
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads the configuration file with this process's environment.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (the deployment configuration)", path.display()))?;
        Ok(Config::parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok())?)
    }

    /// Parses and validates `text`; `env` answers the override variables.
    pub fn parse(text: &str, source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let single = |problem| ConfigError { source: source.to_string(), problems: vec![problem] };
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
            single(Problem::Conflict { message: format!("not valid TOML: {}", e.to_string().trim_end()) })
        })?;
        let mut unknown = Vec::new();
        let raw: RawConfig = serde_ignored::deserialize(deserializer, |path| unknown.push(path.to_string()))
            .map_err(|e| single(Problem::Conflict { message: e.to_string().trim_end().to_string() }))?;

        let mut problems: Vec<Problem> =
            unknown.into_iter().map(|key| Problem::Unknown { suggestion: closest_key(&key), key }).collect();
        let config = resolve(raw, env, &mut problems);
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { source: source.to_string(), problems }) }
    }

    /// The host named `name`, or an error listing the configured ones.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.get(name).with_context(|| {
            let known: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
            if known.is_empty() {
                format!("no host `{name}`: {CONFIG_FILE} has no [hosts.NAME] table yet")
            } else {
                format!("no host `{name}` in {CONFIG_FILE}; configured: {}", known.join(", "))
            }
        })
    }
}

/// The closest known key to `unknown` (host names generalised to `*`): a key of the
/// same table whose name looks alike, else any key that looks alike as a whole.
pub fn closest_key(unknown: &str) -> Option<String> {
    let mut parts: Vec<&str> = unknown.split('.').collect();
    let host = if parts.first() == Some(&"hosts") && parts.len() > 2 { Some(parts[1]) } else { None };
    if host.is_some() {
        parts[1] = "*";
    }
    let generic = parts.join(".");
    let (table, field) = generic.rsplit_once('.').unwrap_or(("", generic.as_str()));
    let best = |candidates: &mut dyn Iterator<Item = (&'static str, &str)>, threshold: f64| {
        candidates
            .map(|(known, compared)| {
                (strsim::jaro_winkler(compared, if table.is_empty() { &generic } else { field }), known)
            })
            .filter(|(score, _)| *score >= threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, known)| known)
    };
    let same_table = &mut KNOWN_KEYS
        .iter()
        .filter_map(|known| known.rsplit_once('.').filter(|(t, _)| *t == table).map(|(_, f)| (*known, f)));
    let found = best(same_table, 0.7).or_else(|| best(&mut KNOWN_KEYS.iter().map(|known| (*known, *known)), 0.85))?;
    Some(match host {
        Some(host) => found.replacen('*', host, 1),
        None => found.to_string(),
    })
}

/// Applies environment overrides and defaults, collecting every problem.
fn resolve(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) -> Config {
    let mut checker = Checker { problems, env };

    let name = match raw.app.name {
        Some(name) => checker.app_name("app.name", name),
        None => {
            checker.missing("app.name", "names the stack's containers, networks and volumes");
            String::new()
        }
    };
    let environment = checker.environment(raw.app.environment);

    let images = Images {
        base: checker.image_reference("images.base", raw.images.base, defaults::BASE_IMAGE),
        builder: checker.image_reference("images.builder", raw.images.builder, defaults::BUILDER_IMAGE),
        database: checker.image_name("images.database", raw.images.database, defaults::DATABASE_IMAGE),
        backend: checker.image_name("images.backend", raw.images.backend, defaults::BACKEND_IMAGE),
        frontend: checker.image_name("images.frontend", raw.images.frontend, defaults::FRONTEND_IMAGE),
    };

    let port = checker.port("http.port", raw.http.port, defaults::HTTP_PORT);
    let https_port = checker.port("http.https_port", raw.http.https_port, defaults::HTTPS_PORT);
    let https = checker.flag("http.https", raw.http.https, defaults::HTTPS);
    let cert_path = checker.text_override("http.cert_path", raw.http.cert_path);
    if let Some(path) = &cert_path {
        checker.check_local_path("http.cert_path", path);
    }
    let server_names = checker.server_names("http.server_names", raw.http.server_names);
    let cert_path = match (https, cert_path) {
        (true, None) => {
            checker.missing("http.cert_path", "HTTPS is on: the directory holding fullchain.pem and privkey.pem");
            None
        }
        (true, Some(path)) => Some(path),
        // A certificate directory with HTTPS off is not mounted: keep nothing.
        (false, _) => None,
    };
    if https && port == https_port {
        checker.problems.push(Problem::Conflict {
            message: format!("`http.port` and `http.https_port` are both {port}: they must differ"),
        });
    }

    let database = Database {
        user: checker.identifier("database.user", raw.database.user, defaults::POSTGRES_USER, RESERVED_ROLES),
        name: checker.identifier("database.name", raw.database.name, defaults::POSTGRES_DB, RESERVED_DATABASES),
    };
    let backend = Backend { port: checker.port("backend.port", raw.backend.port, defaults::BACKEND_PORT) };

    let paths = Paths {
        deployment: checker.path_override("paths.deployment", raw.paths.deployment),
        logs: checker.path_override("paths.logs", raw.paths.logs),
        finch_mounts_volumes: raw.paths.finch_mounts_volumes.unwrap_or(defaults::FINCH_MOUNTS_VOLUMES),
    };

    let resources = Resources {
        database: checker.limits(
            "database",
            raw.resources.database,
            defaults::DATABASE_MEMORY,
            defaults::DATABASE_CPUS,
        ),
        backend: checker.limits("backend", raw.resources.backend, defaults::BACKEND_MEMORY, defaults::BACKEND_CPUS),
        frontend: checker.limits(
            "frontend",
            raw.resources.frontend,
            defaults::FRONTEND_MEMORY,
            defaults::FRONTEND_CPUS,
        ),
    };

    let restart = raw.runtime.restart.unwrap_or_else(|| defaults::RESTART.into());
    if !["no", "always", "on-failure", "unless-stopped"].contains(&restart.as_str()) {
        checker.invalid("runtime.restart", &format!("{restart:?}"), "one of no, always, on-failure, unless-stopped");
    }
    let runtime = Runtime {
        restart,
        log_max_size: checker.size("runtime.log_max_size", raw.runtime.log_max_size, defaults::LOG_MAX_SIZE),
        log_max_files: checker.positive("runtime.log_max_files", raw.runtime.log_max_files, defaults::LOG_MAX_FILES),
        keep_releases: checker.positive("runtime.keep_releases", raw.runtime.keep_releases, defaults::KEEP_RELEASES),
        lock_timeout_seconds: checker.positive(
            "runtime.lock_timeout_seconds",
            raw.runtime.lock_timeout_seconds,
            defaults::LOCK_TIMEOUT_SECONDS,
        ),
        keep_logs: checker.positive("runtime.keep_logs", raw.runtime.keep_logs, defaults::KEEP_LOGS),
    };
    let health = Health {
        timeout_seconds: checker.positive(
            "health.timeout_seconds",
            raw.health.timeout_seconds,
            defaults::HEALTH_TIMEOUT_SECONDS,
        ),
        interval_seconds: checker.positive(
            "health.interval_seconds",
            raw.health.interval_seconds,
            defaults::HEALTH_INTERVAL_SECONDS,
        ),
        retries: checker.positive("health.retries", raw.health.retries, defaults::HEALTH_RETRIES),
        start_period_seconds: checker.positive(
            "health.start_period_seconds",
            raw.health.start_period_seconds,
            defaults::HEALTH_START_PERIOD_SECONDS,
        ),
    };

    let ssh = SshSettings {
        connect_timeout_seconds: checker.positive(
            "ssh.connect_timeout_seconds",
            raw.ssh.connect_timeout_seconds,
            defaults::SSH_CONNECT_TIMEOUT_SECONDS,
        ),
    };
    let fallback = crate::model::platform::Minimums::default();
    let minimums = crate::model::platform::Minimums {
        docker: checker.version("minimums.docker", raw.minimums.docker, fallback.docker),
        compose_v2: checker.version("minimums.compose_v2", raw.minimums.compose_v2, fallback.compose_v2),
        compose_v1: checker.version("minimums.compose_v1", raw.minimums.compose_v1, fallback.compose_v1),
        finch: checker.version("minimums.finch", raw.minimums.finch, fallback.finch),
    };

    let hosts = raw.hosts.into_iter().map(|(name, host)| {
        let resolved = checker.host(&name, host);
        (name, resolved)
    });
    let hosts = hosts.collect();

    Config {
        app: App { name, environment },
        images,
        http: Http { port, https_port, https, cert_path, server_names },
        database,
        backend,
        paths,
        resources,
        runtime,
        health,
        ssh,
        minimums,
        hosts,
    }
}

/// Reads values, applying environment overrides, and records problems.
struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Checker<'_> {
    fn missing(&mut self, key: &str, why: &'static str) {
        self.problems.push(Problem::Missing { key: key.to_string(), why });
    }

    fn invalid(&mut self, key: &str, value: &str, expected: &str) {
        self.problems.push(Problem::Invalid { key: key.into(), value: value.into(), expected: expected.into() });
    }

    /// The environment variable overriding `key`, if set (an empty value counts as unset).
    fn env_for(&self, key: &str) -> Option<(&'static str, String)> {
        let (variable, _) = ENV_OVERRIDES.iter().find(|(_, k)| *k == key)?;
        (self.env)(variable).filter(|v| !v.is_empty()).map(|v| (*variable, v))
    }

    fn port(&mut self, key: &str, file: Option<i64>, default: u16) -> u16 {
        let (label, value) = match self.env_for(key) {
            Some((variable, text)) => match text.trim_matches(' ').parse::<i64>() {
                Ok(number) => (format!("{key} (from {variable})"), number),
                Err(_) => {
                    self.invalid(&format!("{key} (from {variable})"), &format!("{text:?}"), "a port number 1–65535");
                    return default;
                }
            },
            None => match file {
                Some(number) => (key.to_string(), number),
                None => return default,
            },
        };
        match u16::try_from(value) {
            Ok(port) if port >= 1 => port,
            _ => {
                self.invalid(&label, &value.to_string(), "a port number 1–65535");
                default
            }
        }
    }

    fn flag(&mut self, key: &str, file: Option<bool>, default: bool) -> bool {
        match self.env_for(key) {
            Some((variable, text)) => match text.trim_matches(' ').to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.invalid(&format!("{key} (from {variable})"), &format!("{text:?}"), "true or false");
                    default
                }
            },
            None => file.unwrap_or(default),
        }
    }

    fn text_override(&mut self, key: &str, file: Option<String>) -> Option<String> {
        self.env_for(key).map(|(_, value)| value).or(file)
    }

    fn path_override(&mut self, key: &str, file: Option<String>) -> PathSetting {
        let env = self.env_for(key);
        if let Some((variable, path)) = &env {
            self.check_path(&format!("{key} (from {variable})"), path);
        }
        if let Some(path) = &file {
            self.check_path(key, path);
        }
        PathSetting { env: env.map(|(_, value)| value), file }
    }

    /// A path on the target: absolute or under `~`, without `..`, control characters
    /// or `:` (Docker's `-v source:target` syntax splits on it).
    fn check_path(&mut self, key: &str, path: &str) {
        if !(path.starts_with('/') || path == "~" || path.starts_with("~/")) {
            self.invalid(key, &format!("{path:?}"), "an absolute path (or one starting with ~/)");
        } else if path.chars().any(char::is_control) {
            self.invalid(key, &format!("{path:?}"), "a path without control characters (newlines, tabs, ...)");
        } else if path.split('/').any(|part| part == "..") {
            self.invalid(key, &format!("{path:?}"), "a path without `..`");
        } else if path.contains(':') {
            self.invalid(key, &format!("{path:?}"), "a path without `:` (Docker's volume syntax splits on it)");
        }
    }

    /// A path on this machine: absolute, without `..` or control characters.
    fn check_local_path(&mut self, key: &str, path: &str) {
        let label = self.label(key);
        if !path.starts_with('/') {
            self.invalid(&label, &format!("{path:?}"), "an absolute path on this machine (e.g. /etc/cultivate/certs)");
        } else if path.chars().any(char::is_control) {
            self.invalid(&label, &format!("{path:?}"), "a path without control characters (newlines, tabs, ...)");
        } else if path.split('/').any(|part| part == "..") {
            self.invalid(&label, &format!("{path:?}"), "a path without `..`");
        } else if path.contains(':') {
            self.invalid(&label, &format!("{path:?}"), "a path without `:` (Docker's volume syntax splits on it)");
        }
    }

    /// `key`, or `key (from VARIABLE)` when the environment set it.
    fn label(&self, key: &str) -> String {
        match self.env_for(key) {
            Some((variable, _)) => format!("{key} (from {variable})"),
            None => key.to_string(),
        }
    }

    /// Host names for nginx: DNS names or IPv4 addresses, lowercase, no wildcards.
    fn server_names(&mut self, key: &str, file: Option<Vec<String>>) -> Vec<String> {
        let names = file.unwrap_or_default();
        for name in &names {
            if !is_server_name(name) {
                self.invalid(
                    key,
                    &format!("{name:?}"),
                    "host names such as \"example.com\" or IPv4 addresses (lowercase letters, digits, `-`, `.`; \
                     no wildcards, ports or schemes)",
                );
            }
        }
        names
    }

    fn environment(&mut self, file: Option<String>) -> AppEnvironment {
        let key = "app.environment";
        let (label, value) = match self.env_for(key) {
            Some((variable, value)) => (format!("{key} (from {variable})"), value),
            None => (key.to_string(), file.unwrap_or_else(|| defaults::APP_ENVIRONMENT.into())),
        };
        match value.as_str() {
            "production" => AppEnvironment::Production,
            "staging" => AppEnvironment::Staging,
            _ => {
                self.invalid(&label, &format!("{value:?}"), "production or staging");
                AppEnvironment::Production
            }
        }
    }

    /// Names Compose accepts for a project: lowercase letters, digits, `-` and `_`.
    fn app_name(&mut self, key: &str, name: String) -> String {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.len() <= 63;
        if !valid {
            self.invalid(
                key,
                &format!("{name:?}"),
                "lowercase letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        name
    }

    fn image_name(&mut self, key: &str, file: Option<String>, default: &str) -> String {
        let name = file.unwrap_or_else(|| default.to_string());
        if let Err(why) = check_image_repository(&name) {
            self.invalid(
                key,
                &format!("{name:?}"),
                &format!("an image repository name without a tag, e.g. \"{default}\" ({why})"),
            );
        }
        name
    }

    /// An image reference such as `debian:bookworm-slim`, `registry:5000/rust:1` or
    /// `name@sha256:…`: it reaches `docker pull` and a Dockerfile's `FROM`.
    fn image_reference(&mut self, key: &str, file: Option<String>, default: &str) -> String {
        let reference = file.unwrap_or_else(|| default.to_string());
        if let Err(why) = check_image_reference(&reference) {
            self.invalid(key, &format!("{reference:?}"), &format!("an image reference, e.g. \"{default}\" ({why})"));
        }
        reference
    }

    /// A PostgreSQL role or database name we can write unquoted everywhere, and that
    /// the first initialisation can create: not a reserved word, not `pg_*`, not one of
    /// `reserved` (the superuser, the built-in databases).
    fn identifier(&mut self, key: &str, file: Option<String>, default: &str, reserved: &[&str]) -> String {
        let (label, value) = match self.env_for(key) {
            Some((variable, value)) => (format!("{key} (from {variable})"), value),
            None => (key.to_string(), file.unwrap_or_else(|| default.to_string())),
        };
        let valid = value.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && value.len() <= 63;
        if !valid {
            self.invalid(
                &label,
                &format!("{value:?}"),
                "lowercase letters, digits and `_`, starting with a letter, at most 63",
            );
        } else if value.starts_with("pg_") {
            self.invalid(&label, &format!("{value:?}"), "a name not starting with `pg_` (PostgreSQL reserves those)");
        } else if reserved.contains(&value.as_str()) {
            self.invalid(
                &label,
                &format!("{value:?}"),
                &format!("another name: {value} is reserved by PostgreSQL, e.g. \"{default}\""),
            );
        } else if SQL_RESERVED_WORDS.contains(&value.as_str()) {
            self.invalid(
                &label,
                &format!("{value:?}"),
                &format!("a name that is not an SQL reserved word, e.g. \"{default}\""),
            );
        }
        value
    }

    fn size(&mut self, key: &str, file: Option<String>, default: &str) -> String {
        let value = file.unwrap_or_else(|| default.to_string());
        // Written into the compose file as is: letters and digits only.
        let plain = value.chars().all(|c| c.is_ascii_alphanumeric());
        if !plain || parse_size(&value).is_none_or(|bytes| bytes == 0) {
            self.invalid(key, &format!("{value:?}"), "a positive size such as 512m, 1g or 100k");
        }
        value
    }

    fn version(
        &mut self,
        key: &str,
        file: Option<String>,
        default: crate::model::platform::Version,
    ) -> crate::model::platform::Version {
        match file {
            None => default,
            Some(text) => {
                let valid =
                    !text.is_empty() && text.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                match crate::model::platform::Version::find(&text).filter(|_| valid) {
                    Some(version) => version,
                    None => {
                        self.invalid(key, &format!("{text:?}"), "a version such as \"20.10\"");
                        default
                    }
                }
            }
        }
    }

    fn positive(&mut self, key: &str, file: Option<i64>, default: u32) -> u32 {
        match file {
            None => default,
            Some(value) => match u32::try_from(value) {
                Ok(number) if number > 0 => number,
                _ => {
                    self.invalid(key, &value.to_string(), "a whole number greater than 0");
                    default
                }
            },
        }
    }

    fn limits(&mut self, service: &str, raw: RawLimits, memory: &str, cpus: f64) -> Limits {
        let memory = self.size(&format!("resources.{service}.memory"), raw.memory, memory);
        let cpus = match raw.cpus {
            None => cpus,
            Some(value) if (MIN_CPUS..=MAX_CPUS).contains(&value) => value,
            Some(value) => {
                self.invalid(
                    &format!("resources.{service}.cpus"),
                    &value.to_string(),
                    &format!("a number of CPUs from {MIN_CPUS} to {MAX_CPUS}, e.g. 0.5"),
                );
                cpus
            }
        };
        Limits { memory, cpus }
    }

    fn host(&mut self, name: &str, raw: RawHost) -> Host {
        let key = |field: &str| format!("hosts.{name}.{field}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            self.invalid(&format!("hosts.{name:?}"), name, "a host name of letters, digits, `-` and `_`");
        }
        let address = raw.address.unwrap_or_else(|| {
            self.missing(&key("address"), "the host name or IP address to reach over SSH");
            String::new()
        });
        // No default: without `port`, ssh takes it from `address`, ~/.ssh/config or 22.
        // (The fallback 0 is never used: an invalid port is reported as a problem.)
        let port = raw.port.map(|number| self.port(&key("port"), Some(number), 0));
        let expected =
            "a host name or IP address, optionally with :port ([v6]:port for IPv6); no user@, spaces or leading -";
        if !address.is_empty()
            && (address.starts_with('-') || address.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@'))
        {
            self.invalid(&key("address"), &format!("{address:?}"), expected);
        } else if !address.is_empty() {
            match crate::model::ssh_target::SshTarget::parse(&address) {
                Err(_) => self.invalid(&key("address"), &format!("{address:?}"), expected),
                Ok(target) => {
                    if let (Some(in_address), Some(configured)) = (target.port, port)
                        && in_address != configured
                    {
                        self.problems.push(Problem::Conflict {
                            message: format!(
                                "`{}` = {address:?} names port {in_address} but `{}` = {configured}: \
                                 give the port in one place, or make them agree",
                                key("address"),
                                key("port")
                            ),
                        });
                    }
                }
            }
        }
        let user = raw.user.unwrap_or_else(|| {
            self.missing(&key("user"), "the SSH user on the host");
            String::new()
        });
        if !user.is_empty()
            && (user.starts_with('-') || !user.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            self.invalid(
                &key("user"),
                &format!("{user:?}"),
                "a user name of letters, digits, `.`, `_` and `-` (not first)",
            );
        }
        let os = match raw.os.as_deref() {
            None => None,
            Some("linux") => Some(crate::model::platform::TargetOs::Linux),
            Some("macos") => Some(crate::model::platform::TargetOs::Macos),
            Some(other) => {
                self.invalid(&key("os"), &format!("{other:?}"), "linux or macos");
                None
            }
        };
        for (field, value) in [("deployment_path", &raw.deployment_path), ("log_path", &raw.log_path)] {
            if let Some(path) = value {
                self.check_path(&key(field), path);
            }
        }
        // A key on this machine: handed to ssh as one argument, shown in messages.
        if let Some(identity) = &raw.identity_file
            && (identity.is_empty() || identity.starts_with('-') || identity.chars().any(char::is_control))
        {
            self.invalid(
                &key("identity_file"),
                &format!("{identity:?}"),
                "a path to a private key on this machine, e.g. \"~/.ssh/id_ed25519\" (no control characters, not \
                 starting with `-`)",
            );
        }
        Host {
            address,
            user,
            port,
            identity_file: raw.identity_file,
            os,
            deployment_path: raw.deployment_path,
            log_path: raw.log_path,
        }
    }
}

/// `512m` → 536870912. Units b, k, m, g (either case, optional trailing `b`).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').filter(|rest| rest.ends_with(['k', 'm', 'g'])).unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => lower.split_at(at),
        None => (lower, ""),
    };
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

mod checks;
pub use checks::*;

#[cfg(test)]
mod tests;
