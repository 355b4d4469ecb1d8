use std::collections::{BTreeMap, BTreeSet};

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
fn groups_name_configured_hosts_each_once() {
    let hosts =
        "[app]\nname = \"x\"\n[hosts.a]\naddress = \"a\"\nuser = \"u\"\n[hosts.b]\naddress = \"b\"\nuser = \"u\"\n";
    let config = parse(&format!("{hosts}[groups]\nprod = [\"a\", \"b\"]\n")).unwrap();
    assert_eq!(config.groups["prod"], ["a", "b"]);
    assert_eq!(config.deploy, DeploySettings { parallel: 4, all_or_nothing: false });
    let message = problems(&format!("{hosts}[groups]\nprod = [\"a\", \"c\"]\nnone = []\nb = [\"a\", \"a\"]\n"));
    for expected in [
        "`groups.prod` = \"c\": a name from [hosts] (a, b)",
        "`groups.none` = []: at least one host name",
        "`groups.b` = \"a\": each host once",
        "`groups.b` = \"b\": a group name that is not also a host's name",
    ] {
        assert!(message.contains(expected), "{expected} not in {message}");
    }
    let message = problems(&format!("{MINIMAL}[deploy]\nparallel = 0\n"));
    assert!(message.contains("`deploy.parallel` = 0: a whole number greater than 0"), "{message}");
}

#[test]
fn a_cluster_is_a_swarm_of_configured_hosts_with_a_data_node_among_them() {
    let hosts = "[app]\nname = \"x\"\n[hosts.a]\naddress = \"a\"\nuser = \"u\"\n[hosts.b]\naddress = \"b\"\nuser = \"u\"\n\
                 [hosts.c]\naddress = \"c\"\nuser = \"u\"\n";
    let config =
        parse(&format!("{hosts}[clusters.web]\nengine = \"swarm\"\nmanager = \"a\"\nnodes = [\"b\", \"a\", \"c\"]\n"))
            .unwrap();
    let web = &config.clusters["web"];
    assert_eq!((web.manager.as_str(), web.data_node.as_str()), ("a", "a"));
    assert_eq!(web.nodes, ["a", "b", "c"], "the manager first, each node once");
    let message = problems(&format!(
        "{hosts}[clusters.web]\nengine = \"kubernetes\"\nmanager = \"z\"\nnodes = [\"b\", \"b\"]\ndata_node = \"c\"\n\
         [clusters.bare]\nnodes = [\"a\"]\n"
    ));
    for expected in [
        "`clusters.web.engine` = \"kubernetes\": \"swarm\" (Docker Swarm)",
        "`clusters.web.manager` = \"z\": a name from [hosts] (a, b, c)",
        "`clusters.web.nodes` = \"b\": each host once",
        "`clusters.web.data_node` = \"c\": one of the cluster's nodes",
        "missing `clusters.bare.engine`",
        "missing `clusters.bare.manager`",
    ] {
        assert!(message.contains(expected), "{expected} not in {message}");
    }
    let message = problems(&format!("{hosts}[clusters.web]\nengine = \"swarm\"\nmanagr = \"a\"\n"));
    assert!(message.contains("unknown key `clusters.web.managr` (did you mean `clusters.web.manager`?)"), "{message}");
}

#[test]
fn a_hosts_engine_is_docker_or_podman_on_linux() {
    let host = |extra: &str| format!("[app]\nname = \"x\"\n[hosts.web]\naddress = \"h\"\nuser = \"u\"\n{extra}");
    let config = parse(&host("engine = \"podman\"\n")).unwrap();
    assert_eq!(config.hosts["web"].engine, Some(crate::model::platform::LinuxEngine::Podman));
    assert_eq!(parse(&host("")).unwrap().hosts["web"].engine, None);
    let message = problems(&host("engine = \"containerd\"\n"));
    assert!(message.contains("hosts.web.engine") && message.contains("docker or podman"), "{message}");
    let message = problems(&host("os = \"macos\"\nengine = \"podman\"\n"));
    assert!(message.contains("hosts.web.engine") && message.contains("Finch"), "{message}");
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

/// Role and database names the configuration accepts (no reserved ones).
fn database_identifier() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,12}".prop_filter("reserved by PostgreSQL", |name| {
        !name.starts_with("pg_")
            && !SQL_RESERVED_WORDS.contains(&name.as_str())
            && !RESERVED_ROLES.contains(&name.as_str())
            && !RESERVED_DATABASES.contains(&name.as_str())
    })
}

