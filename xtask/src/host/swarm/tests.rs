use super::*;

#[test]
fn a_node_state_is_read_from_docker_info() {
    let state = parse_state("active sp3y57r4838pdj8yv24df0al0 true 172.17.0.4\n").unwrap();
    assert!(state.is_member() && state.manager);
    assert_eq!((state.node_id.as_str(), state.address.as_str()), ("sp3y57r4838pdj8yv24df0al0", "172.17.0.4"));
    let inactive = parse_state("inactive  false \n").unwrap();
    assert_eq!(inactive.state, "inactive");
    assert!(!inactive.is_member() && !inactive.manager && inactive.node_id.is_empty());
    assert!(parse_state("").is_err());
}

#[test]
fn the_advertised_address_is_the_default_routes_source() {
    let route = "1.1.1.1 via 172.17.0.1 dev eth0 src 172.17.0.3 uid 0 \n    cache \n";
    assert_eq!(parse_route_source(route).as_deref(), Some("172.17.0.3"));
    assert_eq!(parse_route_source("unreachable"), None);
    assert_eq!(parse_route_source("1.1.1.1 dev eth0 src -x"), None);
}

#[test]
fn nodes_are_read_with_their_data_label_and_readiness() {
    let text = "a1 true ready\nb2 <no value> ready\nc3  down\n";
    assert_eq!(
        parse_nodes(text),
        [("a1".to_string(), true, true), ("b2".to_string(), false, true), ("c3".to_string(), false, false)]
    );
}

#[test]
fn the_command_lines_name_the_addresses_and_the_label() {
    assert_eq!(init_cmd("10.0.0.1").to_string(), "docker swarm init --advertise-addr 10.0.0.1");
    assert_eq!(
        join_cmd("T", "10.0.0.1", "10.0.0.2").to_string(),
        "docker swarm join --token T --advertise-addr 10.0.0.2 10.0.0.1:2377"
    );
    assert_eq!(label_cmd("n1", true).to_string(), "docker node update --label-add 'cultivate.data=true' n1");
    assert_eq!(label_cmd("n2", false).to_string(), "docker node update --label-rm cultivate.data n2");
}
