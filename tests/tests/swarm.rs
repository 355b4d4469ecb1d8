//! Docker Swarm past one host (issue 14): three fresh Docker 28 test hosts (Debian
//! sid) reached over real SSH, one `[clusters.web]`. `doctor --cluster` reports a swarm
//! that is not formed; `--install` forms it (init on the manager, join the others,
//! label the data node); a second run changes nothing; moving `data_node` moves the
//! label. Then `deploy --cluster`: the images on every node, the stack deployed, every
//! node serving, a row written through one node read through another (the database
//! and the backend on the data node, by peer authentication over the socket volume).
//! These hosts' kernel has no IPVS, so the ports are published on each node
//! (`publish = "host"`), not through the routing mesh.

use std::time::Duration;

use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};
use cultivate_tests::{Load, get_when_up, http, manifest, require_engine};

fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cluster_config(hosts: &[TestHost], data_node: &str) -> DeployConfig {
    let named: Vec<(&str, Option<&TestHost>)> = ["n1", "n2", "n3"].into_iter().zip(hosts.iter().map(Some)).collect();
    let cluster = format!(
        "[clusters.web]\nengine = \"swarm\"\nmanager = \"n1\"\nnodes = [\"n2\", \"n3\"]\ndata_node = \"{data_node}\"\n\
         publish = \"host\"\n"
    );
    DeployConfig::for_hosts(&named, &cluster).unwrap()
}