/// Every key holding text, with what else the file needs for the key to be read.
/// `*` is the host `web`.
const TEXT_KEYS: &[(&str, &str)] = &[
    ("app.name", ""),
    ("app.environment", ""),
    ("images.base", ""),
    ("images.builder", ""),
    ("images.database", ""),
    ("images.backend", ""),
    ("images.frontend", ""),
    ("http.cert_path", "http.https = true"),
    ("database.user", ""),
    ("database.name", ""),
    ("paths.deployment", ""),
    ("paths.logs", ""),
    ("resources.database.memory", ""),
    ("resources.backend.memory", ""),
    ("resources.frontend.memory", ""),
    ("runtime.restart", ""),
    ("runtime.log_max_size", ""),
    ("minimums.docker", ""),
    ("minimums.compose_v2", ""),
    ("minimums.compose_v1", ""),
    ("minimums.finch", ""),
    ("minimums.podman", ""),
    ("minimums.podman_compose", ""),
    ("hosts.web.address", ""),
    ("hosts.web.user", ""),
    ("hosts.web.os", ""),
    ("hosts.web.engine", ""),
    ("hosts.web.identity_file", ""),
    ("hosts.web.deployment_path", ""),
    ("hosts.web.log_path", ""),
];

/// Keys naming a path (on the target, or this machine's certificates).
const PATH_KEYS: &[&str] =
    &["http.cert_path", "paths.deployment", "paths.logs", "hosts.web.deployment_path", "hosts.web.log_path"];

/// What makes a value hostile, whatever the key: a line break or another control
/// character (forged log lines, broken env files), or a leading `-` (read as an
/// option by the commands the value reaches); for paths also `..` and `:`.
fn hostile_text(path: bool) -> impl Strategy<Value = String> {
    let plain = "[a-z0-9/._]{0,12}";
    let control = prop_oneof![Just("\n"), Just("\r"), Just("\t"), Just("\u{0}"), Just("\u{1b}[31m"), Just("\u{7f}")];
    let anywhere = (plain, control, plain).prop_map(|(a, c, b)| format!("{a}{c}{b}"));
    let leading_dash = plain.prop_map(|rest| format!("-{rest}"));
    let path_only = prop_oneof![
        (plain, plain).prop_map(|(a, b)| format!("/{a}/../{b}")),
        (plain, plain).prop_map(|(a, b)| format!("/{a}:{b}")),
    ];
    if path {
        prop_oneof![anywhere, leading_dash, path_only].boxed()
    } else {
        prop_oneof![anywhere, leading_dash].boxed()
    }
}

/// `text` as a TOML basic string, every control character escaped.
fn toml_string(text: &str) -> String {
    let mut literal = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            c if c.is_control() => literal.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => literal.push(c),
        }
    }
    literal + "\""
}

