//! Docker Swarm past one host (issue 14): three fresh Docker 28 test hosts (Debian
//! sid) reached over real SSH, one `[clusters.web]`, one test so that the swarm is
//! formed once. `doctor --cluster` reports a swarm that is not formed; `--install`
//! forms it (init on the manager, join the others, label the data node); a second run
//! changes nothing; moving `data_node` moves the label. Then `deploy --cluster`: the
//! images on every node, the stack deployed, every node serving, a row written through
//! one node read through another (the database and the backend on the data node, by
//! peer authentication over the socket volume); a backend change under load, backed
//! up first; status and its drift; rollback; backup and restore on the data node;
//! `--dry-run`; HTTPS and `certs` on every node; pruning; logs, audit; a node stopped.
//! These hosts' kernel has no IPVS, so the ports are published on each node
//! (`publish = "host"`), not through the routing mesh.

use std::time::Duration;

use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version, derived_version_of};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};
use cultivate_tests::{Load, get, get_when_up, http, manifest, require_engine};
use xtask::model::service::Service;

#[path = "support/tls.rs"]
mod tls;

fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cluster_config(hosts: &[TestHost], data_node: &str) -> DeployConfig {
    cluster_config_with(hosts, data_node, "")
}

fn cluster_config_with(hosts: &[TestHost], data_node: &str, sections: &str) -> DeployConfig {
    let named: Vec<(&str, Option<&TestHost>)> = ["n1", "n2", "n3"].into_iter().zip(hosts.iter().map(Some)).collect();
    let cluster = format!(
        "[clusters.web]\nengine = \"swarm\"\nmanager = \"n1\"\nnodes = [\"n2\", \"n3\"]\ndata_node = \"{data_node}\"\n\
         publish = \"host\"\n{sections}"
    );
    DeployConfig::for_hosts(&named, &cluster).unwrap()
}

