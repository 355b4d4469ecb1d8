use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "deploy.toml", &no_env)
}

fn problems(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const MINIMAL: &str = "[app]\nname = \"cultivate\"\n";

#[test]
fn the_shipped_file_holds_exactly_the_documented_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let shipped = std::fs::read_to_string(root.join(CONFIG_FILE)).unwrap();
    assert_eq!(parse(&shipped).unwrap(), parse(MINIMAL).unwrap());
}

#[test]
fn defaults_fill_everything_optional() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.http.port, 80);
    assert_eq!(config.http.https_port, 443);
    assert!(!config.http.https && config.http.cert_path.is_none());
    assert_eq!((config.database.user.as_str(), config.database.name.as_str()), ("apiuser", "cultivate"));
    assert_eq!(config.backend.port, 3000);
    assert_eq!(config.runtime.keep_releases, 5);
    assert_eq!(config.resources.frontend.memory, "128m");
    assert!(config.hosts.is_empty());
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let message = problems("[app]\nname = \"cultivate\"\n[http\nport = 80\n");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("column"), "{message}");
}

#[test]
fn unknown_keys_are_named_with_the_closest_valid_key() {
    let message = problems(
        "[app]\nname = \"x\"\n[http]\nprot = 80\n[hosts.web]\naddress = \"h\"\nuser = \"u\"\nidentity = \"k\"\n",
    );
    assert!(message.contains("unknown key `http.prot` (did you mean `http.port`?)"), "{message}");
    assert!(
        message.contains("unknown key `hosts.web.identity` (did you mean `hosts.web.identity_file`?)"),
        "{message}"
    );
    let message = problems("[app]\nname = \"x\"\n[zebra]\nstripes = 3\n");
    assert!(message.contains("unknown key `zebra`"), "{message}");
}

#[test]
fn ports_out_of_range_and_duplicates_are_reported_together() {
    let message = problems("[app]\nname = \"x\"\n[http]\nport = 0\nhttps_port = 70000\n[backend]\nport = -1\n");
    assert!(message.contains("`http.port` = 0: a port number 1–65535"), "{message}");
    assert!(message.contains("`http.https_port` = 70000"), "{message}");
    assert!(message.contains("`backend.port` = -1"), "{message}");
    assert!(message.contains("3 problems"), "{message}");
    let message =
        problems("[app]\nname = \"x\"\n[http]\nport = 8443\nhttps_port = 8443\nhttps = true\ncert_path = \"/c\"\n");
    assert!(message.contains("both 8443"), "{message}");
}

#[test]
fn negative_or_zero_limits_are_refused() {
    let message = problems(
        "[app]\nname = \"x\"\n[resources.backend]\nmemory = \"-5m\"\ncpus = -1.0\n[runtime]\nkeep_releases = 0\nlog_max_size = \"0\"\n",
    );
    for key in ["resources.backend.memory", "resources.backend.cpus", "runtime.keep_releases", "runtime.log_max_size"] {
        assert!(message.contains(&format!("`{key}`")), "{key}: {message}");
    }
}

#[test]
fn https_needs_a_certificate_directory() {
    let error = parse("[app]\nname = \"x\"\n[http]\nhttps = true\n").unwrap_err();
    assert_eq!(error.missing_keys(), ["http.cert_path"]);
}

#[test]
fn environment_overrides_the_file() {
    let env = |name: &str| match name {
        "HTTP_PORT" => Some("8080".to_string()),
        "ENABLE_HTTPS" => Some("true".to_string()),
        "CERT_PATH" => Some("/etc/certs".to_string()),
        "DEPLOYMENT_PATH" => Some("/srv/c".to_string()),
        "APP_ENV" => Some("staging".to_string()),
        _ => None,
    };
    let text =
        "[app]\nname = \"x\"\nenvironment = \"production\"\n[http]\nport = 80\n[paths]\ndeployment = \"/opt/x\"\n";
    let config = Config::parse(text, "t", &env).unwrap();
    assert_eq!(config.http.port, 8080);
    assert!(config.http.https);
    assert_eq!(config.http.cert_path.as_deref(), Some("/etc/certs"));
    assert_eq!(config.paths.deployment.pick(Some("/host/path")), Some("/srv/c"));
    assert_eq!(config.app.environment, AppEnvironment::Staging);
    let bad = |name: &str| (name == "HTTP_PORT").then(|| "eighty".to_string());
    let message = Config::parse(MINIMAL, "t", &bad).unwrap_err().to_string();
    assert!(message.contains("http.port (from HTTP_PORT)") && message.contains("\"eighty\""), "{message}");
}

