use proptest::prelude::*;

use super::*;
use crate::model::config::Config;
use crate::model::paths::{DeploymentPaths, visible_to_finch};

#[test]
fn env_values_are_quoted_only_when_needed() {
    assert_eq!(quote_env_value("/opt/cultivate"), "/opt/cultivate");
    assert_eq!(quote_env_value("/opt/my app"), "'/opt/my app'");
    assert_eq!(quote_env_value("/opt/it's"), "\"/opt/it's\"");
    assert_eq!(quote_env_value("a\"b'c$d"), "\"a\\\"b'c\\$d\"");
    assert_eq!(quote_env_value(""), "''");
}

#[test]
fn referenced_variables_are_found_once() {
    let yaml = "a: ${HTTP_PORT}:80\nb: ${DEPLOYMENT_PATH}/x ${HTTP_PORT}\nc: $$literal ${X:-1}";
    assert_eq!(referenced_variables(yaml), ["HTTP_PORT", "DEPLOYMENT_PATH", "X"]);
}

#[test]
fn cpus_are_written_as_decimal_strings() {
    assert_eq!(format_cpus(1.0), "1.0");
    assert_eq!(format_cpus(0.25), "0.25");
    assert_eq!(format_cpus(2.0), "2.0");
}

fn config(text: &str) -> Config {
    Config::parse(text, "test", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

const DEFAULT: &str = "[app]\nname = \"cultivate\"\n";
const HTTPS: &str = "[app]\nname = \"cultivate\"\n[http]\nhttps = true\ncert_path = \"/etc/cultivate/certs\"\n";

fn rendered(text: &str, os: TargetOs, user: &str, secrets: &[String]) -> Rendered {
    rendered_for(LinuxEngine::Docker, text, os, user, secrets)
}

fn rendered_for(engine: LinuxEngine, text: &str, os: TargetOs, user: &str, secrets: &[String]) -> Rendered {
    rendered_with(engine, text, os, user, secrets, false)
}

/// The default configuration for a Linux target running Docker, where the engine
/// honours `start_interval` or not.
fn rendered_docker(start_interval: bool) -> Rendered {
    rendered_with(LinuxEngine::Docker, DEFAULT, TargetOs::Linux, "root", &[], start_interval)
}

fn rendered_with(
    engine: LinuxEngine,
    text: &str,
    os: TargetOs,
    user: &str,
    secrets: &[String],
    start_interval: bool,
) -> Rendered {
    let config = config(text);
    let paths = DeploymentPaths::resolve(os, user, &config, None).unwrap();
    render(RenderInput {
        config: &config,
        paths: &paths,
        engine,
        version: "0ca9c96",
        images: &[],
        secrets,
        start_interval,
    })
}

/// `${NAME}` replaced by the env file's value, as compose does.
fn interpolate(yaml: &str, env: &EnvFile) -> String {
    let mut text = yaml.to_string();
    for (key, value) in &env.vars {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    text
}

#[test]
fn snapshot_linux_http() {
    let rendered = rendered(DEFAULT, TargetOs::Linux, "root", &[]);
    insta::assert_snapshot!("linux_http_compose", rendered.compose_yaml());
    insta::assert_snapshot!("linux_http_env", rendered.env.render());
}

/// Podman: the same file but for start order (podman-compose would wait for a health
/// status that nothing updates on a host without systemd) and the edge (no swap behind
/// it): the frontend publishes the ports. The checks stay.
#[test]
fn podman_starts_in_order_with_the_healthchecks_kept() {
    let docker = rendered_docker(true);
    let podman = rendered_for(LinuxEngine::Podman, DEFAULT, TargetOs::Linux, "root", &[]);
    let services = |r: &Rendered| {
        let s = &r.compose.services;
        [s.database.clone(), s.backend.clone(), s.frontend.clone()]
    };
    for (docker, podman) in services(&docker).into_iter().zip(services(&podman)) {
        assert!(podman.healthcheck.is_some());
        assert_eq!(podman.healthcheck.as_ref().map(|h| &h.test), docker.healthcheck.as_ref().map(|h| &h.test));
        assert_eq!(podman.depends_on.names(), docker.depends_on.names());
        assert!(matches!(podman.depends_on, DependsOn::Order(_)), "{:?}", podman.depends_on);
        assert_eq!(podman.volumes, docker.volumes);
    }
    assert!(podman.compose.services.edge.is_none() && docker.compose.services.edge.is_some());
    assert!(docker.compose.services.frontend.ports.is_empty());
    assert_eq!(podman.compose.services.frontend.ports, docker.compose.services.published().ports);
    assert!(docker.compose_yaml().contains("condition: service_healthy"));
    assert!(!podman.compose_yaml().contains("condition:"));
    // Only the internal network's DNS server, which knows the backend, for nginx.
    assert!(podman.compose.networks["edge"].podman_disable_dns);
    assert!(!podman.compose.networks["internal"].podman_disable_dns);
    assert!(!docker.compose_yaml().contains("x-podman"));
    assert_eq!(podman.env, docker.env);
}

#[test]
fn snapshot_linux_https_with_secrets() {
    let rendered = rendered(HTTPS, TargetOs::Linux, "deploy", &["api_token".to_string()]);
    insta::assert_snapshot!("linux_https_compose", rendered.compose_yaml());
    insta::assert_snapshot!("linux_https_env", rendered.env.render());
}

#[test]
fn snapshot_macos_http() {
    let rendered = rendered(DEFAULT, TargetOs::Macos, "ada", &[]);
    insta::assert_snapshot!("macos_http_compose", rendered.compose_yaml());
    insta::assert_snapshot!("macos_http_env", rendered.env.render());
}

#[test]
fn no_version_key_and_no_latest_tag() {
    for os in [TargetOs::Linux, TargetOs::Macos] {
        let yaml = rendered(HTTPS, os, "ada", &[]).compose_yaml();
        assert!(!yaml.lines().any(|l| l.starts_with("version:") || l.starts_with("name:")), "{yaml}");
        assert!(!yaml.contains(":latest"), "{yaml}");
    }
}

/// A configuration in the ranges the file allows, as TOML.
fn any_config() -> impl Strategy<Value = (String, bool)> {
    (
        1u16..=65535,
        1u16..=65535,
        any::<bool>(),
        "[a-z_][a-z0-9_]{0,10}",
        "[a-z_][a-z0-9_]{0,10}",
        1u16..=65535,
        proptest::option::of("[a-zA-Z0-9 '._-]{1,20}"),
    )
        .prop_filter("HTTP and HTTPS ports differ when HTTPS is on", |(http, https_port, https, ..)| {
            !*https || http != https_port
        })
        .prop_filter("names PostgreSQL reserves are refused", |(_, _, _, user, name, ..)| {
            let usable = |n: &str| {
                !n.starts_with("pg_")
                    && !crate::model::config::SQL_RESERVED_WORDS.contains(&n)
                    && !crate::model::config::RESERVED_ROLES.contains(&n)
                    && !crate::model::config::RESERVED_DATABASES.contains(&n)
            };
            usable(user) && usable(name)
        })
        .prop_filter("certificate paths without `..`", |(.., cert_dir)| {
            cert_dir.as_deref().is_none_or(|dir| !dir.split('/').any(|part| part == ".."))
        })
        .prop_map(|(http, https_port, https, user, name, backend, cert_dir)| {
            let cert = match (&cert_dir, https) {
                (Some(dir), true) => format!("cert_path = {:?}\n", format!("/etc/{dir}")),
                (None, true) => "cert_path = \"/etc/certs\"\n".to_string(),
                _ => String::new(),
            };
            let text = format!(
                "[app]\nname = \"cultivate\"\n[http]\nport = {http}\nhttps_port = {https_port}\nhttps = {https}\n{cert}\
                 [database]\nuser = {user:?}\nname = {name:?}\n[backend]\nport = {backend}\n"
            );
            (text, https)
        })
}

/// A deployment path: under the user's home on macOS (sometimes via `~`), anywhere on Linux.
fn any_deployment_path(os: TargetOs) -> impl Strategy<Value = String> {
    let tail = "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,11}(/[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,11}){0,2}";
    match os {
        TargetOs::Linux => tail.prop_map(|t| format!("/srv/{t}")).boxed(),
        TargetOs::Macos => (tail, any::<bool>())
            .prop_map(|(t, tilde)| if tilde { format!("~/{t}") } else { format!("/Users/ada/{t}") })
            .boxed(),
    }
}

fn any_target() -> impl Strategy<Value = (TargetOs, (String, bool), Option<String>, Vec<String>)> {
    prop_oneof![Just(TargetOs::Linux), Just(TargetOs::Macos)].prop_flat_map(|os| {
        (
            Just(os),
            any_config(),
            proptest::option::of(any_deployment_path(os)),
            proptest::collection::vec("[a-z_]{1,10}", 0..3),
        )
    })
}

fn with_deployment(text: &str, path: &Option<String>) -> String {
    match path {
        Some(path) => format!("{text}[paths]\ndeployment = {path:?}\n"),
        None => text.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    // Property 6: socket volume exclusivity — only the backend and the database mount
    // the socket volume, always as a named volume, never a host path.
    #[test]
    fn property_6_only_backend_and_database_mount_the_socket((os, (text, _), path, secrets) in any_target()) {
        let rendered = rendered(&with_deployment(&text, &path), os, "ada", &secrets);
        for (name, service) in rendered.compose.services.iter() {
            let socket_mounts: Vec<&Mount> = service.volumes.iter().filter(|m| m.target == SOCKET_DIR || m.source == SOCKET_VOLUME).collect();
            if name == "frontend" || name == "edge" {
                prop_assert!(socket_mounts.is_empty(), "{} mounts the socket: {:?}", name, socket_mounts);
            } else {
                prop_assert_eq!(socket_mounts.len(), 1, "{} socket mounts: {:?}", name, socket_mounts);
                prop_assert_eq!(socket_mounts[0].kind, MountKind::Volume);
                prop_assert_eq!(&socket_mounts[0].source, SOCKET_VOLUME);
            }
        }
        prop_assert!(rendered.compose.volumes.contains_key(SOCKET_VOLUME));
    }

    // Property 12: environment variable interpolation — every ${VAR} the compose file
    // references is defined by the env file rendered beside it, with a value.
    #[test]
    fn property_12_every_referenced_variable_is_defined((os, (text, _), path, secrets) in any_target()) {
        let rendered = rendered(&with_deployment(&text, &path), os, "ada", &secrets);
        let yaml = rendered.compose_yaml();
        let referenced = referenced_variables(&yaml);
        prop_assert!(!referenced.is_empty());
        for name in &referenced {
            let value = rendered.env.get(name);
            prop_assert!(value.is_some_and(|v| !v.is_empty()), "${{{}}} is not defined: {:?}", name, rendered.env);
        }
        let leftover = interpolate(&yaml, &rendered.env).contains("${");
        prop_assert!(!leftover, "uninterpolated variables remain");
    }

    // One service publishes ports: the edge on Docker (Linux), the frontend on Finch;
    // the database and the API are reachable only inside the stack, on the internal
    // network, and the edge only reaches the frontend.
    #[test]
    fn only_the_edge_or_the_frontend_publishes_ports((os, (text, https), path, secrets) in any_target()) {
        let rendered = rendered(&with_deployment(&text, &path), os, "ada", &secrets);
        let services = &rendered.compose.services;
        prop_assert!(services.database.ports.is_empty() && services.backend.ports.is_empty());
        prop_assert_eq!(services.edge.is_some(), os == TargetOs::Linux);
        let publishing: Vec<&str> =
            services.iter().into_iter().filter(|(_, s)| !s.ports.is_empty()).map(|(name, _)| name).collect();
        prop_assert_eq!(publishing, vec![if os == TargetOs::Linux { "edge" } else { "frontend" }]);
        prop_assert_eq!(services.published().ports.len(), if https { 2 } else { 1 });
        if let Some(edge) = &services.edge {
            prop_assert_eq!(&edge.networks, &vec![EDGE_NETWORK.to_string()]);
            prop_assert!(edge.volumes.is_empty() && edge.secrets.is_empty() && edge.environment.is_empty());
        }
        prop_assert_eq!(&services.database.networks, &vec![INTERNAL_NETWORK.to_string()]);
        prop_assert_eq!(&services.backend.networks, &vec![INTERNAL_NETWORK.to_string()]);
        prop_assert!(rendered.compose.networks[INTERNAL_NETWORK].internal);
        let cert_mounts = services.frontend.volumes.iter().filter(|m| m.target == CERT_DIR).count();
        prop_assert_eq!(cert_mounts, usize::from(https), "certificate mount only with HTTPS");
        prop_assert!(services.frontend.volumes.iter().all(|m| m.read_only));
    }

    // macOS (Finch): every host path lies in a directory the VM mounts; the socket and
    // data volumes are named volumes; no healthcheck or health condition nerdctl lacks.
    #[test]
    fn macos_paths_stay_inside_finchs_vm(((text, _), path) in (any_config(), proptest::option::of(any_deployment_path(TargetOs::Macos)))) {
        let rendered = rendered(&with_deployment(&text, &path), TargetOs::Macos, "ada", &[]);
        for (key, value) in &rendered.env.vars {
            if key.ends_with("_PATH") {
                prop_assert!(visible_to_finch(value, false), "{}={} is outside Finch's VM", key, value);
            }
        }
        let yaml = interpolate(&rendered.compose_yaml(), &rendered.env);
        let compose: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
        for (_, service) in rendered.compose.services.iter() {
            prop_assert!(service.healthcheck.is_none());
            prop_assert!(matches!(service.depends_on, DependsOn::Order(_)));
        }
        let data = rendered.compose.services.database.volumes.iter().find(|m| m.target == DATA_DIR).unwrap();
        prop_assert_eq!(data.kind, MountKind::Volume);
        prop_assert!(rendered.compose.volumes.contains_key(DATA_VOLUME));
        prop_assert!(compose["services"]["database"]["volumes"].as_sequence().unwrap().iter().all(|m| m["type"] == "volume"));
    }

    // Linux: the data volume is a host path under the deployment path.
    #[test]
    fn linux_data_volume_lives_under_the_deployment_path(((text, _), path) in (any_config(), proptest::option::of(any_deployment_path(TargetOs::Linux)))) {
        let rendered = rendered(&with_deployment(&text, &path), TargetOs::Linux, "root", &[]);
        let data = rendered.compose.services.database.volumes.iter().find(|m| m.target == DATA_DIR).unwrap();
        prop_assert_eq!(data.kind, MountKind::Bind);
        let deployment = rendered.env.get("DEPLOYMENT_PATH").unwrap();
        prop_assert_eq!(deployment, path.as_deref().unwrap_or("/opt/cultivate"));
        let source = interpolate(&data.source, &rendered.env);
        prop_assert_eq!(source, format!("{deployment}/volumes/{DATA_VOLUME}"));
        prop_assert!(!rendered.compose.volumes.contains_key(DATA_VOLUME));
    }

    // macOS: a deployment path outside the VM's mounts is refused, with the solutions.
    #[test]
    fn macos_paths_outside_the_vm_are_refused(top in prop_oneof![Just("opt"), Just("srv"), Just("var/lib"), Just("Volumes"), Just("usr/local")], tail in "[a-z]{1,10}") {
        let config = config(&format!("{DEFAULT}[paths]\ndeployment = \"/{top}/{tail}\"\n"));
        let error = DeploymentPaths::resolve(TargetOs::Macos, "ada", &config, None).unwrap_err().to_string();
        prop_assert!(error.contains(&format!("Cannot access path '/{top}/{tail}' on macOS target")), "{}", error);
        prop_assert!(error.contains("Solutions:") && error.contains("ln -s") && error.contains("finch.yaml"), "{}", error);
    }
}

/// Issue 12: a service unchanged since an earlier release keeps that release's image
/// reference (compose keeps its container); `start_interval` is written only where the
/// target honours it.
#[test]
fn images_are_pinned_per_service_and_start_interval_only_when_asked() {
    let config = config(DEFAULT);
    let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &config, None).unwrap();
    let kept = crate::model::image::Image {
        service: "database".into(),
        reference: "cultivate-database:0000001".into(),
        id: "sha256:0".into(),
        layers: Vec::new(),
        config_fingerprint: String::new(),
        size_bytes: 0,
    };
    let input = RenderInput {
        config: &config,
        paths: &paths,
        engine: LinuxEngine::Docker,
        version: "0ca9c96",
        images: std::slice::from_ref(&kept),
        secrets: &[],
        start_interval: true,
    };
    let compose = render(input).compose;
    assert_eq!(compose.services.database.image, "cultivate-database:0000001");
    assert_eq!(compose.services.backend.image, "cultivate-backend-api:0ca9c96");
    assert_eq!(compose.services.frontend.image, "cultivate-web-frontend:0ca9c96");
    for (name, service) in compose.services.iter() {
        let check = service.healthcheck.as_ref().unwrap();
        assert_eq!(check.start_interval.as_deref(), Some("1s"), "{name}");
    }
    let without = render(RenderInput { start_interval: false, ..input }).compose_yaml();
    assert!(!without.contains("start_interval"), "{without}");
}

/// Issue 12, item 6: compose waits for a dependency's health only where the engine
/// checks every second while it starts; before Docker 25 the first check comes after a
/// whole interval, so there the services start in order and the deploy checks them.
#[test]
fn compose_waits_for_health_only_where_checks_run_every_second_while_starting() {
    let gated = rendered_docker(true).compose;
    let ordered = rendered_docker(false).compose;
    for ((name, gated), (_, ordered)) in gated.services.iter().into_iter().zip(ordered.services.iter()) {
        assert_eq!(gated.depends_on.names(), ordered.depends_on.names(), "{name}");
        assert!(matches!(ordered.depends_on, DependsOn::Order(_)), "{name}: {:?}", ordered.depends_on);
        assert!(ordered.healthcheck.is_some(), "{name} keeps its check");
        if name != "database" {
            assert!(matches!(gated.depends_on, DependsOn::Healthy(_)), "{name}: {:?}", gated.depends_on);
        }
    }
}
