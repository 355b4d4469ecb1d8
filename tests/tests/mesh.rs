//! Swarm's routing mesh (issue 14: "the routing mesh publishes the ports on all
//! nodes"). The container test hosts' kernel has no IPVS, so `tests/swarm.rs` publishes
//! on each node (`publish = "host"`); here two Docker 28 test hosts boot as virtual
//! machines (`cultivate_tests::vm`), whose kernel has it, linked to each other.
//! `doctor --install` forms the swarm over the link, `deploy --cluster` with
//! `publish = "ingress"` (the default) publishes the frontend through the mesh, and a
//! node that runs no frontend task still serves the app: the mesh carries its requests
//! to the other node.

use std::time::{Duration, Instant};

use cultivate_tests::deploy::{DeployConfig, built_manifest_path};
use cultivate_tests::hosts::TestHost;
use cultivate_tests::{get_when_up, http, manifest, require_engine, unique};

/// Health settings for machines under software emulation: PostgreSQL's first start
/// alone takes about a minute there.
const VM_HEALTH: &str = "timeout_seconds = 600\ninterval_seconds = 5\nretries = 10\nstart_period_seconds = 300\n";

fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    assert!(output.status.success(), "`{script}` on {}: {}", host.container, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The frontend containers running on `host`.
fn frontend_containers(host: &TestHost) -> usize {
    host_sh(host, "docker ps -q --filter label=com.docker.swarm.service.name=cultivate_frontend").lines().count()
}

#[test]
fn the_routing_mesh_serves_the_app_through_a_node_that_runs_no_frontend() {
    require_engine();
    let manifest_path = built_manifest_path().to_string_lossy().into_owned();
    let version = manifest().version.clone();
    let hosts = TestHost::start_vm_pair().expect("booting the two VM test hosts");
    let (m1, m2) = (&hosts[0], &hosts[1]);
    for host in &hosts {
        assert_eq!(host_sh(host, "test -e /proc/net/ip_vs && echo IPVS").trim(), "IPVS", "{}", host.container);
    }
    let config = DeployConfig::for_hosts_with_health(
        &[("m1", Some(m1)), ("m2", Some(m2))],
        "[clusters.mesh]\nengine = \"swarm\"\nmanager = \"m1\"\nnodes = [\"m2\"]\ndata_node = \"m1\"\n\
         publish = \"ingress\"\n",
        VM_HEALTH,
    )
    .unwrap();

    // The swarm is formed over the link between the VMs (their default route).
    let ran = config.run(&["doctor", "--cluster", "mesh", "--install", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let actions = report["cluster"]["actions"].to_string();
    assert!(actions.contains("formed a swarm on m1 (advertised at 192.168.77.1)"), "{actions}");
    assert!(actions.contains("m2 joined the swarm of m1"), "{actions}");

    let ran = config.run(&["deploy", "--cluster", "mesh", "--manifest", &manifest_path, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    assert!(ran.stdout.contains(&format!("Cultivate {version} is live on cluster mesh")), "{}", ran.all());
    let ports = host_sh(m1, "docker service inspect cultivate_frontend --format '{{json .Endpoint.Ports}}'");
    assert!(ports.contains("\"PublishedPort\":80,\"PublishMode\":\"ingress\""), "{ports}");
    assert!(!ports.contains("\"PublishMode\":\"host\""), "{ports}");
    for host in &hosts {
        let health = get_when_up(&format!("http://127.0.0.1:{}/health", host.http_port), Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{}: {e:#}", host.container));
        assert_eq!(health.status, 200, "{}", health.text());
    }

    // m2 drained: Swarm stops its frontend task, and with `publish = "host"` nothing
    // would answer on m2's port 80 any more. Through the mesh, m2 still serves the app.
    let m2_id = host_sh(m2, "docker info --format '{{.Swarm.NodeID}}'").trim().to_string();
    host_sh(m1, &format!("docker node update --availability drain {m2_id} >/dev/null"));
    let deadline = Instant::now() + Duration::from_secs(180);
    while frontend_containers(m2) > 0 {
        assert!(Instant::now() < deadline, "m2 still runs a frontend container 180 s after the drain");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(frontend_containers(m1) > 0, "m1 runs the frontend");
    let title = unique("mesh row");
    let body = serde_json::json!({"title": title, "notes": ""}).to_string();
    let through_m2 = format!("http://127.0.0.1:{}/api/v1/activities", m2.http_port);
    let created = http("POST", &through_m2, &[("content-type", "application/json")], Some(body.as_bytes()))
        .expect("a request to m2, which runs no frontend, is served through the mesh");
    assert_eq!(created.status, 201, "{}", created.text());
    let listed =
        get_when_up(&format!("http://127.0.0.1:{}/api/v1/activities", m1.http_port), Duration::from_secs(30)).unwrap();
    assert!(listed.text().contains(&title), "a row written through m2 is read through m1: {}", listed.text());
    assert_eq!(frontend_containers(m2), 0, "m2 answered without a frontend of its own");

    // Back to active: the global frontend returns to m2, and `status` finds nothing lost.
    host_sh(m1, &format!("docker node update --availability active {m2_id} >/dev/null"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while frontend_containers(m2) == 0 {
        assert!(Instant::now() < deadline, "no frontend returned to m2 300 s after it was made active");
        std::thread::sleep(Duration::from_secs(2));
    }
    let ran = config.run(&["status", "--cluster", "mesh", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let status: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(status["current"]["version"], version.as_str(), "{status:#}");
    assert_eq!(status["lost"], serde_json::json!([]), "{status:#}");
}