/// `key = value` for `key`, in a file that is otherwise valid.
fn file_with(key: &str, literal: &str, extra: &str) -> String {
    let mut entries = vec![("app.name".to_string(), "\"cultivate\"".to_string())];
    entries.retain(|(k, _)| k != key);
    if key.starts_with("hosts.web.") {
        for (field, value) in [("address", "\"203.0.113.7\""), ("user", "\"deploy\"")] {
            if key != format!("hosts.web.{field}") {
                entries.push((format!("hosts.web.{field}"), value.to_string()));
            }
        }
    }
    if key == "http.cert_path" {
        entries.push(("http.cert_path".into(), literal.into()));
    } else {
        entries.push((key.to_string(), literal.to_string()));
    }
    if let Some((k, v)) = extra.split_once(" = ") {
        entries.push((k.to_string(), v.to_string()));
    }
    to_toml(&entries)
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
            proptest::option::of(database_identifier()),
            proptest::option::of(database_identifier()),
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

#[test]
fn the_superuser_reserved_names_and_sql_words_are_refused_as_database_names() {
    for (key, value) in [
        ("database.user", "postgres"),
        ("database.user", "pg_monitor"),
        ("database.user", "public"),
        ("database.user", "user"),
        ("database.user", "select"),
        ("database.name", "postgres"),
        ("database.name", "template1"),
        ("database.name", "pg_x"),
        ("database.name", "table"),
    ] {
        let message = problems(&file_with(key, &format!("{value:?}"), ""));
        assert!(message.contains(&format!("`{key}`")) && message.contains(value), "{key} = {value}: {message}");
    }
    // The same through the environment, as the design's POSTGRES_USER.
    let env = |name: &str| (name == "POSTGRES_USER").then(|| "postgres".to_string());
    let message = Config::parse(MINIMAL, "deploy.toml", &env).unwrap_err().to_string();
    assert!(message.contains("database.user (from POSTGRES_USER)") && message.contains("reserved"), "{message}");
    assert!(parse(&file_with("database.user", "\"app_user\"", "")).is_ok());
}

#[test]
fn image_references_are_checked_like_docker_does() {
    for good in [
        "debian:bookworm-slim",
        "rust:1-bookworm",
        "registry.local:5000/team/rust:1.92",
        "localhost/x",
        "a/b_c__d-e",
        "debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(check_image_reference(good), Ok(()), "{good}");
    }
    for bad in
        ["-debian", "Debian", "debian:", "debian:-x", "a//b", "a/-b", "debian bookworm", "x@sha256:zz", "deb\nian", ""]
    {
        assert!(check_image_reference(bad).is_err(), "{bad:?} accepted");
    }
    for bad in ["-cultivate-database", "cultivate-database:1", "x..y", "_x"] {
        assert!(check_image_repository(bad).is_err(), "{bad:?} accepted");
    }
    let message = problems("[app]\nname = \"x\"\n[images]\nbase = \"--privileged\"\nbackend = \"-x\"\n");
    assert!(message.contains("`images.base`") && message.contains("`images.backend`"), "{message}");
}

#[test]
fn cpus_beyond_what_any_machine_has_are_refused() {
    for value in ["1e300", "inf", "0.001", "2048.0"] {
        let file = format!("[app]\nname = \"x\"\n[resources.backend]\ncpus = {value}\n");
        let message = problems(&file);
        assert!(message.contains("`resources.backend.cpus`") && message.contains("1024"), "{value}: {message}");
    }
    assert!(parse("[app]\nname = \"x\"\n[resources.backend]\ncpus = 0.25\n").is_ok());
}

#[test]
fn certificate_and_deployment_paths_are_checked() {
    for (key, value) in [
        ("http.cert_path", "certs"),
        ("http.cert_path", "/etc/../certs"),
        ("http.cert_path", "/etc/certs\nAPP_ENV=x"),
        ("http.cert_path", "~/certs"),
        ("paths.deployment", "/srv/a:b"),
        ("paths.logs", "/var/log/a:b"),
    ] {
        let message = problems(&file_with(key, &toml_string(value), "http.https = true"));
        assert!(message.contains(&format!("`{key}`")), "{key} = {value:?}: {message}");
    }
    let env = |name: &str| (name == "CERT_PATH").then(|| "relative/certs".to_string());
    let message =
        Config::parse("[app]\nname = \"x\"\n[http]\nhttps = true\n", "deploy.toml", &env).unwrap_err().to_string();
    assert!(message.contains("http.cert_path (from CERT_PATH)"), "{message}");
}

#[test]
fn server_names_are_host_names() {
    let config =
        parse("[app]\nname = \"x\"\n[http]\nserver_names = [\"example.com\", \"www.example.com\", \"192.0.2.1\"]\n")
            .unwrap();
    assert_eq!(config.http.server_names, ["example.com", "www.example.com", "192.0.2.1"]);
    for bad in ["*.example.com", "example.com:443", "https://example.com", "Example.com", "-x.com", "a..b", "a b"] {
        let message = problems(&format!("[app]\nname = \"x\"\n[http]\nserver_names = [{bad:?}]\n"));
        assert!(message.contains("`http.server_names`"), "{bad}: {message}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    // Issue 9, item 9: every configurable text value is checked before anything runs.
    // A hostile string in any key (or any environment override) is refused, and the
    // error names that key.
    #[test]
    fn hostile_strings_are_refused_in_every_key(
        key_index in 0..TEXT_KEYS.len(),
        plain in hostile_text(false),
        path in hostile_text(true),
    ) {
        let (key, extra) = TEXT_KEYS[key_index];
        let value = if PATH_KEYS.contains(&key) { path } else { plain };
        let literal = toml_string(&value);
        let text = file_with(key, &literal, extra);
        let result = parse(&text);
        prop_assert!(result.is_err(), "{key} = {value:?} was accepted:\n{text}");
        let message = result.unwrap_err().to_string();
        prop_assert!(message.contains(key), "the error for {key} = {value:?} does not name it: {message}");
    }

    #[test]
    fn hostile_strings_are_refused_in_every_environment_override(
        index in 0..ENV_OVERRIDES.len(),
        plain in hostile_text(false),
        path in hostile_text(true),
    ) {
        let (variable, key) = ENV_OVERRIDES[index];
        let value = if PATH_KEYS.contains(&key) { path } else { plain };
        let env = |name: &str| (name == variable).then(|| value.clone());
        let result = Config::parse("[app]\nname = \"x\"\n[http]\nhttps = true\ncert_path = \"/etc/certs\"\n", "deploy.toml", &env);
        prop_assert!(result.is_err(), "{variable}={value:?} was accepted");
        let message = result.unwrap_err().to_string();
        prop_assert!(message.contains(&format!("{key} (from {variable})")), "{variable}={value:?}: {message}");
    }
}

// ---- the known keys and the file's structs agree ----

// The field list comes from the structs themselves: the Raw structs derive `Serialize` in
// tests only, and serde_json keeps a `None` as `null`, so a default `RawConfig` (with one
// host) serializes to a tree whose leaves are exactly the fields; their paths must be
// KNOWN_KEYS. The other way round, each known key set alone (to whichever value of a few
// types the field takes) must pass the same unknown-key walk `Config::parse` uses.
fn raw_field_keys() -> BTreeSet<String> {
    fn leaves(prefix: &str, value: &serde_json::Value, keys: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (name, inner) in fields {
                    let named = ["hosts", "groups", "clusters"].contains(&prefix);
                    let name = if named { "*" } else { name.as_str() };
                    let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
                    leaves(&path, inner, keys);
                }
            }
            _ => {
                keys.insert(prefix.to_string());
            }
        }
    }
    let mut raw = raw::RawConfig::default();
    raw.hosts.insert("web".to_string(), raw::RawHost::default());
    raw.groups.insert("all".to_string(), Vec::new());
    raw.clusters.insert("web".to_string(), raw::RawCluster::default());
    let mut keys = BTreeSet::new();
    leaves("", &serde_json::to_value(&raw).unwrap(), &mut keys);
    keys
}

#[test]
fn every_raw_field_is_a_known_key_and_every_known_key_a_raw_field() {
    let known: BTreeSet<String> = KNOWN_KEYS.iter().map(|key| key.to_string()).collect();
    let fields = raw_field_keys();
    assert_eq!(known.len(), KNOWN_KEYS.len(), "KNOWN_KEYS lists a key twice");
    let unlisted: Vec<&String> = fields.difference(&known).collect();
    let fieldless: Vec<&String> = known.difference(&fields).collect();
    assert!(unlisted.is_empty(), "fields of the Raw structs missing from KNOWN_KEYS: {unlisted:?}");
    assert!(fieldless.is_empty(), "KNOWN_KEYS without a field in the Raw structs: {fieldless:?}");
}

#[test]
fn each_known_key_set_alone_is_read_without_an_unknown_key() {
    for key in KNOWN_KEYS {
        let key = key.replace('*', "web");
        let (table, field) = key.rsplit_once('.').unwrap();
        let accepted = ["\"x\"", "1", "1.5", "true", "[\"x\"]"].iter().any(|value| {
            let text = format!("[{table}]\n{field} = {value}\n");
            matches!(keys::read_raw(&text), Ok((_, unknown)) if unknown.is_empty())
        });
        assert!(accepted, "`{key}`, set alone, is an unknown key or takes none of the values tried");
    }
}

#[test]
fn each_environment_override_names_a_known_key() {
    for (variable, key) in ENV_OVERRIDES {
        assert!(KNOWN_KEYS.contains(&key), "{variable} overrides `{key}`, which is not in KNOWN_KEYS");
    }
    let variables: BTreeSet<&str> = ENV_OVERRIDES.iter().map(|(variable, _)| *variable).collect();
    assert_eq!(variables.len(), ENV_OVERRIDES.len(), "a variable overrides two keys");
}

#[test]
fn published_ports_and_the_url_follow_https() {
    let http = parse("[app]\nname = \"x\"\n[http]\nport = 8080\n").unwrap().http;
    assert_eq!((http.published_ports(), http.url("example.com")), (vec![8080], "http://example.com:8080/".into()));
    let https = parse("[app]\nname = \"x\"\n[http]\nhttps = true\ncert_path = \"/c\"\n").unwrap().http;
    assert_eq!((https.published_ports(), https.url("example.com")), (vec![80, 443], "https://example.com/".into()));
}
