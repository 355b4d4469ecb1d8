use super::*;

#[test]
fn a_stack_serves_when_every_service_runs_all_its_tasks_and_no_update_went_back() {
    let good = "cultivate_backend 1/1 completed\ncultivate_database 1/1 none\ncultivate_frontend 3/3 completed\n";
    assert!(problems(good).is_empty(), "{:?}", problems(good));
    let bad = "cultivate_backend 1/1 rollback_completed\ncultivate_frontend 2/3 updating\n";
    assert_eq!(
        problems(bad),
        ["cultivate_backend: Swarm's update ended rollback_completed", "cultivate_frontend runs 2 of 3 tasks"]
    );
    assert_eq!(problems(""), ["the stack has no services"]);
    // Short of no task, yet serving nothing: the backend a cut-off restore left at 0.
    let scaled_down = "cultivate_backend 0/0 completed\ncultivate_database 1/1 none\n";
    let found = problems(scaled_down);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("cultivate_backend wants no task"), "{found:?}");
    assert!(found[0].contains("docker service scale cultivate_backend=1"), "{found:?}");
}

#[test]
fn the_stack_deploy_waits_bounded_and_resolves_no_registry() {
    assert_eq!(
        stack_deploy_cmd("/opt/cultivate/releases/v1/stack.yml", "cultivate", 180).to_string(),
        "timeout 180 docker stack deploy --resolve-image never '--detach=false' --prune -c \
         /opt/cultivate/releases/v1/stack.yml cultivate"
    );
}

#[test]
fn status_counts_a_node_down_a_service_short_and_a_service_scaled_to_none_as_lost() {
    let nodes = parse_nodes_status("n1host Ready Active Leader\nn2host Down Active \n");
    let service = |name: &str, running, desired| ServiceStatus {
        name: name.to_string(),
        running,
        desired,
        update: "completed".to_string(),
        on: Vec::new(),
    };
    let services =
        [service("cultivate_database", 1, 1), service("cultivate_frontend", 1, 2), service("cultivate_backend", 0, 0)];
    let found = lost(&nodes, &services);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], "node n2host is down");
    assert_eq!(found[1], "cultivate_frontend runs 1 of 2 tasks");
    assert!(found[2].starts_with("cultivate_backend wants no task"), "{found:?}");
    assert!(lost(&nodes[..1], &services[..1]).is_empty());
}

#[test]
fn nodes_are_read_with_their_state_and_role() {
    let text = "n1host Ready Active Leader\nn2host Ready Active \nn3host Down Active \n";
    let nodes = parse_nodes_status(text);
    let seen: Vec<(&str, &str, bool)> =
        nodes.iter().map(|n| (n.hostname.as_str(), n.state.as_str(), n.manager)).collect();
    assert_eq!(seen, [("n1host", "ready", true), ("n2host", "ready", false), ("n3host", "down", false)]);
}

#[test]
fn a_nodes_containers_are_named_by_their_service_in_the_stack() {
    let text = "cultivate_database.1.abc123 cultivate_database\ncultivate_frontend.x1y2.def cultivate_frontend\n\
                other_database.1.zzz other_database\n";
    let containers = parse_node_containers(text, "cultivate");
    let seen: Vec<(&str, &str, &str)> =
        containers.iter().map(|c| (c.name.as_str(), c.service.as_str(), c.status.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("cultivate_database.1.abc123", "database", "running"),
            ("cultivate_frontend.x1y2.def", "frontend", "running")
        ],
        "another stack's containers are not ours"
    );
    // What a backup looks for on the data node.
    assert_eq!(
        crate::release::backup::database_container(&containers).map(|c| c.name.as_str()),
        Some("cultivate_database.1.abc123")
    );
    assert!(parse_node_containers("", "cultivate").is_empty());
}

#[test]
fn a_restore_scales_the_backend_to_none_and_back_waiting_bounded() {
    assert_eq!(
        scale_cmd("cultivate", "backend", 0, 120).to_string(),
        "timeout 120 docker service scale '--detach=false' 'cultivate_backend=0'"
    );
    assert_eq!(
        node_containers_cmd("cultivate").to_string(),
        "docker ps --filter 'label=com.docker.stack.namespace=cultivate' --filter 'status=running' --format \
         '{{.Names}} {{.Label \"com.docker.swarm.service.name\"}}'"
    );
}

/// Old Swarm secrets go after a deploy: only the stack's own (by its namespace label),
/// never one the release names; one Swarm refuses (in use) is left quietly. Run against
/// a stand-in `docker` that lists three secrets and records what it is asked to remove.
#[test]
fn only_the_stacks_secrets_the_release_does_not_name_are_removed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cultivate-secrets-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let removed = dir.join("removed");
    let docker = format!(
        "#!/bin/sh\ncase \"$1 $2\" in\n\
         'secret ls') [ \"$4\" = 'label=com.docker.stack.namespace=cultivate' ] || exit 1; \
         printf 'cultivate_api_key_aaaa\\ncultivate_api_key_bbbb\\ncultivate_token_cccc\\n' ;;\n\
         'secret rm') echo \"$3\" >> {0}; [ \"$3\" != cultivate_token_cccc ] || exit 1 ;;\n\
         *) exit 2 ;;\nesac\n",
        removed.display()
    );
    std::fs::write(dir.join("docker"), docker).unwrap();
    std::fs::set_permissions(dir.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = remove_unused_secrets_cmd("cultivate", &["cultivate_api_key_bbbb".to_string()]);
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let status = std::process::Command::new(&cmd.program).args(&cmd.args).env("PATH", path).status().unwrap();
    assert!(status.success(), "a secret in use does not fail the deploy");
    let asked = std::fs::read_to_string(&removed).unwrap();
    assert_eq!(asked.lines().collect::<Vec<_>>(), ["cultivate_api_key_aaaa", "cultivate_token_cccc"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What runs against what the current release names: the same is no drift; another
/// image (an interrupted deploy Swarm went on with, or a change by hand) is, with both
/// named; another stack's services are not looked at.
#[test]
fn a_service_running_another_image_than_the_current_release_is_drift() {
    let image = |service: &str, reference: &str| Image {
        service: service.into(),
        reference: reference.into(),
        id: String::new(),
        layers: Vec::new(),
        config_fingerprint: String::new(),
        size_bytes: 0,
    };
    let current = DeploymentState {
        version: "v2".into(),
        timestamp: String::new(),
        target_host: "cluster web".into(),
        deployed_by: String::new(),
        images: vec![image("database", "db:v1"), image("backend-api", "api:v2"), image("web-frontend", "web:v1")],
        configuration_hash: String::new(),
        status: ReleaseStatus::Active,
        health_checks: Vec::new(),
        replaced: None,
        backup: None,
        started: None,
        bytes_shipped: None,
    };
    let same = "cultivate_database 1/1 none db:v1\ncultivate_backend 1/1 completed api:v2\n\
                cultivate_frontend 3/3 completed web:v1\nother_backend 1/1 none x:y\n";
    assert!(drift(Some(&current), "cultivate", same).is_empty());
    let moved = "cultivate_database 1/1 none db:v1\ncultivate_backend 1/1 updating api:v3\ncultivate_frontend 3/3 none web:v1\n";
    assert_eq!(
        drift(Some(&current), "cultivate", moved),
        ["backend runs api:v3 but the current release v2 names api:v2"]
    );
    assert_eq!(
        drift(None, "cultivate", "cultivate_backend 1/1 none api:v3\n"),
        ["backend runs api:v3, which no current release names"]
    );
}
