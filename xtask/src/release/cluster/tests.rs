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
