//! End to end: `cargo xtask deploy`, `rollback`, `status` and `logs` over real SSH onto
//! test hosts that run their own dockerd, serving real HTTP through nginx → backend →
//! PostgreSQL, checked by a real browser.

use std::time::{Duration, Instant};

use cultivate_tests::deploy::{DeployConfig, Ran, built_manifest_path, derived_version, wait_bounded};
use cultivate_tests::hosts::{HostVariant, TestHost};
use cultivate_tests::{get, get_when_up, http, require_engine};

#[path = "support/tls.rs"]
mod tls;

const BUILT: &str = "built";

fn deploy(config: &DeployConfig, manifest: &std::path::Path) -> Ran {
    let manifest = manifest.to_string_lossy().into_owned();
    config.run(&["deploy", "--host", "e2e", "--manifest", &manifest, "--yes"]).expect("running deploy")
}

fn status(config: &DeployConfig) -> serde_json::Value {
    let ran = config.run(&["status", "--host", "e2e", "--json"]).expect("running status");
    assert!(ran.success, "status failed: {}", ran.all());
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", ran.stdout))
}

/// The images the running containers use, by service.
fn running_images(config: &DeployConfig) -> Vec<(String, String)> {
    let status = status(config);
    status["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| (s["service"].as_str().unwrap().to_string(), s["image"].as_str().unwrap().to_string()))
        .collect()
}

fn assert_serves(host: &TestHost, version: &str, config: &DeployConfig) {
    let status = status(config);
    assert_eq!(status["current"]["version"], version, "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    for (service, image) in running_images(config) {
        assert!(image.ends_with(&format!(":{version}")), "{service} runs {image}, not {version}");
    }
    let health = get_when_up(&format!("http://127.0.0.1:{}/health", host.http_port), Duration::from_secs(30)).unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
}

fn activities(host: &TestHost) -> String {
    let list = get_when_up(&format!("http://127.0.0.1:{}/api/v1/activities", host.http_port), Duration::from_secs(30))
        .unwrap();
    assert_eq!(list.status, 200, "{}", list.text());
    list.text()
}

/// Runs `script` on the host (as root, through docker exec).
fn host_sh(host: &TestHost, script: &str) -> String {
    let output = host.exec(&["sh", "-c", script]).unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits (bounded) until `script` prints something on the host.
fn wait_on_host(host: &TestHost, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while host_sh(host, script).trim().is_empty() {
        assert!(Instant::now() < deadline, "waited 120 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces `gunzip` on the host with a wrapper running `body` first (removed by
/// `restore_gunzip`). The host's PATH has /usr/local/bin before /usr/bin and /bin.
fn wrap_gunzip(host: &TestHost, body: &str) {
    let script = format!("#!/bin/sh\n{body}\nexec /bin/gunzip \"$@\"\n");
    host_sh(
        host,
        &format!(
            "cat > /usr/local/bin/gunzip <<'EOF'\n{script}EOF\nchmod 755 /usr/local/bin/gunzip; rm -f /tmp/gunzip-started"
        ),
    );
}

fn restore_gunzip(host: &TestHost) {
    host_sh(host, "rm -f /usr/local/bin/gunzip /tmp/gunzip-started");
}

#[test]
fn deploy_upgrade_rollback_and_failures_on_a_fresh_host() {
    require_engine();
    let host = TestHost::start(HostVariant::Docker, false).unwrap();
    let config = DeployConfig::new(&host, "").unwrap();
    let v1 = built_manifest_path();
    let v1_version = xtask::images::read_manifest(&v1).unwrap().version;

    // Fresh host → deploy: the frontend answers and a row goes through nginx → backend → PostgreSQL.
    let first = deploy(&config, &v1);
    assert!(first.success, "first deploy failed: {}", first.all());
    assert!(first.stdout.contains(&format!("Cultivate {v1_version} is live on e2e")), "{}", first.all());
    assert_serves(&host, &v1_version, &config);
    let title = format!("e2e row {}", cultivate_tests::unique(BUILT));
    let body = serde_json::json!({"title": title, "notes": "kept across releases"}).to_string();
    let created = http(
        "POST",
        &format!("http://127.0.0.1:{}/api/v1/activities", host.http_port),
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(activities(&host).contains(&title));

    // A real browser loads the deployed page and sees the row.
    let dom =
        cultivate_tests::browser::rendered_dom_containing(&format!("http://127.0.0.1:{}/", host.http_port), &title)
            .unwrap();
    assert!(dom.contains(&title));

    // The deploy log is on the host, every line timestamped (Properties 32, 34).
    let logs = host_sh(&host, "cat /var/log/cultivate/deploy-*.log");
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        assert!(xtask::support::log::is_log_line(line), "untimestamped line in the host's deploy log: {line:?}");
    }
    // --dry-run prints what it would change and changes nothing; --verbose adds each
    // command (Property 35), which a normal run does not show.
    let history_before = status(&config)["history"].as_array().unwrap().len();
    let containers_before = host_sh(&host, "docker ps -q --no-trunc | sort");
    let dry = config
        .run(&["deploy", "--host", "e2e", "--manifest", &v1.to_string_lossy(), "--dry-run", "--verbose"])
        .unwrap();
    assert!(dry.success, "{}", dry.all());
    assert!(dry.stdout.contains("[e2e] would run: ") && dry.stdout.contains("up --detach"), "{}", dry.all());
    assert!(dry.stderr.contains(" DEBUG $ "), "--verbose shows no commands: {}", dry.all());
    assert!(!first.stderr.contains(" DEBUG "), "a normal run shows debug lines: {}", first.all());
    assert_eq!(status(&config)["history"].as_array().unwrap().len(), history_before, "--dry-run changed the history");
    assert_eq!(host_sh(&host, "docker ps -q --no-trunc | sort"), containers_before, "--dry-run changed containers");

    // Secrets are 0600 on the host; the database publishes no port.
    let env_mode = host_sh(&host, &format!("stat -c %a /opt/cultivate/releases/{v1_version}/.env"));
    assert_eq!(env_mode.trim(), "600");
    let data_owner = host_sh(&host, "stat -c '%u %a' /opt/cultivate/volumes/db_data");
    assert_eq!(data_owner.trim(), "999 700");

    // A second version with a changed backend: it serves, the row is still there, and
    // only the backend's new layer (plus two image configs) travels.
    let v2 = derived_version("e2e-v2", "RUN echo e2e-v2 > /tmp/cultivate-e2e-release\n").unwrap();
    let second = deploy(&config, &v2);
    assert!(second.success, "second deploy failed: {}", second.all());
    assert_serves(&host, "e2e-v2", &config);
    assert!(activities(&host).contains(&title), "the row is gone after the upgrade");
    let shipped = second.shipped_mb().expect("the summary names the bytes shipped");
    assert!(shipped < 1.0, "a backend-only change shipped {shipped} MB: {}", second.all());
    assert!(second.stderr.contains("layers are on e2e already"), "{}", second.all());

    // Redeploy with nothing changed: no image bytes shipped.
    let again = deploy(&config, &v2);
    assert!(again.success, "{}", again.all());
    assert_eq!(again.shipped_mb(), Some(0.0), "{}", again.all());
    assert!(again.stderr.contains("no image bytes shipped"), "{}", again.all());

    // `logs` through the same transport.
    let backend_logs = config.run(&["logs", "--host", "e2e", "--service", "backend", "--lines", "20"]).unwrap();
    assert!(backend_logs.success && !backend_logs.stdout.trim().is_empty(), "{}", backend_logs.all());

    // rollback → the previous version serves, the row is still there.
    let rolled = config.run(&["rollback", "--host", "e2e", "--yes"]).unwrap();
    assert!(rolled.success, "rollback failed: {}", rolled.all());
    assert_serves(&host, &v1_version, &config);
    assert!(activities(&host).contains(&title), "the row is gone after the rollback");
    let history = status(&config)["history"].as_array().unwrap().clone();
    assert_eq!(history.last().unwrap()["status"], "rolled_back");
    assert_eq!(history.last().unwrap()["replaced"], "e2e-v2");

    // rollback --to an unknown version → a clear error, nothing changed.
    let unknown = config.run(&["rollback", "--host", "e2e", "--to", "no-such-version", "--yes"]).unwrap();
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no release \"no-such-version\"") && unknown.stderr.contains("e2e-v2"),
        "{}",
        unknown.all()
    );
    assert_eq!(status(&config)["history"].as_array().unwrap().len(), history.len());
    assert_serves(&host, &v1_version, &config);

    // A backend that never becomes healthy → automatic rollback, its logs shown, the
    // previous version serving.
    let broken = derived_version(
        "e2e-broken",
        "ENTRYPOINT [\"sh\", \"-c\", \"echo cultivate-e2e-broken-backend starting; exec sleep 600\"]\n",
    )
    .unwrap();
    let failed = deploy(&config, &broken);
    assert!(!failed.success, "a broken backend deployed: {}", failed.all());
    assert!(failed.stderr.contains("cultivate-e2e-broken-backend starting"), "no backend logs: {}", failed.all());
    assert!(failed.stderr.contains(&format!("the previous release {v1_version} was restored")), "{}", failed.all());
    assert_serves(&host, &v1_version, &config);
    assert!(activities(&host).contains(&title));
    let saved = host_sh(&host, "cat /opt/cultivate/releases/e2e-broken/failure-*backend*.log");
    assert!(saved.contains("cultivate-e2e-broken-backend"), "failing logs not saved on the host: {saved}");

    // A corrupted image stream (the backend's, the only large one) → the load fails,
    // nothing started.
    let v3 = derived_version("e2e-v3", "RUN head -c 40000000 /dev/urandom > /tmp/e2e-ballast\n").unwrap();
    let containers_before = host_sh(&host, "docker ps -q --no-trunc | sort");
    wrap_gunzip(
        &host,
        "/bin/gunzip -c | python3 -c 'import sys; d=sys.stdin.buffer.read(); i=len(d)//2; big=len(d)>1000000; sys.stdout.buffer.write(d[:i] + bytes([d[i]^(255 if big else 0)]) + d[i+1:])' | gzip -1 -c | exec /bin/gunzip \"$@\"",
    );
    let corrupted = deploy(&config, &v3);
    restore_gunzip(&host);
    assert!(!corrupted.success, "a corrupted stream deployed: {}", corrupted.all());
    assert!(corrupted.stderr.contains("loading cultivate-backend-api:e2e-v3"), "{}", corrupted.all());
    assert_eq!(host_sh(&host, "docker ps -q --no-trunc | sort"), containers_before, "containers changed");
    assert_serves(&host, &v1_version, &config);

    // A load that "succeeds" with another image under the tag → verification fails
    // (Property 20), nothing started.
    let swapped_version = derived_version("e2e-swapped", "RUN echo swapped > /tmp/cultivate-e2e-release\n").unwrap();
    let swap = format!(
        "#!/bin/sh\nif [ \"$1\" = load ]; then /usr/bin/docker \"$@\" || exit 1; \
         /usr/bin/docker tag cultivate-database:{v1_version} cultivate-backend-api:e2e-swapped; exit 0; fi\n\
         exec /usr/bin/docker \"$@\"\n"
    );
    host_sh(&host, &format!("cat > /usr/local/bin/docker <<'EOF'\n{swap}EOF\nchmod 755 /usr/local/bin/docker"));
    let swapped = deploy(&config, &swapped_version);
    host_sh(&host, "rm -f /usr/local/bin/docker");
    assert!(!swapped.success, "a swapped image deployed: {}", swapped.all());
    assert!(swapped.stderr.contains("is not the image built here"), "{}", swapped.all());
    assert_eq!(host_sh(&host, "docker ps -q --no-trunc | sort"), containers_before, "containers changed");
    assert_serves(&host, &v1_version, &config);

    // The SSH connection cut mid-transfer → the deploy fails, the previous release keeps
    // serving, a retry succeeds.
    wrap_gunzip(&host, "touch /tmp/gunzip-started; sleep 5");
    let child = config.spawn(&["deploy", "--host", "e2e", "--manifest", &v3.to_string_lossy(), "--yes"]).unwrap();
    wait_on_host(&host, "ls /tmp/gunzip-started 2>/dev/null", "the transfer to start");
    host_sh(&host, "pkill -f 'sshd: root@' ; true");
    let cut = wait_bounded(child, 300).unwrap();
    restore_gunzip(&host);
    assert!(!cut.success, "a cut connection deployed: {}", cut.all());
    assert_serves(&host, &v1_version, &config);
    assert!(activities(&host).contains(&title));
    let retry = deploy(&config, &v3);
    assert!(retry.success, "the retry failed: {}", retry.all());
    assert_serves(&host, "e2e-v3", &config);
    assert!(activities(&host).contains(&title));

    // Two deploys at once → the second is refused with the holder's details; a deploy
    // killed mid-way leaves a stale lock the next deploy takes over.
    wrap_gunzip(&host, "touch /tmp/gunzip-started; sleep 60");
    let v4 = derived_version("e2e-v4", "RUN head -c 2000000 /dev/urandom > /tmp/e2e-ballast-4\n").unwrap();
    let mut holder = config.spawn(&["deploy", "--host", "e2e", "--manifest", &v4.to_string_lossy(), "--yes"]).unwrap();
    wait_on_host(&host, "ls /tmp/gunzip-started 2>/dev/null", "the first deploy to hold the lock");
    let second_deploy = deploy(&config, &v4);
    assert!(!second_deploy.success, "two deploys ran at once: {}", second_deploy.all());
    assert!(
        second_deploy.stderr.contains("is locked") && second_deploy.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        second_deploy.all()
    );
    holder.kill().unwrap();
    let _ = holder.wait();
    host_sh(&host, "pkill -f 'sshd: root@' ; true");
    restore_gunzip(&host);
    assert!(host_sh(&host, "cat /opt/cultivate/deploy.lock").contains("\"operation\":\"deploy\""), "no stale lock");
    std::thread::sleep(Duration::from_secs(4)); // past lock_timeout_seconds = 3
    let takeover = deploy(&config, &v4);
    assert!(takeover.success, "the stale lock was not taken over: {}", takeover.all());
    assert!(takeover.stderr.contains("taking over a stale deploy lock"), "{}", takeover.all());
    assert_serves(&host, "e2e-v4", &config);
    assert!(activities(&host).contains(&title), "the row is gone at the end");
    assert!(host_sh(&host, "ls /opt/cultivate/deploy.lock 2>/dev/null").trim().is_empty(), "the lock was left behind");

    // Old deploy logs are pruned to `[runtime] keep_logs` (6 here; this test ran more
    // than a dozen deploys and rollbacks); old releases to `keep_releases` (4).
    let logs = host_sh(&host, "ls /var/log/cultivate/*.log | wc -l").trim().parse::<usize>().unwrap();
    assert_eq!(logs, 6, "{}", host_sh(&host, "ls -l /var/log/cultivate"));
    let releases = host_sh(&host, "ls /opt/cultivate/releases");
    assert!(releases.lines().count() <= 5, "releases not pruned: {releases}");
    assert!(releases.contains("e2e-v4") && releases.contains("e2e-v3"), "{releases}");
}

#[test]
fn deploy_to_the_simulated_macos_host_uses_finch_and_refuses_paths_outside_its_vm() {
    require_engine();
    let host = TestHost::start(HostVariant::Macos { finch_vm: "Running", finch: true }, false).unwrap();
    // A Mac user's home is under /Users, as the host reports it ($HOME).
    let config = DeployConfig::with_user(&host, "ada", "").unwrap();
    let v1 = built_manifest_path();
    let version = xtask::images::read_manifest(&v1).unwrap().version;

    // The same deploy with an /opt path is refused before anything is sent.
    let opt = DeployConfig::with_user(&host, "ada", "deployment_path = \"/opt/cultivate\"\n").unwrap();
    let refused = deploy(&opt, &v1);
    assert!(!refused.success, "{}", refused.all());
    assert!(refused.stderr.contains("/opt/cultivate"), "{}", refused.all());
    let log = host.command_log();
    assert!(!log.contains(" load") && !log.contains("upload"), "something was sent: {log}");
    assert!(host_sh(&host, "ls -d /opt/cultivate 2>/dev/null").trim().is_empty());

    let ran = deploy(&config, &v1);
    assert!(ran.success, "deploy to the simulated Mac failed: {}", ran.all());
    assert!(host.finch_calls().contains("finch compose"), "{}", host.finch_calls());
    let user_home_release = host_sh(&host, &format!("ls -d /Users/*/cultivate/releases/{version}"));
    assert_eq!(user_home_release.trim(), format!("/Users/ada/cultivate/releases/{version}"));
    let volumes = host_sh(&host, &format!("{} volume ls --format '{{{{.Name}}}}'", host.docker_path()));
    assert!(volumes.contains("cultivate_db_data") && volumes.contains("cultivate_db_socket"), "{volumes}");
    let status = status(&config);
    assert_eq!(status["current"]["version"], version.as_str(), "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    let page = get_when_up(&format!("http://127.0.0.1:{}/", host.http_port), Duration::from_secs(30)).unwrap();
    assert_eq!(page.status, 200);
}

#[test]
fn remote_build_mode_builds_the_images_on_the_host() {
    require_engine();
    let host = TestHost::start(HostVariant::Docker, false).unwrap();
    let config = DeployConfig::new(&host, "").unwrap();

    // A port taken by something else stops the deploy before anything is sent.
    host_sh(&host, "setsid python3 -m http.server 80 >/dev/null 2>&1 < /dev/null & sleep 1");
    let refused = config.run(&["deploy", "--host", "e2e", "--build-mode", "remote", "--yes"]).unwrap();
    host_sh(&host, "pkill -f 'http.server 80'; true");
    assert!(!refused.success, "{}", refused.all());
    assert!(refused.stderr.contains("port 80 on e2e is in use"), "{}", refused.all());
    assert!(host_sh(&host, "docker images -q").trim().is_empty(), "images were sent before the port check");

    // A first deploy that never gets healthy: its stack is stopped, the database's data
    // kept, and the error says so.
    let broken = derived_version(
        "e2e-first-broken",
        "ENTRYPOINT [\"sh\", \"-c\", \"echo cultivate-e2e-first-broken starting; exec sleep 600\"]\n",
    )
    .unwrap();
    let failed = deploy(&config, &broken);
    assert!(!failed.success, "{}", failed.all());
    assert!(failed.stderr.contains("this was the first deploy on e2e"), "{}", failed.all());
    assert!(failed.stderr.contains("cultivate-e2e-first-broken starting"), "{}", failed.all());
    assert!(host_sh(&host, "docker ps -q").trim().is_empty(), "the failed stack still runs");
    let kept = host_sh(&host, "cat /opt/cultivate/volumes/db_data/pgdata/PG_VERSION");
    assert_eq!(kept.trim(), "15", "the database's data was not kept");

    let ran = config.run(&["deploy", "--host", "e2e", "--build-mode", "remote", "--yes"]).unwrap();
    assert!(ran.success, "remote-build deploy failed: {}", ran.all());
    // The base went over once; each image was built there from its context.
    assert!(ran.stderr.contains("base: sent"), "{}", ran.all());
    for service in ["database", "backend-api", "web-frontend"] {
        assert!(ran.stderr.contains(&format!("{service}: built ")), "{service} not built on the host: {}", ran.all());
    }
    assert!(ran.stderr.contains("build: Step 1/"), "the host's build output was not streamed: {}", ran.all());
    let serving = status(&config);
    assert_eq!(serving["healthy"], true, "{serving:#}");
    let page = get_when_up(&format!("http://127.0.0.1:{}/", host.http_port), Duration::from_secs(30)).unwrap();
    assert_eq!(page.status, 200);

    // HTTPS with certificates given: the release carries them (the key 0600, owned by
    // nginx's uid 101), HTTPS answers with HSTS, HTTP redirects.
    let certificates = tls::TestCertificates::generate();
    let https = DeployConfig::with_sections(
        &host,
        "",
        &format!("[http]\nhttps = true\ncert_path = {:?}\n", certificates.dir.display().to_string()),
    )
    .unwrap();
    // A key others can read on this machine is refused before anything reaches the
    // host (issue 9, item 10); the key made private, the deploy goes ahead.
    let history_before = status(&config)["history"].as_array().unwrap().len();
    let refused = https.run(&["deploy", "--host", "e2e", "--build-mode", "remote", "--yes"]).unwrap();
    assert!(!refused.success, "a readable TLS key was deployed: {}", refused.all());
    assert!(
        refused.stderr.contains("privkey.pem has mode 0644") && refused.stderr.contains("chmod 600"),
        "{}",
        refused.all()
    );
    assert_eq!(
        status(&config)["history"].as_array().unwrap().len(),
        history_before,
        "the refused deploy changed the host"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = certificates.dir.join("privkey.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ran = https.run(&["deploy", "--host", "e2e", "--build-mode", "remote", "--yes"]).unwrap();
    assert!(ran.success, "HTTPS deploy failed: {}", ran.all());
    assert!(
        ran.stderr.contains("`[http] server_names` is not set"),
        "no warning about the redirect target: {}",
        ran.all()
    );
    let version = status(&https)["current"]["version"].as_str().unwrap().to_string();
    let key = host_sh(&host, &format!("stat -c '%u %a' /opt/cultivate/releases/{version}/certs/privkey.pem"));
    assert_eq!(key.trim(), "101 600");
    let (_, head) = tls::https_get(host.https_port, &certificates.ca_der, &rustls::version::TLS13).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("strict-transport-security"), "{head}");
    let redirect = get(&format!("http://127.0.0.1:{}/", host.http_port)).unwrap();
    assert_eq!(redirect.status, 301, "{}", redirect.text());
    // A forged Host header does not choose where HTTP redirects (issue 9, item 12):
    // unset, `server_names` is the host's address.
    let forged = raw_get(host.http_port, "/x?y", "evil.example");
    assert!(forged.starts_with("HTTP/1.1 301"), "{forged}");
    assert!(forged.contains("\r\nLocation: https://127.0.0.1/x?y\r\n"), "{forged}");
}

/// `GET path` with the given Host header, as a client may forge it; the response head.
fn raw_get(port: u16, path: &str, host_header: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split("\r\n\r\n").next().unwrap_or_default().to_string() + "\r\n"
}

/// Issue 9, items 1 and 2: with the log path a shared directory and
/// `keep_releases = 1`, pruning removes only this tool's logs, and never the release
/// a rollback would restore; an automatic rollback whose target is incomplete stops
/// before it changes anything.
#[test]
fn pruning_spares_foreign_logs_and_the_rollback_target() {
    require_engine();
    let host = TestHost::start(HostVariant::Docker, false).unwrap();
    let config =
        DeployConfig::with_runtime(&host, "log_path = \"/var/log\"\n", "", "keep_releases = 1\nkeep_logs = 2\n")
            .unwrap();
    let foreign = ["dpkg.log", "alternatives.log", "bootstrap.log", "dockerd.log", "important.log"];
    for name in foreign {
        host_sh(&host, &format!("[ -e /var/log/{name} ] || echo planted > /var/log/{name}"));
    }
    let v1 = built_manifest_path();
    let v1_version = xtask::images::read_manifest(&v1).unwrap().version;
    let v2 = derived_version("prune-v2", "RUN echo prune-v2 > /tmp/cultivate-e2e-release\n").unwrap();
    let v3 = derived_version("prune-v3", "RUN echo prune-v3 > /tmp/cultivate-e2e-release\n").unwrap();
    for manifest in [&v1, &v2, &v3] {
        let ran = deploy(&config, manifest);
        assert!(ran.success, "deploy failed: {}", ran.all());
    }
    assert_serves(&host, "prune-v3", &config);
    for name in foreign {
        let left = host_sh(&host, &format!("ls /var/log/{name} 2>/dev/null"));
        assert!(!left.trim().is_empty(), "pruning deleted /var/log/{name}: {}", host_sh(&host, "ls -l /var/log"));
    }
    let ours = host_sh(&host, "ls /var/log | grep -c '^deploy-.*\\.log$'");
    assert_eq!(ours.trim(), "2", "keep_logs = 2: {}", host_sh(&host, "ls -l /var/log"));
    // keep_releases = 1 keeps the current release and the one a rollback restores.
    let releases = host_sh(&host, "ls /opt/cultivate/releases");
    assert_eq!(releases.split_whitespace().collect::<Vec<_>>(), ["prune-v2", "prune-v3"], "{releases}");
    assert!(host_sh(&host, &format!("docker images -q cultivate-backend-api:{v1_version}")).trim().is_empty());
    assert!(!host_sh(&host, "docker images -q cultivate-backend-api:prune-v2").trim().is_empty());
    let rolled = config.run(&["rollback", "--host", "e2e", "--yes"]).unwrap();
    assert!(rolled.success, "rollback to the kept release failed: {}", rolled.all());
    assert_serves(&host, "prune-v2", &config);

    // The release an automatic rollback would restore has lost a file (removed by
    // hand): the rollback does not start, and says why.
    let broken = derived_version(
        "prune-broken",
        "ENTRYPOINT [\"sh\", \"-c\", \"echo cultivate-prune-broken starting; exec sleep 600\"]\n",
    )
    .unwrap();
    host_sh(&host, "rm /opt/cultivate/releases/prune-v2/.env");
    let failed = deploy(&config, &broken);
    assert!(!failed.success, "{}", failed.all());
    assert!(failed.stderr.contains("the automatic rollback did not start"), "{}", failed.all());
    assert!(failed.stderr.contains("/opt/cultivate/releases/prune-v2/.env"), "{}", failed.all());
    assert!(!failed.stderr.contains("rolling back to"), "it stopped something first: {}", failed.all());
    let kept = host_sh(&host, "cat /opt/cultivate/volumes/db_data/pgdata/PG_VERSION");
    assert_eq!(kept.trim(), "15", "the database's data was not kept");
}
