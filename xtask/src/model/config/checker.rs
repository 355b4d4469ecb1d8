//! Resolution of the file as written into the configuration the tasks use: environment
//! overrides and defaults applied, every value checked, every problem collected.

use super::checks::*;
use std::collections::BTreeMap;

use super::defaults;
use super::keys::ENV_OVERRIDES;
use super::problems::Problem;
use super::raw::{RawCluster, RawConfig, RawHost, RawLimits};
use super::resolved::*;

/// Applies environment overrides and defaults, collecting every problem.
pub(super) fn resolve(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) -> Config {
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
        edge: checker.image_name("images.edge", raw.images.edge, defaults::EDGE_IMAGE),
    };

    let port = checker.port("http.port", raw.http.port, defaults::HTTP_PORT);
    let https_port = checker.port("http.https_port", raw.http.https_port, defaults::HTTPS_PORT);
    let https = checker.flag("http.https", raw.http.https, defaults::HTTPS);
    let cert_path = checker.text_override("http.cert_path", raw.http.cert_path);
    if let Some(path) = &cert_path {
        checker.check_local_path("http.cert_path", path);
    }
    let server_names = checker.server_names("http.server_names", raw.http.server_names);
    let cert_warn_days = checker.positive("http.cert_warn_days", raw.http.cert_warn_days, defaults::CERT_WARN_DAYS);
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
        edge: checker.limits("edge", raw.resources.edge, defaults::EDGE_MEMORY, defaults::EDGE_CPUS),
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
    let backup = BackupSettings { keep: checker.positive("backup.keep", raw.backup.keep, defaults::BACKUP_KEEP) };
    let deploy = DeploySettings {
        parallel: checker.positive("deploy.parallel", raw.deploy.parallel, defaults::DEPLOY_PARALLEL),
        all_or_nothing: raw.deploy.all_or_nothing.unwrap_or(defaults::DEPLOY_ALL_OR_NOTHING),
    };
    let fallback = crate::model::platform::Minimums::default();
    let minimums = crate::model::platform::Minimums {
        docker: checker.version("minimums.docker", raw.minimums.docker, fallback.docker),
        compose_v2: checker.version("minimums.compose_v2", raw.minimums.compose_v2, fallback.compose_v2),
        compose_v1: checker.version("minimums.compose_v1", raw.minimums.compose_v1, fallback.compose_v1),
        finch: checker.version("minimums.finch", raw.minimums.finch, fallback.finch),
        podman: checker.version("minimums.podman", raw.minimums.podman, fallback.podman),
        podman_compose: checker.version(
            "minimums.podman_compose",
            raw.minimums.podman_compose,
            fallback.podman_compose,
        ),
    };

    let hosts = raw.hosts.into_iter().map(|(name, host)| {
        let resolved = checker.host(&name, host);
        (name, resolved)
    });
    let hosts: BTreeMap<String, Host> = hosts.collect();
    let groups = raw.groups.into_iter().map(|(name, members)| {
        checker.group(&name, &members, &hosts);
        (name, members)
    });
    let groups = groups.collect();
    let clusters = raw.clusters.into_iter().filter_map(|(name, cluster)| {
        let resolved = checker.cluster(&name, cluster, &hosts)?;
        Some((name, resolved))
    });
    let clusters = clusters.collect();

    Config {
        app: App { name, environment },
        images,
        http: Http { port, https_port, https, cert_path, server_names, cert_warn_days },
        database,
        backend,
        paths,
        resources,
        runtime,
        health,
        ssh,
        backup,
        deploy,
        minimums,
        hosts,
        groups,
        clusters,
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

    /// A group names hosts of `[hosts]`, at least one, each once, and not a host's
    /// own name (`--host` and `--group` would then mean two things).
    fn group(&mut self, name: &str, members: &[String], hosts: &BTreeMap<String, Host>) {
        let key = format!("groups.{name}");
        if members.is_empty() {
            self.invalid(&key, "[]", "at least one host name from [hosts]");
        }
        for (index, member) in members.iter().enumerate() {
            if !hosts.contains_key(member) {
                let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
                let expected = if known.is_empty() {
                    "a name from [hosts]; there is no [hosts.NAME] table yet".to_string()
                } else {
                    format!("a name from [hosts] ({})", known.join(", "))
                };
                self.invalid(&key, &format!("{member:?}"), &expected);
            } else if members[..index].contains(member) {
                self.invalid(&key, &format!("{member:?}"), "each host once");
            }
        }
        if hosts.contains_key(name) {
            self.invalid(&key, &format!("{name:?}"), "a group name that is not also a host's name");
        }
    }

    /// A cluster: `engine = "swarm"`, a manager and nodes from `[hosts]`, the data node
    /// one of them. `None` when it is not usable (the problems say why).
    fn cluster(&mut self, name: &str, raw: RawCluster, hosts: &BTreeMap<String, Host>) -> Option<Cluster> {
        let key = |field: &str| format!("clusters.{name}.{field}");
        let problems = self.problems.len();
        match raw.engine.as_deref() {
            Some("swarm") => {}
            None => self.missing(&key("engine"), "the orchestrator: \"swarm\" (Docker Swarm)"),
            Some(other) => self.invalid(&key("engine"), &format!("{other:?}"), "\"swarm\" (Docker Swarm)"),
        }
        let known = |checker: &mut Checker, field: &str, host: &str| {
            if !hosts.contains_key(host) {
                let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
                checker.invalid(
                    &key(field),
                    &format!("{host:?}"),
                    &format!("a name from [hosts] ({})", names.join(", ")),
                );
            }
        };
        let manager = raw.manager.unwrap_or_else(|| {
            self.missing(&key("manager"), "the [hosts] name of the node that forms the swarm and deploys the stack");
            String::new()
        });
        if !manager.is_empty() {
            known(self, "manager", &manager);
        }
        let mut nodes = vec![manager.clone()];
        let listed = raw.nodes.unwrap_or_default();
        for (index, node) in listed.iter().enumerate() {
            known(self, "nodes", node);
            if listed[..index].contains(node) {
                self.invalid(&key("nodes"), &format!("{node:?}"), "each host once");
            } else if *node != manager {
                nodes.push(node.clone());
            }
        }
        let data_node = raw.data_node.unwrap_or_else(|| manager.clone());
        if !nodes.contains(&data_node) {
            self.invalid(
                &key("data_node"),
                &format!("{data_node:?}"),
                "one of the cluster's nodes (the manager or one of `nodes`)",
            );
        }
        let publish = match raw.publish.as_deref() {
            None | Some("ingress") => Publish::Ingress,
            Some("host") => Publish::Host,
            Some(other) => {
                self.invalid(&key("publish"), &format!("{other:?}"), "ingress (the routing mesh) or host");
                Publish::Ingress
            }
        };
        (self.problems.len() == problems).then_some(Cluster { manager, nodes, data_node, publish })
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
        let engine = match raw.engine.as_deref() {
            None => None,
            Some("docker") => Some(crate::model::platform::LinuxEngine::Docker),
            Some("podman") => Some(crate::model::platform::LinuxEngine::Podman),
            Some(other) => {
                self.invalid(&key("engine"), &format!("{other:?}"), "docker or podman (Linux hosts; macOS runs Finch)");
                None
            }
        };
        if engine.is_some() && os == Some(crate::model::platform::TargetOs::Macos) {
            self.invalid(&key("engine"), "set on a macOS host", "no `engine` on a macOS host: it runs Finch");
        }
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
            engine,
            deployment_path: raw.deployment_path,
            log_path: raw.log_path,
        }
    }
}