#[test]
fn host_paths_sit_between_environment_and_file() {
    let config = parse("[app]\nname = \"x\"\n[paths]\ndeployment = \"/opt/x\"\n").unwrap();
    assert_eq!(config.paths.deployment.pick(Some("/host")), Some("/host"));
    assert_eq!(config.paths.deployment.pick(None), Some("/opt/x"));
}

#[test]
fn relative_paths_and_dotdot_are_refused() {
    let message = problems("[app]\nname = \"x\"\n[paths]\ndeployment = \"opt/x\"\nlogs = \"/var/../etc\"\n");
    assert!(message.contains("`paths.deployment`") && message.contains("`paths.logs`"), "{message}");
}

#[test]
fn paths_with_spaces_and_quotes_are_accepted() {
    let config = parse("[app]\nname = \"x\"\n[paths]\ndeployment = \"/srv/my app/it's \\\"here\\\"\"\n").unwrap();
    assert_eq!(config.paths.deployment.file.as_deref(), Some("/srv/my app/it's \"here\""));
}

#[test]
fn hostile_host_addresses_are_refused() {
    let message = problems("[app]\nname = \"x\"\n[hosts.web]\naddress = \"-oProxyCommand=sh\"\nuser = \"u\"\n");
    assert!(message.contains("hosts.web.address"), "{message}");
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("512m"), Some(512 << 20));
    assert_eq!(parse_size("1G"), Some(1 << 30));
    assert_eq!(parse_size("100kb"), Some(100 << 10));
    assert_eq!(parse_size("42"), Some(42));
    assert_eq!(parse_size("-5m"), None);
    assert_eq!(parse_size("1.5g"), None);
    assert_eq!(parse_size("m"), None);
}

// ---------------------------------------------------------------------------------

/// A configuration written as TOML tables from dotted keys.
fn to_toml(entries: &[(String, String)]) -> String {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, literal) in entries {
        let (table, field) = key.rsplit_once('.').unwrap();
        tables.entry(table.to_string()).or_default().push(format!("{field} = {literal}"));
    }
    tables.into_iter().map(|(table, lines)| format!("[{table}]\n{}\n", lines.join("\n"))).collect()
}

