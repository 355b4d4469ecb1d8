//! The host matrix beyond Debian 12's Docker 20.10 + Compose v1 (which tests/deploy.rs
//! covers): Docker 28 + Compose v2 with the classic image store and with the
//! containerd image store (Docker 29's default), and rootful Podman 5 with
//! podman-compose on a host without Docker, each a fresh test host from Debian sid's
//! packages, reached over real SSH. One lifecycle per engine, the engines in parallel:
//! deploy (with a secret, mounted for the backend's user only), a row written, a
//! backend-only change, a no-change redeploy, rollback, the row kept; Property 20 both
//! ways (the same image is never refused, another image under the tag always is); a
//! frontend-only change and its rollback.

use std::path::PathBuf;

use cultivate_tests::deploy::{
    DeployConfig, activities, assert_serves, built_manifest_path, deploy, derived_version, derived_version_of,
    edge_route, status,
};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};
use cultivate_tests::{Load, http, manifest, require_engine};
use xtask::model::service::Service;

const CHANGED_BACKEND: &str = "RUN echo engines-v2 > /tmp/cultivate-engines-release\n";
const SWAPPED_BACKEND: &str = "RUN echo swapped > /tmp/cultivate-engines-release\n";
const CHANGED_FRONTEND: &str =
    "USER root\nRUN echo engines-front > /usr/share/cultivate/html/release.txt\nUSER 101:101\n";

fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn changed() -> PathBuf {
    derived_version("engines-v2", CHANGED_BACKEND).unwrap()
}