#[test]
fn doctor_forms_a_three_node_swarm_once_and_keeps_the_data_label_on_the_data_node() {
    require_engine();
    let hosts: Vec<TestHost> = std::thread::scope(|scope| {
        let started: Vec<_> =
            (0..3).map(|_| scope.spawn(|| TestHost::start(HostVariant::Engine(Engine::Docker28), false))).collect();
        started.into_iter().map(|h| h.join().unwrap().expect("starting a Docker 28 host")).collect()
    });
    let config = cluster_config(&hosts, "n1");

    // Not formed: reported with the fix, exit ≠ 0, nothing changed.
    let ran = config.run(&["doctor", "--cluster", "web"]).unwrap();
    assert!(!ran.success, "{}", ran.all());
    assert!(ran.stdout.contains("n1 is not a swarm manager (state inactive)"), "{}", ran.all());
    assert!(ran.stdout.contains("--cluster web --install"), "{}", ran.all());
    for host in &hosts {
        assert_eq!(host_sh(host, "docker info --format '{{.Swarm.LocalNodeState}}'").trim(), "inactive");
    }

    // --install forms it.
    let ran = config.run(&["doctor", "--cluster", "web", "--install", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let actions = report["cluster"]["actions"].to_string();
    for expected in
        ["formed a swarm on n1", "n2 joined the swarm of n1", "n3 joined the swarm of n1", "labelled n1 for data"]
    {
        assert!(actions.contains(expected), "{expected}: {actions}");
    }
    assert_eq!(report["cluster"]["data_labelled"], true, "{report:#}");
    let manager = &hosts[0];
    let nodes = host_sh(manager, "docker node ls --format '{{.Status}} {{.ManagerStatus}}'");
    assert_eq!(nodes.lines().filter(|l| l.starts_with("Ready")).count(), 3, "{nodes}");
    assert_eq!(nodes.matches("Leader").count(), 1, "{nodes}");
    let labelled = |host: &TestHost| {
        let id = host_sh(host, "docker info --format '{{.Swarm.NodeID}}'");
        host_sh(manager, &format!("docker node inspect {} --format '{{{{json .Spec.Labels}}}}'", id.trim()))
    };
    assert!(labelled(&hosts[0]).contains("\"cultivate.data\":\"true\""));
    assert!(!labelled(&hosts[1]).contains("cultivate.data") && !labelled(&hosts[2]).contains("cultivate.data"));

    // Formed: a second run finds everything in place and changes nothing.
    let ran = config.run(&["doctor", "--cluster", "web", "--install"]).unwrap();
    assert!(ran.success && !ran.stdout.contains("did:"), "{}", ran.all());
    assert!(ran.stdout.contains("data label: on the data node only"), "{}", ran.all());

    // Another data node: the label moves (never two nodes holding it).
    let moved = cluster_config(&hosts, "n2");
    let ran = moved.run(&["doctor", "--cluster", "web"]).unwrap();
    assert!(!ran.success && ran.stdout.contains("is not on n2 alone"), "{}", ran.all());
    let ran = moved.run(&["doctor", "--cluster", "web", "--install"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    assert!(labelled(&hosts[1]).contains("\"cultivate.data\":\"true\""));
    assert!(!labelled(&hosts[0]).contains("cultivate.data"), "{}", labelled(&hosts[0]));

    // Deploy to the cluster (the data node is n2 now).
    let v1 = built_manifest_path().to_string_lossy().into_owned();
    let version = manifest().version.clone();
    let ran = moved.run(&["deploy", "--cluster", "web", "--manifest", &v1, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    assert!(ran.stdout.contains(&format!("Cultivate {version} is live on cluster web")), "{}", ran.all());
    let placed = host_sh(
        &hosts[0],
        "docker service ps cultivate_database cultivate_backend --format '{{.Node}} {{.CurrentState}}'",
    );
    let n2 = host_sh(&hosts[1], "hostname").trim().to_string();
    assert!(placed.lines().filter(|l| l.contains("Running")).all(|l| l.starts_with(&n2)), "{placed}");
    for host in &hosts {
        let health =
            get_when_up(&format!("http://127.0.0.1:{}/health", host.http_port), Duration::from_secs(60)).unwrap();
        assert_eq!(health.status, 200, "{}", health.text());
    }
    let title = cultivate_tests::unique("swarm row");
    let body = serde_json::json!({"title": title, "notes": ""}).to_string();
    let url = |host: &TestHost| format!("http://127.0.0.1:{}/api/v1/activities", host.http_port);
    let created =
        http("POST", &url(&hosts[0]), &[("content-type", "application/json")], Some(body.as_bytes())).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let listed = get_when_up(&url(&hosts[2]), Duration::from_secs(30)).unwrap();
    assert!(listed.text().contains(&title), "a row written through n1 is read through n3: {}", listed.text());
    let recorded = host_sh(&hosts[0], "cat /opt/cultivate/current/release.json");
    assert!(recorded.contains("\"status\": \"active\"") && recorded.contains("cluster web"), "{recorded}");
    // A backend-only change rolls through Swarm (start-first) under load through a
    // node that runs no backend: no request fails, the database task is kept.
    let database_task = || host_sh(&hosts[0], "docker service ps cultivate_database -q --filter desired-state=running");
    let before = database_task();
    let v2 = derived_version("swarm-v2", "RUN echo swarm-v2 > /tmp/cultivate-swarm\n")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let load = Load::start(hosts[2].http_port);
    let ran = moved.run(&["deploy", "--cluster", "web", "--manifest", &v2, "--yes"]).unwrap();
    let report = load.stop();
    assert!(ran.success, "{}", ran.all());
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}");
    assert_eq!(database_task(), before, "the database task was replaced");
    let running = host_sh(
        &hosts[0],
        "docker service inspect cultivate_backend --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'",
    );
    assert!(running.contains(":swarm-v2"), "{running}");
    assert!(get_when_up(&url(&hosts[1]), Duration::from_secs(30)).unwrap().text().contains(&title), "the row kept");

    // status --cluster: the nodes, each service's tasks and where they run.
    let status = |config: &DeployConfig| -> serde_json::Value {
        let ran = config.run(&["status", "--cluster", "web", "--json"]).unwrap();
        assert!(ran.success, "{}", ran.all());
        serde_json::from_str(&ran.stdout).unwrap()
    };
    let seen = status(&moved);
    assert_eq!(seen["current"]["version"], "swarm-v2", "{seen:#}");
    assert_eq!(seen["lost"], serde_json::json!([]), "{seen:#}");
    let service = |seen: &serde_json::Value, name: &str| {
        seen["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
    };
    assert_eq!(service(&seen, "cultivate_frontend")["on"].as_array().unwrap().len(), 3, "{seen:#}");
    assert_eq!(service(&seen, "cultivate_backend")["on"], serde_json::json!([n2]), "{seen:#}");

    // rollback --cluster: the release before, its stack deployed again, recorded.
    let ran = moved.run(&["rollback", "--cluster", "web", "--yes"]).unwrap();
    assert!(ran.success && ran.stdout.contains(&format!("Rolled back cluster web to {version}")), "{}", ran.all());
    let seen = status(&moved);
    assert_eq!(
        (&seen["current"]["version"], &seen["current"]["status"]),
        (&serde_json::json!(version), &serde_json::json!("rolled_back")),
        "{seen:#}"
    );
    let running = host_sh(
        &hosts[0],
        "docker service inspect cultivate_backend --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'",
    );
    assert!(running.contains(&format!(":{version}")), "{running}");
    assert!(get_when_up(&url(&hosts[2]), Duration::from_secs(30)).unwrap().text().contains(&title), "the row kept");

    // logs --cluster: a service's logs from its tasks, through the manager.
    let ran = moved.run(&["logs", "--cluster", "web", "--service", "backend", "--lines", "50"]).unwrap();
    assert!(ran.success && ran.stdout.contains("cultivate_backend."), "{}", ran.all());

    // A node stopped: the others serve on, and the report says what was lost.
    let n3 = host_sh(&hosts[2], "hostname").trim().to_string();
    cultivate_tests::docker(["stop", "-t", "1", hosts[2].container.as_str()]).unwrap();
    let mut lost = serde_json::Value::Null;
    for _ in 0..60 {
        lost = status(&moved)["lost"].clone();
        if lost.to_string().contains(&format!("node {n3} is down")) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(lost.to_string().contains(&format!("node {n3} is down")), "{lost}");
    for host in &hosts[..2] {
        let served = get_when_up(&url(host), Duration::from_secs(30)).unwrap();
        assert!(served.status == 200 && served.text().contains(&title), "{}", served.text());
    }

    // A task that does not work on clusters yet says so.
    // audit --cluster: the manager's history, the rollback named as such.
    let ran = moved.run(&["audit", "--cluster", "web", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let trail: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let actions: Vec<&str> = trail.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.iter().filter(|a| a.contains("deploy")).count() >= 2 && actions.iter().any(|a| a.contains("rollback")),
        "{trail:#}"
    );
    let ran = moved.run(&["backup", "--cluster", "web"]).unwrap();
    assert!(
        !ran.success && ran.stderr.contains("only `deploy`, `rollback`, `status`, `logs`, `audit`, `lock`"),
        "{}",
        ran.all()
    );
}
