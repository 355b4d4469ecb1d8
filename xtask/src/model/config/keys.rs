//! The keys the file may hold, the environment variables that override some of them,
//! and the walk that names every key of a file that is none of them.

use super::problems::Problem;
use super::raw::RawConfig;

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

/// Every key the file may hold; `*` stands for a host's (a group's, a cluster's) name.
pub const KNOWN_KEYS: &[&str] = &[
    "app.name",
    "app.environment",
    "images.base",
    "images.builder",
    "images.database",
    "images.backend",
    "images.frontend",
    "images.edge",
    "http.port",
    "http.https_port",
    "http.https",
    "http.cert_path",
    "http.server_names",
    "http.cert_warn_days",
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
    "resources.edge.memory",
    "resources.edge.cpus",
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
    "backup.keep",
    "deploy.parallel",
    "deploy.all_or_nothing",
    "minimums.docker",
    "minimums.compose_v2",
    "minimums.compose_v1",
    "minimums.finch",
    "minimums.podman",
    "minimums.podman_compose",
    "hosts.*.address",
    "hosts.*.user",
    "hosts.*.port",
    "hosts.*.identity_file",
    "hosts.*.os",
    "hosts.*.engine",
    "hosts.*.deployment_path",
    "hosts.*.log_path",
    "groups.*",
    "clusters.*.engine",
    "clusters.*.manager",
    "clusters.*.nodes",
    "clusters.*.data_node",
    "clusters.*.publish",
];

/// Reads `text` as the file as written, with a [`Problem::Unknown`] for each key that
/// is not one of [`KNOWN_KEYS`]; a file that is not TOML, or a value of the wrong type,
/// is the one problem returned as the error.
pub(super) fn read_raw(text: &str) -> Result<(RawConfig, Vec<Problem>), Problem> {
    let deserializer = toml::de::Deserializer::parse(text)
        .map_err(|e| Problem::Conflict { message: format!("not valid TOML: {}", e.to_string().trim_end()) })?;
    let mut unknown = Vec::new();
    let raw: RawConfig = serde_ignored::deserialize(deserializer, |path| unknown.push(path.to_string()))
        .map_err(|e| Problem::Conflict { message: e.to_string().trim_end().to_string() })?;
    let problems = unknown.into_iter().map(|key| Problem::Unknown { suggestion: closest_key(&key), key }).collect();
    Ok((raw, problems))
}

/// The closest known key to `unknown` (host names generalised to `*`): a key of the
/// same table whose name looks alike, else any key that looks alike as a whole.
pub fn closest_key(unknown: &str) -> Option<String> {
    let mut parts: Vec<&str> = unknown.split('.').collect();
    let named = parts.first().is_some_and(|table| ["hosts", "clusters"].contains(table));
    let host = if named && parts.len() > 2 { Some(parts[1]) } else { None };
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