fn lifecycle(engine: Engine) {
    require_engine();
    let host = TestHost::start(HostVariant::Engine(engine), false).unwrap_or_else(|e| panic!("{engine:?}: {e:#}"));
    let cli = host.engine_path();
    let program = cli.rsplit('/').next().unwrap();
    match engine {
        Engine::Docker28 | Engine::Docker28Containerd => {
            let store = host_sh(&host, "docker info --format '{{.Driver}} {{json .DriverStatus}}'");
            let expected = if engine == Engine::Docker28 { "overlay2" } else { "io.containerd.snapshotter" };
            assert!(store.contains(expected), "{store}");
            assert!(host_sh(&host, "docker version --format '{{.Server.Version}}'").starts_with("28."));
        }
        Engine::Podman5 => {
            assert!(host_sh(&host, "command -v docker dockerd docker-compose").is_empty(), "no Docker on this host");
            assert_eq!(host_sh(&host, "podman info --format '{{.Store.GraphDriverName}}'").trim(), "overlay");
            assert!(host_sh(&host, "podman --version").starts_with("podman version 5."));
        }
    }
    let config = DeployConfig::new(&host, "").unwrap();
    let token = format!("{engine:?}-token");
    config.write_secret("api_token", &format!("{token}\n")).unwrap();
    let v1 = built_manifest_path();
    let v1_version = manifest().version.clone();

    // First deploy: every image sent once, the base layer with the first image only
    // (each layer crosses the wire at most once per deploy).
    let first = deploy(&config, &v1);
    assert!(first.success, "{engine:?}: first deploy failed: {}", first.all());
    assert_serves(&host, &v1_version, &config);
    // The secret reaches the backend on this engine too, for the backend's user only.
    let backend = format!("$({cli} ps -q --filter label=com.docker.compose.service=backend | head -n 1)");
    host.assert_secret_is_the_backends_alone(cli, &backend, "600", &token);
    // Docker runs the edge too: four images; Podman three.
    let services = if engine == Engine::Podman5 { 3 } else { 4 };
    let reused = first.stderr.lines().filter(|l| l.contains("sending") && !l.contains("(0 of")).count();
    assert_eq!(reused, services - 1, "{engine:?}: the images after the 1st must reuse its base layer: {}", first.all());
    // Compose v2 runs the stack (`docker compose`, detected on the host), or
    // podman-compose.
    let compose = if engine == Engine::Podman5 { "podman-compose 1." } else { "docker compose 2." };
    assert!(first.stderr.contains(compose), "{engine:?}: {}", first.all());
    // Docker 28 with Compose v2 checks every second while a container starts.
    let written = host_sh(&host, "cat /opt/cultivate/current/docker-compose.yml");
    assert_eq!(
        written.matches("start_interval: 1s").count(),
        if engine == Engine::Podman5 { 0 } else { services },
        "{written}"
    );
    if engine == Engine::Podman5 {
        // The deploy ran the containers' own healthchecks (no systemd timers here):
        // the engine records every service healthy.
        let health = host_sh(&host, "podman ps --format '{{.Names}} {{.Status}}'");
        assert_eq!(health.matches("(healthy)").count(), 3, "{health}");
    }

    let title = format!("engines {engine:?}");
    let created = http(
        "POST",
        &format!("http://127.0.0.1:{}/api/v1/activities", host.http_port),
        &[("content-type", "application/json")],
        Some(serde_json::json!({"title": title, "notes": "kept"}).to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());

    // A backend-only change ships its layer only, on this store too; under Docker the
    // database keeps its container (podman-compose recreates every container: its
    // `up` runs with --force-recreate, see the README).
    let database = format!(
        "{cli} ps -q --filter label=com.docker.compose.service=database | \
         xargs -r {cli} inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}'"
    );
    let database_before = host_sh(&host, &database);
    let database_kept = engine != Engine::Podman5;
    assert!(!database_kept || !database_before.trim().is_empty(), "{engine:?}: no database container");
    let v2 = changed();
    let load = Load::start(host.http_port);
    let second = deploy(&config, &v2);
    let report = load.stop();
    assert!(second.success, "{engine:?}: changed deploy failed: {}", second.all());
    assert_serves(&host, "engines-v2", &config);
    if database_kept {
        assert_eq!(host_sh(&host, &database), database_before, "{engine:?}: the database restarted");
        // The backend was swapped beside itself: not one request failed under load.
        assert!(report.sent > 20 && report.failures.is_empty(), "{engine:?}: {report:?}: {}", second.all());
    }
    let shipped = second.shipped_mb().expect("the summary names the bytes shipped");
    assert!(shipped < 1.0, "{engine:?}: a backend-only change shipped {shipped} MB: {}", second.all());
    assert!(activities(&host).contains(&title), "{engine:?}: the row is gone after the upgrade");
    // The new backend was preceded by a backup of the data (issue 13), on this engine too.
    let backup = status(&config)["current"]["backup"].as_str().unwrap_or_default().to_string();
    let size = host_sh(&host, &format!("stat -c %s /opt/cultivate/backups/{backup}"));
    assert!(size.trim().parse::<u64>().unwrap_or(0) > 0, "{engine:?}: no backup before the new backend: {backup:?}");

    // Nothing changed: nothing shipped; the images the store holds are recognised as
    // the ones built here whatever id the store gives them. Nothing restarts either:
    // the same containers, started when they were.
    let running = format!("{cli} ps -q --no-trunc | sort");
    let started = format!("{cli} ps -q | xargs {cli} inspect --format '{{{{.Name}}}} {{{{.State.StartedAt}}}}' | sort");
    let (containers_before, started_before) = (host_sh(&host, &running), host_sh(&host, &started));
    let again = deploy(&config, &v2);
    assert!(again.success, "{engine:?}: {}", again.all());
    assert_eq!(again.shipped_mb(), Some(0.0), "{engine:?}: {}", again.all());
    assert!(again.stderr.contains("nothing to restart"), "{engine:?}: {}", again.all());
    assert_eq!(host_sh(&host, &running), containers_before, "{engine:?}: containers were recreated");
    assert_eq!(host_sh(&host, &started), started_before, "{engine:?}: containers were restarted");
    assert_serves(&host, "engines-v2", &config);

    // Rollback restores v1, the row kept.
    let load = Load::start(host.http_port);
    let rolled = config.run(&["rollback", "--host", "e2e", "--yes"]).unwrap();
    let report = load.stop();
    assert!(rolled.success, "{engine:?}: rollback failed: {}", rolled.all());
    assert_serves(&host, &v1_version, &config);
    if database_kept {
        assert_eq!(host_sh(&host, &database), database_before, "{engine:?}: the database restarted on rollback");
        assert!(report.sent > 20 && report.failures.is_empty(), "{engine:?}: {report:?}: {}", rolled.all());
    }
    assert!(activities(&host).contains(&title), "{engine:?}: the row is gone after the rollback");
    assert_eq!(status(&config)["history"].as_array().unwrap().last().unwrap()["status"], "rolled_back");
    // That backup restores through this engine's exec, the row back with it.
    let restored = config.run(&["restore", "--host", "e2e", "--from", &backup, "--yes"]).unwrap();
    assert!(restored.success, "{engine:?}: restore failed: {}", restored.all());
    assert!(activities(&host).contains(&title), "{engine:?}: the row is gone after the restore");

    // Property 20 the other way: another image loaded under the tag is refused, with
    // nothing started.
    let swapped = derived_version("engines-swapped", SWAPPED_BACKEND).unwrap();
    let containers_before = host_sh(&host, &running);
    let swap = format!(
        "#!/bin/sh\nif [ \"$1\" = load ]; then {cli} \"$@\" || exit 1; \
         {cli} tag cultivate-database:{v1_version} cultivate-backend-api:engines-swapped; exit 0; fi\n\
         exec {cli} \"$@\"\n"
    );
    let wrapper = format!("/usr/local/bin/{program}");
    host_sh(&host, &format!("cat > {wrapper} <<'EOF'\n{swap}EOF\nchmod 755 {wrapper}"));
    let refused = deploy(&config, &swapped);
    host_sh(&host, &format!("rm -f {wrapper}"));
    assert!(!refused.success, "{engine:?}: a swapped image deployed: {}", refused.all());
    assert!(refused.stderr.contains("is not the image built here"), "{engine:?}: {}", refused.all());
    assert_eq!(host_sh(&host, &running), containers_before, "{engine:?}: containers changed");
    assert_serves(&host, &v1_version, &config);

    // A frontend-only change and its rollback: under Docker the frontend is swapped
    // behind the edge, which holds the ports, and nothing else restarts.
    let front = derived_version_of("engines-front", Service::WebFrontend, CHANGED_FRONTEND).unwrap();
    let kept = format!(
        "for s in database backend edge; do {cli} ps -q --filter label=com.docker.compose.service=$s; done | \
         xargs -r {cli} inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}'"
    );
    let kept_before = host_sh(&host, &kept);
    for step in ["frontend change", "its rollback"] {
        let load = Load::start(host.http_port);
        let ran = if step == "frontend change" {
            deploy(&config, &front)
        } else {
            config.run(&["rollback", "--host", "e2e", "--yes"]).unwrap()
        };
        let report = load.stop();
        assert!(ran.success, "{engine:?}: {step} failed: {}", ran.all());
        if database_kept {
            assert!(report.sent > 20 && report.failures.is_empty(), "{engine:?} {step}: {report:?}: {}", ran.all());
            assert_eq!(host_sh(&host, &kept), kept_before, "{engine:?}: {step} restarted more than the frontend");
            // Routed to the new frontend by its name before the old one stopped, then back.
            assert!(ran.stderr.contains("edge: new connections go to"), "{engine:?} {step}: {}", ran.all());
            assert_eq!(edge_route(&host, cli), "frontend", "{engine:?}: {step}: {}", ran.all());
        }
    }
    assert_serves(&host, &v1_version, &config);
    assert!(activities(&host).contains(&title), "{engine:?}: the row is gone after the frontend change");

    if engine == Engine::Docker28 {
        switch_store_and_back(&host, &config, &v1_version, &title);
    }
}

/// The README's procedure: switch the host's Docker to the containerd store, restart
/// it, deploy; then back. The data directory is in neither store: the row survives.
fn switch_store_and_back(host: &TestHost, config: &DeployConfig, version: &str, title: &str) {
    let v1 = built_manifest_path();
    for (containerd, store) in [(true, "io.containerd.snapshotter"), (false, "overlay2")] {
        restart_docker(host, &format!("{{\"features\":{{\"containerd-snapshotter\":{containerd}}}}}"));
        assert!(host_sh(host, "docker info --format '{{.Driver}} {{json .DriverStatus}}'").contains(store));
        let redeployed = deploy(config, &v1);
        assert!(redeployed.success, "deploy after switching the store failed: {}", redeployed.all());
        assert_serves(host, version, config);
        assert!(activities(host).contains(title), "the row is gone after switching the store");
        if containerd {
            // The release before lives in the other store: refused, saying why.
            let rollback = config.run(&["rollback", "--host", "e2e", "--yes"]).unwrap();
            assert!(!rollback.success, "{}", rollback.all());
            assert!(rollback.stderr.contains("cannot be restored"), "{}", rollback.all());
            assert_serves(host, version, config);
        }
    }
}

/// Stops the host's dockerd, writes `daemon_json`, starts it again (both bounded).
fn restart_docker(host: &TestHost, daemon_json: &str) {
    let script = format!(
        "pkill -x dockerd; i=0; while pgrep -x dockerd >/dev/null; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done; \
         echo '{daemon_json}' > /etc/docker/daemon.json; \
         nohup /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1 </dev/null & \
         i=0; until docker info >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done; echo up"
    );
    let output = host.exec(&["sh", "-c", &script]).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "up", "dockerd did not come back: {output:?}");
}

#[test]
fn docker_28_with_the_classic_store_runs_the_whole_lifecycle() {
    lifecycle(Engine::Docker28);
}

#[test]
fn docker_28_with_the_containerd_store_runs_the_whole_lifecycle() {
    lifecycle(Engine::Docker28Containerd);
}

#[test]
fn podman_5_with_podman_compose_runs_the_whole_lifecycle() {
    lifecycle(Engine::Podman5);
}
