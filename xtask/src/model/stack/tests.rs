use proptest::prelude::*;

use super::*;
use crate::model::compose::{RenderInput, render};
use crate::model::config::Config;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{LinuxEngine, TargetOs};

fn rendered(text: &str, secrets: &[String]) -> Rendered {
    let config = Config::parse(text, "test", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &config, None).unwrap();
    render(RenderInput {
        config: &config,
        paths: &paths,
        engine: LinuxEngine::Docker,
        version: "v1",
        images: &[],
        secrets,
        start_interval: true,
    })
}

const HTTPS: &str = "[app]\nname = \"cultivate\"\n[http]\nhttps = true\ncert_path = \"/etc/cultivate/certs\"\n";

#[test]
fn the_data_services_sit_on_the_data_node_and_the_frontend_on_every_node() {
    let stack = stack_file(&rendered(HTTPS, &["api_key".to_string()]), "cultivate", "0123abcd", 15, Publish::Ingress);
    assert_eq!(stack.services.keys().collect::<Vec<_>>(), ["backend", "database", "frontend"], "no edge");
    let constraint = vec!["node.labels.cultivate.data == true".to_string()];
    for name in ["database", "backend"] {
        let deploy = &stack.services[name].deploy;
        assert_eq!(deploy.placement.as_ref().map(|p| &p.constraints), Some(&constraint), "{name}");
        assert_eq!((deploy.mode.as_str(), deploy.replicas), ("replicated", Some(1)), "{name}");
    }
    let database = &stack.services["database"].deploy;
    assert_eq!(database.update_config.order, "stop-first", "two servers never open one data directory");
    let backend = &stack.services["backend"].deploy;
    assert_eq!(
        (backend.update_config.order.as_str(), backend.update_config.failure_action.as_str()),
        ("start-first", "rollback")
    );
    assert_eq!(backend.update_config.monitor, "15s");
    assert_eq!(backend.endpoint_mode.as_deref(), Some("dnsrr"), "no virtual IP: it needs IPVS");
    let frontend = &stack.services["frontend"];
    assert_eq!((frontend.deploy.mode.as_str(), frontend.deploy.replicas), ("global", None));
    assert_eq!(frontend.deploy.placement, None);
    let published: Vec<(u16, u16, &str)> =
        frontend.ports.iter().map(|p| (p.published, p.target, p.mode.as_str())).collect();
    assert_eq!(published, [(80, 80, "ingress"), (443, 443, "ingress")]);
    assert!(frontend.environment.contains(&"BACKEND_HOST=backend".to_string()), "{:?}", frontend.environment);
    assert!(stack.networks.values().all(|n| n.driver == "overlay"));
    assert!(stack.networks["internal"].internal);
    let secret = &stack.secrets["api_key"];
    assert_eq!(secret.name, "cultivate_api_key_0123abcd", "named after the content: a Swarm secret cannot change");
    assert_eq!(secret.file, "/opt/cultivate/config/secrets/api_key");
    // Mounted for the backend's user only: Swarm's default is root's, mode 0444.
    let mounted = &stack.services["backend"].secrets;
    assert_eq!(
        mounted,
        &[SecretMount {
            source: "api_key".to_string(),
            target: "api_key".to_string(),
            uid: "1001".to_string(),
            gid: "1001".to_string(),
            mode: 0o400
        }]
    );
    assert!(stack.services["frontend"].secrets.is_empty() && stack.services["database"].secrets.is_empty());
    let yaml = to_yaml(&stack);
    assert!(yaml.contains("uid: '1001'") || yaml.contains("uid: \"1001\""), "{yaml}");
    assert!(yaml.contains("mode: 256"), "0o400 in decimal: {yaml}");
}

fn any_http() -> impl Strategy<Value = (u16, u16, bool)> {
    (1u16..=65535, 1u16..=65535, any::<bool>()).prop_filter("distinct ports", |(a, b, _)| a != b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Property 12 (for a stack): the stack file stands alone, every `${VAR}` resolved,
    // and the ports it publishes are the configured ones.
    #[test]
    fn property_12_the_stack_file_names_no_variable_and_publishes_the_configured_ports((http, https_port, https) in any_http()) {
        let text = format!(
            "[app]\nname = \"cultivate\"\n[http]\nport = {http}\nhttps_port = {https_port}\nhttps = {https}\n{}",
            if https { "cert_path = \"/etc/cultivate/certs\"\n" } else { "" }
        );
        let stack = stack_file(&rendered(&text, &["token".to_string()]), "cultivate", "d1", 10, Publish::Ingress);
        let yaml = to_yaml(&stack);
        prop_assert!(!yaml.contains("${"), "{}", yaml);
        // Refused by `docker stack deploy` (the 3.x format), though compose takes it.
        prop_assert!(!yaml.contains("start_interval"), "{}", yaml);
        let mut published: Vec<u16> = stack.services["frontend"].ports.iter().map(|p| p.published).collect();
        let mut wanted = vec![http];
        if https {
            wanted.push(https_port);
        }
        published.sort();
        wanted.sort();
        prop_assert_eq!(published, wanted);
        // Property 6: the socket volume only where peer authentication needs it.
        for (name, service) in &stack.services {
            let mounts_socket = service.volumes.iter().any(|m| m.source == crate::model::compose::SOCKET_VOLUME);
            prop_assert_eq!(mounts_socket, name != "frontend", "{}", name);
        }
    }
}

#[test]
fn secrets_are_named_after_their_content() {
    let one = secrets_digest(&[("token".to_string(), b"a".to_vec())]);
    assert_eq!(one.len(), 16);
    assert_ne!(one, secrets_digest(&[("token".to_string(), b"b".to_vec())]), "new content, new name");
    assert_ne!(one, secrets_digest(&[("other".to_string(), b"a".to_vec())]));
    assert_eq!(one, secrets_digest(&[("token".to_string(), b"a".to_vec())]));
}

#[test]
fn ports_bound_on_each_node_update_the_frontend_stop_first() {
    let stack = stack_file(&rendered(HTTPS, &[]), "cultivate", "d1", 10, Publish::Host);
    let frontend = &stack.services["frontend"];
    assert!(frontend.ports.iter().all(|p| p.mode == "host"), "{:?}", frontend.ports);
    assert_eq!(frontend.deploy.update_config.order, "stop-first", "a node's port is held by one task at a time");
    assert_eq!(stack.services["backend"].deploy.update_config.order, "start-first");
}