fn host_names() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    // Property 25: required configuration validation — any set of missing required
    // values is reported as exactly that set of keys, and nothing is produced.
    #[test]
    fn property_25_missing_required_values_are_named_exactly(
        hosts in host_names(),
        https in any::<bool>(),
        drop_mask in proptest::collection::vec(any::<bool>(), 16),
    ) {
        let mut required = vec![("app.name".to_string(), "\"cultivate\"".to_string())];
        for host in &hosts {
            required.push((format!("hosts.{host}.address"), "\"203.0.113.7\"".to_string()));
            required.push((format!("hosts.{host}.user"), "\"deploy\"".to_string()));
        }
        if https {
            required.push(("http.cert_path".to_string(), "\"/etc/cultivate/certs\"".to_string()));
        }
        let mut entries = vec![("http.https".to_string(), https.to_string())];
        let mut dropped = BTreeSet::new();
        for (index, entry) in required.into_iter().enumerate() {
            if drop_mask[index % drop_mask.len()] {
                dropped.insert(entry.0.clone());
            } else {
                entries.push(entry);
            }
        }
        // A host with both keys dropped still has its table, so it still exists.
        for host in &hosts {
            entries.push((format!("hosts.{host}.port"), "22".to_string()));
        }
        let result = parse(&to_toml(&entries));
        if dropped.is_empty() {
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        } else {
            let error = result.unwrap_err();
            let missing: BTreeSet<String> = error.missing_keys().into_iter().map(str::to_string).collect();
            prop_assert_eq!(&missing, &dropped, "{}", error);
            prop_assert_eq!(error.problems.len(), dropped.len(), "{}", error);
        }
    }

    // Property 26: default value application — every optional key left out takes its
    // documented default; every key given keeps its value.
    #[test]
    fn property_26_absent_optional_values_take_their_defaults(
        values in (
            proptest::option::of(prop_oneof![Just("production"), Just("staging")]),
            proptest::option::of(1u16..=65535),
            proptest::option::of(1u16..=65535),
            proptest::option::of("[a-z_][a-z0-9_]{0,12}"),
            proptest::option::of("[a-z_][a-z0-9_]{0,12}"),
            proptest::option::of(1u16..=65535),
            proptest::option::of(("[1-9][0-9]{0,3}", prop_oneof![Just("k"), Just("m"), Just("g")])),
            proptest::option::of(1u32..=64),
            proptest::option::of(prop_oneof![Just("no"), Just("always"), Just("on-failure"), Just("unless-stopped")]),
            proptest::option::of(1u32..=100),
            proptest::option::of(1u32..=50),
            proptest::option::of(1u32..=3600),
        ),
    ) {
        let (environment, port, https_port, user, name, backend_port, memory, cpus_tenths, restart, log_files, keep, timeout) = values;
        let mut entries = vec![("app.name".to_string(), "\"cultivate\"".to_string())];
        let mut put = |key: &str, literal: Option<String>| {
            if let Some(literal) = literal {
                entries.push((key.to_string(), literal));
            }
        };
        put("app.environment", environment.map(|v| format!("{v:?}")));
        put("http.port", port.map(|v| v.to_string()));
        put("http.https_port", https_port.map(|v| v.to_string()));
        put("database.user", user.clone().map(|v| format!("{v:?}")));
        put("database.name", name.clone().map(|v| format!("{v:?}")));
        put("backend.port", backend_port.map(|v| v.to_string()));
        let memory = memory.map(|(n, unit)| format!("{n}{unit}"));
        put("resources.backend.memory", memory.clone().map(|v| format!("{v:?}")));
        put("resources.frontend.cpus", cpus_tenths.map(|v| format!("{:.1}", f64::from(v) / 10.0)));
        put("runtime.restart", restart.map(|v| format!("{v:?}")));
        put("runtime.log_max_files", log_files.map(|v| v.to_string()));
        put("runtime.keep_releases", keep.map(|v| v.to_string()));
        put("health.timeout_seconds", timeout.map(|v| v.to_string()));

        let config = parse(&to_toml(&entries)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(config.app.environment.to_string(), environment.unwrap_or(defaults::APP_ENVIRONMENT));
        prop_assert_eq!(config.http.port, port.unwrap_or(defaults::HTTP_PORT));
        prop_assert_eq!(config.http.https_port, https_port.unwrap_or(defaults::HTTPS_PORT));
        prop_assert_eq!(config.database.user, user.unwrap_or_else(|| defaults::POSTGRES_USER.into()));
        prop_assert_eq!(config.database.name, name.unwrap_or_else(|| defaults::POSTGRES_DB.into()));
        prop_assert_eq!(config.backend.port, backend_port.unwrap_or(defaults::BACKEND_PORT));
        prop_assert_eq!(config.resources.backend.memory, memory.unwrap_or_else(|| defaults::BACKEND_MEMORY.into()));
        prop_assert_eq!(config.resources.frontend.cpus, cpus_tenths.map_or(defaults::FRONTEND_CPUS, |v| f64::from(v) / 10.0));
        prop_assert_eq!(config.runtime.restart, restart.unwrap_or(defaults::RESTART));
        prop_assert_eq!(config.runtime.log_max_files, log_files.unwrap_or(defaults::LOG_MAX_FILES));
        prop_assert_eq!(config.runtime.keep_releases, keep.unwrap_or(defaults::KEEP_RELEASES));
        prop_assert_eq!(config.health.timeout_seconds, timeout.unwrap_or(defaults::HEALTH_TIMEOUT_SECONDS));
        // Untouched sections keep their defaults too.
        prop_assert_eq!(config.resources.database.memory.as_str(), defaults::DATABASE_MEMORY);
        prop_assert_eq!(config.health.retries, defaults::HEALTH_RETRIES);
    }
}