#[test]
fn a_three_node_swarm_is_formed_then_deployed_to_and_run_from_one_command_line() {
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

    // Deploy to the cluster (the data node is n2 now), with a secret.
    let v1 = built_manifest_path().to_string_lossy().into_owned();
    let version = manifest().version.clone();
    moved.write_secret("api_token", "swarm-token-1\n").unwrap();
    let ran = moved.run(&["deploy", "--cluster", "web", "--manifest", &v1, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    assert!(ran.stdout.contains(&format!("Cultivate {version} is live on cluster web")), "{}", ran.all());
    // The secret is a Swarm secret named after its content, mounted in the backend's
    // task for the backend's user only (Swarm's default: root's, readable by all).
    let secrets = host_sh(&hosts[0], "docker secret ls --format '{{.Name}}'");
    assert!(secrets.lines().any(|s| s.starts_with("cultivate_api_token_")), "{secrets}");
    let backend = "$(docker ps -q --filter label=com.docker.swarm.service.name=cultivate_backend | head -n 1)";
    hosts[1].assert_secret_is_the_backends_alone("docker", backend, "400", "swarm-token-1");
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
    // The new backend was preceded by a backup, on the data node (n2).
    let record: serde_json::Value =
        serde_json::from_str(&host_sh(&hosts[0], "cat /opt/cultivate/current/release.json")).unwrap();
    let before_v2 = record["backup"].as_str().unwrap_or_default().to_string();
    assert!(before_v2.ends_with(&format!("-{version}.dump")), "{record:#}");
    assert!(host_sh(&hosts[1], "ls /opt/cultivate/backups").contains(&before_v2), "not on the data node");

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
    assert_eq!(seen["drift"], serde_json::json!([]), "{seen:#}");
    // The backend's image changed behind the tool's back (as a deploy cut off after
    // Swarm took the stack leaves it): `status` names the drift and the way back.
    let v1_backend = manifest().images.iter().find(|i| i.service == Service::BackendApi).unwrap().reference.clone();
    host_sh(
        &hosts[0],
        &format!("docker service update --detach=false --image {v1_backend} cultivate_backend >/dev/null 2>&1"),
    );
    let seen = status(&moved);
    let drift = seen["drift"].to_string();
    assert!(drift.contains(&format!("backend runs {v1_backend} but the current release swarm-v2 names")), "{seen:#}");
    let ran = moved.run(&["status", "--cluster", "web"]).unwrap();
    assert!(
        ran.stdout.contains("drift:") && ran.stdout.contains("rollback --cluster web --to swarm-v2"),
        "{}",
        ran.all()
    );

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

    // backup --cluster: taken on the data node, under the manager's lock, copied here.
    let copies = std::env::temp_dir().join(cultivate_tests::unique("swarm-backups"));
    let ran = moved.run(&["backup", "--cluster", "web", "--download", copies.to_str().unwrap()]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let taken = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("n2: /opt/cultivate/backups/"))
        .unwrap_or_else(|| panic!("no backup on n2 named: {}", ran.all()))
        .trim()
        .to_string();
    assert!(copies.join(&taken).is_file(), "no copy of {taken} in {}", copies.display());
    let ran = moved.run(&["backup", "--cluster", "web", "--list"]).unwrap();
    assert!(ran.success && ran.stdout.contains(&taken) && ran.stdout.contains(&before_v2), "{}", ran.all());
    // restore --cluster: a row written after the backup is gone, the one before kept,
    // the backend scaled back and serving.
    let later = cultivate_tests::unique("after the backup");
    let body = serde_json::json!({"title": later, "notes": ""}).to_string();
    let created =
        http("POST", &url(&hosts[0]), &[("content-type", "application/json")], Some(body.as_bytes())).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let ran = moved.run(&["restore", "--cluster", "web", "--from", &taken, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let listed = get_when_up(&url(&hosts[2]), Duration::from_secs(60)).unwrap().text();
    assert!(listed.contains(&title) && !listed.contains(&later), "{listed}");
    let seen = status(&moved);
    assert_eq!(seen["lost"], serde_json::json!([]), "{seen:#}");
    assert!(ran.stderr.contains(&format!("restored {taken}")), "{}", ran.all());
    // A restore cut off between its two scales leaves the backend wanting no task:
    // `status` counts that as lost and says the way back.
    host_sh(&hosts[0], "docker service scale --detach=false cultivate_backend=0 >/dev/null 2>&1");
    let lost = status(&moved)["lost"].to_string();
    assert!(lost.contains("cultivate_backend wants no task"), "{lost}");
    assert!(lost.contains("docker service scale cultivate_backend=1"), "{lost}");
    host_sh(&hosts[0], "docker service scale --detach=false cultivate_backend=1 >/dev/null 2>&1");
    assert_eq!(status(&moved)["lost"], serde_json::json!([]));

    // --dry-run: every command line printed, nothing changed on any node.
    let unchanged = || {
        let specs = host_sh(
            &hosts[0],
            "docker service inspect cultivate_backend cultivate_frontend --format '{{.Version.Index}}'",
        );
        (specs, host_sh(&hosts[0], "readlink /opt/cultivate/current"), host_sh(&hosts[1], "ls /opt/cultivate/backups"))
    };
    let before = unchanged();
    let ran = moved.run(&["deploy", "--cluster", "web", "--manifest", &v2, "--dry-run"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    for expected in
        ["[n1] would run:", "docker stack deploy", "[n2] would run:", "Dry run: nothing was changed on cluster web"]
    {
        assert!(ran.stdout.contains(expected), "{expected}: {}", ran.all());
    }
    assert_eq!(unchanged(), before, "the dry run changed the cluster");
    let ran = moved.run(&["rollback", "--cluster", "web", "--dry-run"]).unwrap();
    assert!(
        ran.success && ran.stdout.contains("[n1] would run:") && ran.stdout.contains("docker stack deploy"),
        "{}",
        ran.all()
    );
    assert!(ran.stdout.contains("Dry run: nothing was changed on cluster web"), "{}", ran.all());
    assert_eq!(unchanged(), before, "the dry run of the rollback changed the cluster");
    // Nodes that keep the deployment in different places cannot share one stack file:
    // refused before anything changes, naming both paths.
    let elsewhere = DeployConfig {
        path: moved.path.with_file_name(format!("{}.toml", cultivate_tests::unique("elsewhere"))),
        known_hosts: moved.known_hosts.clone(),
    };
    let text = std::fs::read_to_string(&moved.path).unwrap();
    assert!(text.contains("[hosts.n3]\n"), "{text}");
    let text = text.replace("[hosts.n3]\n", "[hosts.n3]\ndeployment_path = \"/srv/elsewhere\"\n");
    std::fs::write(&elsewhere.path, text).unwrap();
    let ran = elsewhere.run(&["deploy", "--cluster", "web", "--manifest", &v2, "--yes"]).unwrap();
    assert!(!ran.success, "{}", ran.all());
    assert!(ran.stderr.contains("keep the deployment in different places"), "{}", ran.all());
    assert!(ran.stderr.contains("/srv/elsewhere on n3"), "{}", ran.all());
    assert_eq!(unchanged(), before, "a refused deploy changed the cluster");
    assert!(host_sh(&hosts[2], "ls -d /srv/elsewhere 2>/dev/null").is_empty(), "the refused deploy made a directory");

    // HTTPS on the cluster: the pair on every node, each node's frontend serving it;
    // `certs --cluster` renews it in place (no frontend task replaced).
    let certificates = tls::TestCertificates::generate();
    certificates.renew(-1, 90);
    let https = cluster_config_with(
        &hosts,
        "n2",
        &format!(
            "[http]\nhttps = true\ncert_path = {:?}\nserver_names = [\"localhost\"]\n",
            certificates.dir.display()
        ),
    );
    // A renewal cannot reach a release that serves no HTTPS: refused, nothing changed.
    let ran = https.run(&["certs", "--cluster", "web"]).unwrap();
    assert!(!ran.success && ran.stderr.contains("serves no HTTPS"), "{}", ran.all());
    for host in &hosts {
        assert_eq!(host_sh(host, "test -e /opt/cultivate/config/certs && echo there || echo none").trim(), "none");
    }
    // With a new frontend, and one release kept beyond the current one and its
    // rollback target: swarm-v2 goes, its release from the manager and its backend
    // image from every node.
    let text = std::fs::read_to_string(&https.path).unwrap();
    std::fs::write(&https.path, text.replace("keep_releases = 4", "keep_releases = 1")).unwrap();
    let v3 =
        derived_version_of("swarm-v3", Service::WebFrontend, "USER root\nRUN echo swarm-v3 > /tmp/v3\nUSER 101:101\n")
            .unwrap()
            .to_string_lossy()
            .into_owned();
    let ran = https.run(&["deploy", "--cluster", "web", "--manifest", &v3, "--yes"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    assert!(ran.stderr.contains("pruned releases swarm-v2"), "{}", ran.all());
    let releases = host_sh(&hosts[0], "ls /opt/cultivate/releases");
    assert_eq!(releases.split_whitespace().collect::<Vec<_>>(), [version.as_str(), "swarm-v3"], "{releases}");
    for host in &hosts {
        let images = host_sh(host, "docker image ls --format '{{.Repository}}:{{.Tag}}'");
        assert!(!images.contains(":swarm-v2"), "{images}");
        assert!(images.contains(":swarm-v3") && images.contains(&format!(":{version}")), "{images}");
        // The key on every node is nginx's (uid 101) alone, as on one host.
        let modes = host_sh(host, "cd /opt/cultivate/config/certs && stat -L -c '%n %u %a' privkey.pem fullchain.pem");
        assert_eq!(modes.lines().collect::<Vec<_>>(), ["privkey.pem 101 600", "fullchain.pem 0 644"], "{modes}");
    }
    let served = |host: &TestHost| {
        let mut last = None;
        for _ in 0..30 {
            match tls::https_request(host.https_port, &certificates.ca_der, "/api/v1/activities") {
                Ok((head, peer)) if head.starts_with("HTTP/1.1 200") => return (head, peer),
                other => last = Some(format!("{other:?}")),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("no HTTPS on port {}: {last:?}", host.https_port)
    };
    let first: Vec<Vec<u8>> = hosts.iter().map(|h| served(h).1).collect();
    assert!(first.iter().all(|c| !c.is_empty() && *c == first[0]), "every node serves the pair");
    let redirect = get(&format!("http://127.0.0.1:{}/", hosts[1].http_port)).unwrap();
    assert_eq!(redirect.status, 301, "{}", redirect.text());
    let frontend_tasks =
        || host_sh(&hosts[0], "docker service ps cultivate_frontend -q --filter desired-state=running | sort");
    let tasks = frontend_tasks();
    let renewed = certificates.renew(-1, 120);
    let ran = https.run(&["certs", "--cluster", "web"]).unwrap();
    assert!(ran.success && ran.stdout.contains("installed; reloaded"), "{}", ran.all());
    for host in &hosts {
        assert_eq!(served(host).1, renewed, "the renewed certificate on port {}", host.https_port);
    }
    assert_eq!(frontend_tasks(), tasks, "a frontend task was replaced by the renewal");

    // logs --cluster: a service's logs from its tasks, through the manager.
    let ran = moved.run(&["logs", "--cluster", "web", "--service", "backend", "--lines", "50"]).unwrap();
    assert!(ran.success && ran.stdout.contains("cultivate_backend."), "{}", ran.all());

    // audit --cluster: the manager's history, the rollback named as such.
    let ran = moved.run(&["audit", "--cluster", "web", "--json"]).unwrap();
    assert!(ran.success, "{}", ran.all());
    let trail: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let actions: Vec<&str> = trail.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.iter().filter(|a| a.contains("deploy")).count() >= 3
            && actions.iter().any(|a| a.contains("rollback"))
            && actions.iter().any(|a| a.contains("restore"))
            && actions.iter().any(|a| a.contains("certificates")),
        "{trail:#}"
    );

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
        let (head, _) = served(host);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    // A deploy while a node is down changes nothing, and says which node and what to do.
    let current = host_sh(&hosts[0], "readlink /opt/cultivate/current");
    let ran = https.run(&["deploy", "--cluster", "web", "--manifest", &v2, "--yes"]).unwrap();
    assert!(!ran.success && ran.stderr.contains("node n3 of cluster `web` cannot be reached"), "{}", ran.all());
    assert_eq!(host_sh(&hosts[0], "readlink /opt/cultivate/current"), current);
}
