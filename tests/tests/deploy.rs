//! End to end: `cargo xtask deploy`, `rollback`, `status` and `logs` over real SSH onto
//! test hosts that run their own dockerd, serving real HTTP through nginx → backend →
//! PostgreSQL, checked by a real browser.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cultivate_tests::deploy::{
    DeployConfig, Ran, activities, assert_serves, built_manifest_path, deploy, derived_version, derived_version_of,
    edge_route, status, wait_bounded,
};
use cultivate_tests::hosts::{HostVariant, TestHost};
use cultivate_tests::{Load, get, get_when_up, http, require_engine};
use xtask::host::probe::FinchVm;
use xtask::model::service::Service;

#[path = "support/tls.rs"]
mod tls;

const BUILT: &str = "built";

/// The database container's id and start time on the host.
fn database_container(host: &TestHost) -> String {
    service_containers(host, "database")
}

/// The running containers of a compose service on the host: ids and start times.
fn service_containers(host: &TestHost, service: &str) -> String {
    let found = host_sh(
        host,
        &format!(
            "docker ps -q --filter label=com.docker.compose.service={service} | \
             xargs -r docker inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}'"
        ),
    );
    assert!(!found.trim().is_empty(), "no {service} container");
    found
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

// The scenarios below share one host (a fresh one, started and first deployed to once
// per test process) and run one at a time on it: each takes the fixture's lock and
// establishes its own precondition (deploying what it needs), so any order works.

const V2_BACKEND: &str = "RUN echo e2e-v2 > /tmp/cultivate-e2e-release\n";
const BROKEN_BACKEND: &str =
    "ENTRYPOINT [\"sh\", \"-c\", \"echo cultivate-e2e-broken-backend starting; exec sleep 600\"]\n";
const V3_BACKEND: &str = "RUN head -c 40000000 /dev/urandom > /tmp/e2e-ballast\n";
const SWAPPED_BACKEND: &str = "RUN echo swapped > /tmp/cultivate-e2e-release\n";
const V4_BACKEND: &str = "RUN head -c 2000000 /dev/urandom > /tmp/e2e-ballast-4\n";
/// A frontend change: one more page, served at /release.txt.
const FRONT_FRONTEND: &str = "USER root\nRUN echo e2e-front > /usr/share/cultivate/html/release.txt\nUSER 101:101\n";

/// Successful deploys and rollbacks the pruning scenario needs behind it: more than
/// `keep_logs` (6), so that there is something to prune.
const RUNS_BEFORE_PRUNING: usize = 7;

/// The shared host of the scenarios, and what they know about it.
struct Scenarios {
    host: &'static TestHost,
    config: DeployConfig,
    v1: PathBuf,
    v1_version: String,
    /// The first deploy, made on the fresh host when the fixture started.
    first: Ran,
    /// The title of the row written through the API once v1 served.
    row: Option<String>,
    /// Successful deploys and rollbacks so far.
    runs: usize,
}

/// The scenarios' host, locked for the calling test; the first call starts it and
/// deploys the built images (v1) to it.
fn scenarios() -> MutexGuard<'static, Scenarios> {
    static SCENARIOS: OnceLock<Mutex<Scenarios>> = OnceLock::new();
    let scenarios = SCENARIOS.get_or_init(|| {
        require_engine();
        let host = TestHost::docker();
        let config = DeployConfig::new(host, "").unwrap();
        let v1 = built_manifest_path();
        let v1_version = xtask::images::read_manifest(&v1).unwrap().version;
        let first = deploy(&config, &v1);
        let runs = usize::from(first.success);
        Mutex::new(Scenarios { host, config, v1, v1_version, first, row: None, runs })
    });
    // A failed scenario poisons the lock; the others still run, on a host reset here.
    let mut locked = scenarios.lock().unwrap_or_else(|e| e.into_inner());
    locked.reset();
    locked
}

impl Scenarios {
    /// Undoes what a scenario that failed half-way may have left: wrappers on the host.
    fn reset(&mut self) {
        restore_gunzip(self.host);
        host_sh(self.host, "rm -f /usr/local/bin/docker");
        unwrap_compose(self.host);
        unwrap_mv(self.host);
    }

    fn deploy(&mut self, manifest: &Path) -> Ran {
        let ran = deploy(&self.config, manifest);
        self.runs += usize::from(ran.success);
        ran
    }

    fn rollback(&mut self, args: &[&str]) -> Ran {
        let ran = self.config.run(&[&["rollback", "--host", "e2e"], args, &["--yes"]].concat()).unwrap();
        self.runs += usize::from(ran.success);
        ran
    }

    /// The version the host serves, healthy; None if none.
    fn serving(&self) -> Option<String> {
        let ran = self.config.run(&["status", "--host", "e2e", "--json"]).expect("running status");
        let status: serde_json::Value = serde_json::from_str(&ran.stdout).ok().filter(|_| ran.success)?;
        let version = status["current"]["version"].as_str()?.to_string();
        (status["healthy"] == true).then_some(version)
    }

    /// Precondition: `version` (from `manifest`) is deployed and serving.
    fn ensure_serving(&mut self, manifest: &Path, version: &str) {
        if self.serving().as_deref() != Some(version) {
            let ran = self.deploy(manifest);
            assert!(ran.success, "precondition: deploying {version} failed: {}", ran.all());
        }
        assert_serves(self.host, version, &self.config);
    }

    /// Precondition: v1 is deployed and serving.
    fn ensure_v1(&mut self) {
        let (v1, version) = (self.v1.clone(), self.v1_version.clone());
        self.ensure_serving(&v1, &version);
    }

    /// Precondition for the interruption scenarios: e2e-v3 serves, the row written.
    /// Returns the row, and the manifest of e2e-v4 (a backend change) to deploy next.
    fn v3_serving_v4_next(&mut self) -> (String, PathBuf, String) {
        let title = self.row();
        self.ensure_serving(&v3(), "e2e-v3");
        let v4 = v4();
        let path = v4.to_string_lossy().into_owned();
        (title, v4, path)
    }

    /// Precondition: `version`'s images are not on the host (so a deploy of it sends
    /// them). It must not be the version serving.
    fn remove_from_host(&self, version: &str) {
        assert_ne!(self.serving().as_deref(), Some(version));
        let listed = format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep ':{version}$'");
        host_sh(self.host, &format!("{listed} | xargs -r docker rmi >/dev/null 2>&1; true"));
        let left = host_sh(self.host, &listed);
        assert!(left.trim().is_empty(), "precondition: {version}'s images stay on the host: {left}");
    }

    /// The row written through nginx → backend → PostgreSQL (written on first use,
    /// with v1 serving); the database's data is kept across releases.
    fn row(&mut self) -> String {
        if let Some(title) = &self.row {
            return title.clone();
        }
        self.ensure_v1();
        let title = format!("e2e row {}", cultivate_tests::unique(BUILT));
        let body = serde_json::json!({"title": title, "notes": "kept across releases"}).to_string();
        let created = http(
            "POST",
            &format!("http://127.0.0.1:{}/api/v1/activities", self.host.http_port),
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
        .unwrap();
        assert_eq!(created.status, 201, "{}", created.text());
        assert!(activities(self.host).contains(&title));
        self.row = Some(title.clone());
        title
    }
}

fn v2() -> PathBuf {
    derived_version("e2e-v2", V2_BACKEND).unwrap()
}

fn v3() -> PathBuf {
    derived_version("e2e-v3", V3_BACKEND).unwrap()
}

fn v4() -> PathBuf {
    derived_version("e2e-v4", V4_BACKEND).unwrap()
}

#[test]
fn first_deploy_on_a_fresh_host_serves_a_row_to_a_browser() {
    let mut s = scenarios();
    let (first, v1_version) = (&s.first, s.v1_version.clone());

    // Fresh host → deploy: the frontend answers and a row goes through nginx → backend → PostgreSQL.
    assert!(first.success, "first deploy failed: {}", first.all());
    assert!(first.stdout.contains(&format!("Cultivate {v1_version} is live on e2e")), "{}", first.all());
    s.ensure_v1();
    let title = s.row();

    // A real browser loads the deployed page and sees the row.
    let dom =
        cultivate_tests::browser::rendered_dom_containing(&format!("http://127.0.0.1:{}/", s.host.http_port), &title)
            .unwrap();
    assert!(dom.contains(&title));

    // The deploy log is on the host, every line timestamped (Properties 32, 34).
    let logs = host_sh(s.host, "cat /var/log/cultivate/deploy-*.log");
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        assert!(xtask::support::log::is_log_line(line), "untimestamped line in the host's deploy log: {line:?}");
    }
}

#[test]
fn dry_run_changes_nothing_and_verbose_shows_the_commands() {
    let mut s = scenarios();
    s.ensure_v1();
    let (host, config) = (s.host, &s.config);
    // --dry-run prints what it would change and changes nothing; --verbose adds each
    // command (Property 35), which a normal run does not show.
    let history_before = status(config)["history"].as_array().unwrap().len();
    let containers_before = host_sh(host, "docker ps -q --no-trunc | sort");
    let dry = config
        .run(&["deploy", "--host", "e2e", "--manifest", &s.v1.to_string_lossy(), "--dry-run", "--verbose"])
        .unwrap();
    assert!(dry.success, "{}", dry.all());
    assert!(dry.stdout.contains("[e2e] would run: ") && dry.stdout.contains("up --detach"), "{}", dry.all());
    assert!(dry.stderr.contains(" DEBUG $ "), "--verbose shows no commands: {}", dry.all());
    assert!(!s.first.stderr.contains(" DEBUG "), "a normal run shows debug lines: {}", s.first.all());
    assert_eq!(status(config)["history"].as_array().unwrap().len(), history_before, "--dry-run changed the history");
    assert_eq!(host_sh(host, "docker ps -q --no-trunc | sort"), containers_before, "--dry-run changed containers");
}

#[test]
fn secrets_are_private_on_the_host() {
    let mut s = scenarios();
    s.ensure_v1();
    // Secrets are 0600 on the host; the database publishes no port.
    let env_mode = host_sh(s.host, &format!("stat -c %a /opt/cultivate/releases/{}/.env", s.v1_version));
    assert_eq!(env_mode.trim(), "600");
    let data_owner = host_sh(s.host, "stat -c '%u %a' /opt/cultivate/volumes/db_data");
    assert_eq!(data_owner.trim(), "999 700");
}

#[test]
fn upgrade_keeps_the_row_and_ships_only_the_changed_layer() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let v2 = v2();
    s.remove_from_host("e2e-v2");
    // A second version with a changed backend: it serves, the row is still there, and
    // only the backend's new layer (plus two image configs) travels.
    let database_before = database_container(s.host);
    // Under load through nginx, not one request fails: the new backend starts beside
    // the old one, and the old one drains before it goes.
    let load = Load::start(s.host.http_port);
    let second = s.deploy(&v2);
    let report = load.stop();
    assert!(second.success, "second deploy failed: {}", second.all());
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}: {}", second.all());
    assert!(second.stderr.contains("drained and removed"), "{}", second.all());
    assert_serves(s.host, "e2e-v2", &s.config);
    // Only what changed restarts: the database keeps its container and start time.
    assert_eq!(database_container(s.host), database_before, "the database restarted: {}", second.all());
    assert!(second.stderr.contains("database: unchanged since"), "{}", second.all());
    assert!(activities(s.host).contains(&title), "the row is gone after the upgrade");
    let shipped = second.shipped_mb().expect("the summary names the bytes shipped");
    assert!(shipped < 1.0, "a backend-only change shipped {shipped} MB: {}", second.all());
    assert!(second.stderr.contains("layers are on e2e already"), "{}", second.all());
}

/// Issue 12: a frontend change must not drop requests either, though the host port
/// belongs to one container: the edge holds the ports, a new frontend starts beside the
/// old one behind it, and the old one drains. Only the frontend restarts, both ways.
#[test]
fn a_frontend_change_and_its_rollback_swap_the_frontend_behind_the_edge() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let front = derived_version_of("e2e-front", Service::WebFrontend, FRONT_FRONTEND).unwrap();
    let kept = |host: &TestHost| ["database", "backend", "edge"].map(|service| service_containers(host, service));
    let before = kept(s.host);
    let page = |s: &Scenarios| {
        get_when_up(&format!("http://127.0.0.1:{}/release.txt", s.host.http_port), Duration::from_secs(10)).unwrap()
    };
    assert_eq!(page(&s).status, 404, "precondition: v1 has no release.txt");

    let load = Load::start(s.host.http_port);
    let deployed = s.deploy(&front);
    let report = load.stop();
    assert!(deployed.success, "{}", deployed.all());
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}: {}", deployed.all());
    assert!(deployed.stderr.contains("frontend: starting"), "{}", deployed.all());
    assert!(deployed.stderr.contains("drained and removed"), "{}", deployed.all());
    assert!(deployed.stderr.contains("edge: new connections go to"), "{}", deployed.all());
    assert!(!deployed.stderr.contains("could not route"), "{}", deployed.all());
    assert_eq!(edge_route(s.host, "docker"), "frontend", "routed back by the service's name");
    assert_serves(s.host, "e2e-front", &s.config);
    assert_eq!(page(&s).text().trim(), "e2e-front");
    assert_eq!(kept(s.host), before, "only the frontend may restart: {}", deployed.all());

    let load = Load::start(s.host.http_port);
    let rolled = s.rollback(&[]);
    let report = load.stop();
    assert!(rolled.success, "{}", rolled.all());
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}: {}", rolled.all());
    assert_serves(s.host, &s.v1_version, &s.config);
    assert_eq!(page(&s).status, 404, "v1's frontend serves again");
    assert!(rolled.stderr.contains("edge: new connections go to"), "{}", rolled.all());
    assert_eq!(edge_route(s.host, "docker"), "frontend");
    assert_eq!(kept(s.host), before, "only the frontend may restart: {}", rolled.all());
    assert!(activities(s.host).contains(&title), "the row is gone");
}

/// Issue 12, item 6: on Docker 20.10 with Compose v1 (no `start_interval`), the engine
/// checks a container first after a whole interval. With a 60 s interval the release
/// is healthy, switched and recorded while the engine still reports its containers
/// starting: the deploy ran their checks itself, and compose did not wait either (no
/// health conditions in the file). The quick settings are deployed back afterwards.
#[test]
fn on_compose_v1_a_release_is_healthy_when_its_services_are_not_at_the_engines_first_check() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let slow = DeployConfig::with_health(
        s.host,
        "timeout_seconds = 50\ninterval_seconds = 60\nretries = 3\nstart_period_seconds = 120\n",
    )
    .unwrap();
    let deployed = deploy(&slow, &v2());
    let engine_says =
        host_sh(s.host, "docker ps -q | xargs docker inspect --format '{{.Name}} {{.State.Health.Status}}'");
    assert!(deployed.success, "{}", deployed.all());
    assert!(engine_says.contains(" starting"), "every container was checked by the engine already: {engine_says}");
    let written = host_sh(s.host, "cat /opt/cultivate/current/docker-compose.yml");
    assert!(written.contains("interval: 60s") && !written.contains("condition:"), "{written}");
    assert_eq!(status(&slow)["healthy"], true);
    assert!(activities(s.host).contains(&title));

    let quick = s.deploy(&v2());
    assert!(quick.success, "deploying the quick settings back: {}", quick.all());
    assert_serves(s.host, "e2e-v2", &s.config);
}

#[test]
fn redeploy_with_nothing_changed_ships_no_image_bytes() {
    let mut s = scenarios();
    let v2 = v2();
    s.ensure_serving(&v2, "e2e-v2");
    // Redeploy with nothing changed: no image bytes shipped.
    let again = s.deploy(&v2);
    assert!(again.success, "{}", again.all());
    assert_eq!(again.shipped_mb(), Some(0.0), "{}", again.all());
    assert!(again.stderr.contains("no image bytes shipped"), "{}", again.all());
}

#[test]
fn logs_come_through_the_same_transport() {
    let mut s = scenarios();
    if s.serving().is_none() {
        s.ensure_v1();
    }
    // `logs` through the same transport.
    let backend_logs = s.config.run(&["logs", "--host", "e2e", "--service", "backend", "--lines", "20"]).unwrap();
    assert!(backend_logs.success && !backend_logs.stdout.trim().is_empty(), "{}", backend_logs.all());
}

#[test]
fn rollback_restores_the_previous_version() {
    let mut s = scenarios();
    let title = s.row();
    // v2 serving with v1 the release before it.
    s.ensure_v1();
    let v2 = v2();
    let upgraded = s.deploy(&v2);
    assert!(upgraded.success, "precondition: deploying e2e-v2 failed: {}", upgraded.all());
    assert_serves(s.host, "e2e-v2", &s.config);

    // rollback → the previous version serves, the row is still there, and the
    // database, the same image in both, was not restarted.
    let database_before = database_container(s.host);
    let load = Load::start(s.host.http_port);
    let rolled = s.rollback(&[]);
    let report = load.stop();
    assert!(rolled.success, "rollback failed: {}", rolled.all());
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}: {}", rolled.all());
    assert_serves(s.host, &s.v1_version, &s.config);
    assert_eq!(database_container(s.host), database_before, "the database restarted: {}", rolled.all());
    assert!(activities(s.host).contains(&title), "the row is gone after the rollback");
    let history = status(&s.config)["history"].as_array().unwrap().clone();
    assert_eq!(history.last().unwrap()["status"], "rolled_back");
    assert_eq!(history.last().unwrap()["replaced"], "e2e-v2");
}

#[test]
fn rollback_to_an_unknown_version_is_refused() {
    let mut s = scenarios();
    // v1 serving, e2e-v2 a release on the host.
    s.ensure_v1();
    if host_sh(s.host, "ls -d /opt/cultivate/releases/e2e-v2 2>/dev/null").trim().is_empty() {
        let upgraded = s.deploy(&v2());
        assert!(upgraded.success, "precondition: deploying e2e-v2 failed: {}", upgraded.all());
        let rolled = s.rollback(&[]);
        assert!(rolled.success, "precondition: rolling back to v1 failed: {}", rolled.all());
    }
    assert_serves(s.host, &s.v1_version, &s.config);
    let history = status(&s.config)["history"].as_array().unwrap().clone();

    // rollback --to an unknown version → a clear error, nothing changed.
    let unknown = s.rollback(&["--to", "no-such-version"]);
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no release \"no-such-version\"") && unknown.stderr.contains("e2e-v2"),
        "{}",
        unknown.all()
    );
    assert_eq!(status(&s.config)["history"].as_array().unwrap().len(), history.len());
    assert_serves(s.host, &s.v1_version, &s.config);
}

#[test]
fn a_backend_that_never_gets_healthy_is_rolled_back_automatically() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let v1_version = s.v1_version.clone();
    // A backend that never becomes healthy → automatic rollback, its logs shown, the
    // previous version serving.
    let broken = derived_version("e2e-broken", BROKEN_BACKEND).unwrap();
    let failed = s.deploy(&broken);
    assert!(!failed.success, "a broken backend deployed: {}", failed.all());
    assert!(failed.stderr.contains("cultivate-e2e-broken-backend starting"), "no backend logs: {}", failed.all());
    assert!(failed.stderr.contains(&format!("the previous release {v1_version} was restored")), "{}", failed.all());
    assert_serves(s.host, &v1_version, &s.config);
    assert!(activities(s.host).contains(&title));
    let saved = host_sh(s.host, "cat /opt/cultivate/releases/e2e-broken/failure-*backend*.log");
    assert!(saved.contains("cultivate-e2e-broken-backend"), "failing logs not saved on the host: {saved}");
}

/// Runs `sql` in the host's database as the superuser (over its socket, peer auth).
fn database_sql(host: &TestHost, sql: &str) -> String {
    let script = format!(
        "docker ps -q --filter label=com.docker.compose.service=database | \
         xargs -I{{}} docker exec -u postgres {{}} psql -d cultivate -Atc \"{sql}\""
    );
    host_sh(host, &script)
}

/// Issue 12, item 3: the new backend migrates while the old one serves; when its
/// migrations fail, it never gets healthy, is removed, and the old release serves on,
/// without a failed request. The failure here: the applied migration's recorded
/// checksum no longer matches the one the backend carries (refinery refuses divergent
/// migrations), which fails every backend started meanwhile, as a broken migration does.
#[test]
fn a_failed_migration_leaves_the_old_release_serving() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_serving(&v3(), "e2e-v3");
    let v4 = v4();
    let checksum = database_sql(s.host, "SELECT checksum FROM refinery_schema_history WHERE version = 1");
    let checksum = checksum.trim().to_string();
    assert!(!checksum.is_empty(), "precondition: the migration is recorded");
    database_sql(s.host, "UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1");
    let load = Load::start(s.host.http_port);
    let failed = s.deploy(&v4);
    let report = load.stop();
    database_sql(s.host, &format!("UPDATE refinery_schema_history SET checksum = '{checksum}' WHERE version = 1"));
    assert!(!failed.success, "a backend whose migrations fail deployed: {}", failed.all());
    assert!(failed.stderr.contains("the new one was removed"), "{}", failed.all());
    assert!(failed.stderr.contains("the previous release e2e-v3 was restored"), "{}", failed.all());
    assert!(
        failed.stderr.to_lowercase().contains("migration"),
        "the backend's logs name the migration: {}",
        failed.all()
    );
    assert!(report.sent > 20 && report.failures.is_empty(), "{report:?}: {}", failed.all());
    assert_serves(s.host, "e2e-v3", &s.config);
    assert!(activities(s.host).contains(&title));
}

#[test]
fn a_corrupted_image_stream_starts_nothing() {
    let mut s = scenarios();
    s.ensure_v1();
    let v3 = v3();
    s.remove_from_host("e2e-v3");
    let host = s.host;
    // A corrupted image stream (the backend's, the only large one) → the load fails,
    // nothing started.
    let containers_before = host_sh(host, "docker ps -q --no-trunc | sort");
    wrap_gunzip(
        host,
        "/bin/gunzip -c | python3 -c 'import sys; d=sys.stdin.buffer.read(); i=len(d)//2; big=len(d)>1000000; sys.stdout.buffer.write(d[:i] + bytes([d[i]^(255 if big else 0)]) + d[i+1:])' | gzip -1 -c | exec /bin/gunzip \"$@\"",
    );
    let corrupted = s.deploy(&v3);
    restore_gunzip(host);
    assert!(!corrupted.success, "a corrupted stream deployed: {}", corrupted.all());
    assert!(corrupted.stderr.contains("loading cultivate-backend-api:e2e-v3"), "{}", corrupted.all());
    assert_eq!(host_sh(host, "docker ps -q --no-trunc | sort"), containers_before, "containers changed");
    assert_serves(host, &s.v1_version, &s.config);
}

#[test]
fn another_image_loaded_under_the_tag_is_refused() {
    let mut s = scenarios();
    s.ensure_v1();
    let swapped_version = derived_version("e2e-swapped", SWAPPED_BACKEND).unwrap();
    s.remove_from_host("e2e-swapped");
    let (host, v1_version) = (s.host, s.v1_version.clone());
    let containers_before = host_sh(host, "docker ps -q --no-trunc | sort");
    // A load that "succeeds" with another image under the tag → verification fails
    // (Property 20), nothing started.
    let swap = format!(
        "#!/bin/sh\nif [ \"$1\" = load ]; then /usr/bin/docker \"$@\" || exit 1; \
         /usr/bin/docker tag cultivate-database:{v1_version} cultivate-backend-api:e2e-swapped; exit 0; fi\n\
         exec /usr/bin/docker \"$@\"\n"
    );
    host_sh(host, &format!("cat > /usr/local/bin/docker <<'EOF'\n{swap}EOF\nchmod 755 /usr/local/bin/docker"));
    let swapped = s.deploy(&swapped_version);
    host_sh(host, "rm -f /usr/local/bin/docker");
    assert!(!swapped.success, "a swapped image deployed: {}", swapped.all());
    assert!(swapped.stderr.contains("is not the image built here"), "{}", swapped.all());
    assert_eq!(host_sh(host, "docker ps -q --no-trunc | sort"), containers_before, "containers changed");
    assert_serves(host, &v1_version, &s.config);
}

#[test]
fn an_ssh_connection_cut_mid_transfer_keeps_the_previous_release() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let v3 = v3();
    s.remove_from_host("e2e-v3");
    let host = s.host;
    // The SSH connection cut mid-transfer → the deploy fails, the previous release keeps
    // serving, a retry succeeds.
    wrap_gunzip(host, "touch /tmp/gunzip-started; sleep 5");
    let child = s.config.spawn(&["deploy", "--host", "e2e", "--manifest", &v3.to_string_lossy(), "--yes"]).unwrap();
    wait_on_host(host, "ls /tmp/gunzip-started 2>/dev/null", "the transfer to start");
    host_sh(host, "pkill -f 'sshd: root@' ; true");
    let cut = wait_bounded(child, 300).unwrap();
    restore_gunzip(host);
    assert!(!cut.success, "a cut connection deployed: {}", cut.all());
    assert_serves(host, &s.v1_version, &s.config);
    assert!(activities(host).contains(&title));
    let retry = s.deploy(&v3);
    assert!(retry.success, "the retry failed: {}", retry.all());
    assert_serves(host, "e2e-v3", &s.config);
    assert!(activities(host).contains(&title));
}

/// Replaces `docker-compose` on the host with a wrapper that, for `up`, runs `before`,
/// then compose, then `after` (removed by `unwrap_compose`).
fn wrap_compose_up(host: &TestHost, before: &str, after: &str) {
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" up \"*) {before}; /usr/bin/docker-compose \"$@\"; code=$?; {after}; exit $code;; esac\n\
         exec /usr/bin/docker-compose \"$@\"\n"
    );
    host_sh(
        host,
        &format!("cat > /usr/local/bin/docker-compose <<'EOF'\n{script}EOF\nchmod 755 /usr/local/bin/docker-compose"),
    );
    host_sh(host, "rm -f /tmp/compose-up-started /tmp/compose-up-done");
}

fn unwrap_compose(host: &TestHost) {
    host_sh(host, "rm -f /usr/local/bin/docker-compose /tmp/compose-up-started /tmp/compose-up-done");
}

/// Sends `signal` to the deploy `child` (its own process only, as `kill` does).
fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
    assert!(sent.unwrap().success(), "kill -{signal} {}", child.id());
}

/// The release `status` says is current, and what it says of drift.
fn current_and_drift(config: &DeployConfig) -> (String, Vec<String>) {
    let status = status(config);
    let current = status["current"]["version"].as_str().unwrap_or_default().to_string();
    let drift = status["drift"].as_array().expect("drift").iter().map(|d| d.to_string()).collect();
    (current, drift)
}

/// Issue 12: a deploy interrupted in any phase leaves the host as it was or as
/// recorded, `status` tells the truth, and the next command proceeds at once.
#[test]
fn an_interrupted_deploy_leaves_the_host_as_recorded_and_the_next_one_proceeds() {
    let mut s = scenarios();
    let (title, v4, v4_path) = s.v3_serving_v4_next();
    let host = s.host;
    let deploy_args = ["deploy", "--host", "e2e", "--manifest", v4_path.as_str(), "--yes"];

    // SIGTERM while shipping: it stops at once; nothing started, nothing recorded.
    s.remove_from_host("e2e-v4");
    wrap_gunzip(host, "touch /tmp/gunzip-started; sleep 30");
    let child = s.config.spawn(&deploy_args).unwrap();
    wait_on_host(host, "ls /tmp/gunzip-started 2>/dev/null", "the transfer to start");
    signal(&child, "TERM");
    let stopped = wait_bounded(child, 60).unwrap();
    restore_gunzip(host);
    assert!(!stopped.success && stopped.stderr.contains("SIGTERM: stopping now"), "{}", stopped.all());
    assert_eq!(current_and_drift(&s.config), ("e2e-v3".to_string(), Vec::new()));
    assert_serves(host, "e2e-v3", &s.config);

    // SIGTERM while the new release starts: the deploy sees it through to the previous
    // release, restored and recorded.
    wrap_compose_up(host, "touch /tmp/compose-up-started; sleep 3", "true");
    let child = s.config.spawn(&deploy_args).unwrap();
    wait_on_host(host, "ls /tmp/compose-up-started 2>/dev/null", "the release to start");
    signal(&child, "TERM");
    let restored = wait_bounded(child, 300).unwrap();
    unwrap_compose(host);
    assert!(!restored.success, "{}", restored.all());
    assert!(restored.stderr.contains("interrupted while"), "{}", restored.all());
    assert!(restored.stderr.contains("the previous release e2e-v3 was restored and is healthy"), "{}", restored.all());
    assert_eq!(current_and_drift(&s.config), ("e2e-v3".to_string(), Vec::new()));
    let history = status(&s.config)["history"].clone();
    let statuses: Vec<String> =
        history.as_array().unwrap().iter().rev().take(2).map(|d| d["status"].to_string()).collect();
    assert_eq!(statuses, ["\"rolled_back\"", "\"failed\""], "{history:#}");
    assert_serves(host, "e2e-v3", &s.config);

    // SIGKILL once the new release is up: nothing can be recorded; `status` names the
    // drift, and `rollback --to` the current release puts it right.
    wrap_compose_up(host, "true", "touch /tmp/compose-up-done; sleep 30");
    let mut child = s.config.spawn(&deploy_args).unwrap();
    wait_on_host(host, "ls /tmp/compose-up-done 2>/dev/null", "the release to be up");
    child.kill().unwrap();
    let _ = child.wait();
    unwrap_compose(host);
    let (current, drift) = current_and_drift(&s.config);
    assert_eq!(current, "e2e-v3");
    // The backend is what changed between the two: it alone differs.
    assert!(drift.len() == 1 && drift[0].contains("backend runs cultivate-backend-api:e2e-v4"), "{drift:?}");
    let text = s.config.run(&["status", "--host", "e2e"]).unwrap();
    assert!(text.stdout.contains("drift:") && text.stdout.contains("cargo xtask rollback"), "{}", text.all());
    let reconciled = s.rollback(&["--to", "e2e-v3"]);
    assert!(reconciled.success, "rollback --to the current release in drift: {}", reconciled.all());
    assert!(reconciled.stderr.contains("is not the current release e2e-v3"), "{}", reconciled.all());
    assert_eq!(current_and_drift(&s.config), ("e2e-v3".to_string(), Vec::new()));
    assert_serves(host, "e2e-v3", &s.config);

    // The SSH connection cut during the health wait: the next command finds the host
    // as recorded or names the drift, and the next deploy proceeds at once.
    wrap_compose_up(host, "true", "touch /tmp/compose-up-done");
    let child = s.config.spawn(&deploy_args).unwrap();
    wait_on_host(host, "ls /tmp/compose-up-done 2>/dev/null", "the release to be up");
    host_sh(host, "pkill -f 'sshd: root@' ; true");
    let cut = wait_bounded(child, 300).unwrap();
    unwrap_compose(host);
    assert_status_truthful(host, &s.config, &format!("after the cut (the deploy said: {})", cut.all()));

    // Whatever was left, the next deploy proceeds at once and ends healthy, data kept.
    let next = s.deploy(&v4);
    assert!(next.success, "the next deploy: {}", next.all());
    assert!(!next.stderr.contains("is locked"), "{}", next.all());
    assert_eq!(current_and_drift(&s.config), ("e2e-v4".to_string(), Vec::new()));
    assert_serves(host, "e2e-v4", &s.config);
    assert!(activities(host).contains(&title), "the row is gone");
}

/// Replaces `mv` on the host with one that, once it has put `release.json` of
/// `version` in place, marks it and waits (removed by `unwrap_mv`): the deploy is held
/// with its release written and nothing started.
fn hold_after_release_written(host: &TestHost, version: &str) {
    let script = format!(
        "#!/bin/sh\n/bin/mv \"$@\"; code=$?\nfor last; do :; done\n\
         case \"$last\" in */releases/{version}/release.json) touch /tmp/release-written; sleep 20;; esac\nexit $code\n"
    );
    host_sh(
        host,
        &format!(
            "cat > /usr/local/bin/mv <<'EOF'\n{script}EOF\nchmod 755 /usr/local/bin/mv; rm -f /tmp/release-written"
        ),
    );
}

fn unwrap_mv(host: &TestHost) {
    host_sh(host, "rm -f /usr/local/bin/mv /tmp/release-written");
}

/// `status` tells the truth: its drift is empty exactly when every running container
/// runs the current release's image for its service.
fn assert_status_truthful(host: &TestHost, config: &DeployConfig, context: &str) {
    let status = status(config);
    let recorded: Vec<(String, String)> = status["current"]["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| (i["service"].as_str().unwrap_or_default().into(), i["reference"].as_str().unwrap_or_default().into()))
        .collect();
    let running = host_sh(host, "docker ps --format '{{.Label \"com.docker.compose.service\"}} {{.Image}}'");
    let image_service = |compose: &str| Service::from_compose_name(compose).map(|s| s.name()).unwrap_or("?");
    let agrees = running.lines().all(|line| {
        let (service, image) = line.split_once(' ').unwrap_or((line, ""));
        recorded.iter().any(|(s, r)| s == image_service(service) && xtask::model::image::names_same_image(image, r))
    });
    let drift = status["drift"].as_array().expect("drift");
    assert_eq!(drift.is_empty(), agrees, "{context}: status is not truthful: runs {running}, drift {drift:?}");
}

/// Issue 12, the rest of the phases: a deploy killed (SIGKILL) while shipping, stopped
/// (SIGTERM) or killed with its release written and nothing started, killed just
/// before its release starts, and stopped while its new backend starts: each time
/// `status` tells the truth, the previous release serves (put right by `rollback --to`
/// where a kill left drift), and at the end a deploy proceeds at once, the row kept.
#[test]
fn a_deploy_stopped_or_killed_in_each_phase_leaves_a_truthful_host() {
    let mut s = scenarios();
    let (title, v4, v4_path) = s.v3_serving_v4_next();
    let host = s.host;
    let deploy_args = ["deploy", "--host", "e2e", "--manifest", v4_path.as_str(), "--yes"];

    struct Case {
        phase: &'static str,
        signal: &'static str,
        /// Arms the host; returns the file whose presence says the phase is reached.
        arm: fn(&TestHost) -> &'static str,
        /// After the signal: what marks the host's side of the phase finished.
        finished: Option<&'static str>,
    }
    let cases = [
        Case {
            phase: "shipping",
            signal: "KILL",
            arm: |host| {
                wrap_gunzip(host, "touch /tmp/gunzip-started; sleep 5");
                "/tmp/gunzip-started"
            },
            finished: None,
        },
        Case {
            phase: "release written",
            signal: "TERM",
            arm: |host| {
                hold_after_release_written(host, "e2e-v4");
                "/tmp/release-written"
            },
            finished: None,
        },
        Case {
            phase: "release written",
            signal: "KILL",
            arm: |host| {
                hold_after_release_written(host, "e2e-v4");
                "/tmp/release-written"
            },
            finished: None,
        },
        Case {
            phase: "starting",
            signal: "KILL",
            arm: |host| {
                wrap_compose_up(host, "touch /tmp/compose-up-started; sleep 3", "touch /tmp/compose-up-finished");
                "/tmp/compose-up-started"
            },
            // The host finishes the `up` it was given, with nobody left to watch it.
            finished: Some("/tmp/compose-up-finished"),
        },
        Case {
            phase: "health wait",
            signal: "TERM",
            arm: |host| {
                wrap_compose_up(host, "true", "touch /tmp/compose-up-done");
                "/tmp/compose-up-done"
            },
            finished: None,
        },
    ];
    for case in cases {
        let context = format!("{} during {}", case.signal, case.phase);
        if case.phase == "shipping" {
            s.remove_from_host("e2e-v4");
        }
        let marker = (case.arm)(host);
        let mut child = s.config.spawn(&deploy_args).unwrap();
        wait_on_host(host, &format!("ls {marker} 2>/dev/null"), &context);
        let ended = if case.signal == "KILL" {
            child.kill().unwrap();
            let _ = child.wait();
            None
        } else {
            signal(&child, case.signal);
            Some(wait_bounded(child, 300).unwrap())
        };
        if let Some(finished) = case.finished {
            wait_on_host(host, &format!("ls {finished} 2>/dev/null"), &format!("{context}: the host's side"));
        }
        restore_gunzip(host);
        unwrap_mv(host);
        unwrap_compose(host);
        if let Some(ended) = &ended {
            assert!(!ended.success, "{context}: {}", ended.all());
            let said = match case.phase {
                "health wait" => "the previous release e2e-v3 was restored and is healthy",
                _ => "SIGTERM: stopping now",
            };
            assert!(ended.stderr.contains(said), "{context}: {}", ended.all());
        }
        assert_status_truthful(host, &s.config, &context);
        let (current, drift) = current_and_drift(&s.config);
        assert_eq!(current, "e2e-v3", "{context}");
        if !drift.is_empty() {
            let reconciled = s.rollback(&["--to", "e2e-v3"]);
            assert!(reconciled.success, "{context}: rollback --to the current release: {}", reconciled.all());
        }
        assert_serves(host, "e2e-v3", &s.config);
    }

    let next = s.deploy(&v4);
    assert!(next.success, "the next deploy: {}", next.all());
    assert!(!next.stderr.contains("is locked"), "{}", next.all());
    assert_serves(host, "e2e-v4", &s.config);
    assert!(activities(host).contains(&title), "the row is gone");
}

#[test]
fn concurrent_deploys_are_refused_and_a_stale_lock_is_taken_over() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_serving(&v3(), "e2e-v3");
    let v4 = v4();
    s.remove_from_host("e2e-v4");
    let host = s.host;
    // Two deploys at once → the second is refused with the holder's details; a deploy
    // killed mid-way leaves a stale lock the next deploy takes over.
    wrap_gunzip(host, "touch /tmp/gunzip-started; sleep 60");
    let mut holder =
        s.config.spawn(&["deploy", "--host", "e2e", "--manifest", &v4.to_string_lossy(), "--yes"]).unwrap();
    wait_on_host(host, "ls /tmp/gunzip-started 2>/dev/null", "the first deploy to hold the lock");
    let second_deploy = s.deploy(&v4);
    assert!(!second_deploy.success, "two deploys ran at once: {}", second_deploy.all());
    assert!(
        second_deploy.stderr.contains("is locked") && second_deploy.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        second_deploy.all()
    );
    // `lock` shows the holder; its heartbeat keeps renewing it (`lock_timeout_seconds`
    // is 3 here: a beat each second) well past the timeout.
    std::thread::sleep(Duration::from_secs(4));
    let shown = lock_json(&s.config);
    assert_eq!(shown["holder"]["pid"], holder.id(), "{shown:#}");
    assert_eq!(shown["stale"], false, "{shown:#}");
    assert!(shown["silent_seconds"].as_i64().is_some_and(|s| s <= 2), "no heartbeat: {shown:#}");
    // A holder running on this machine is not broken.
    let refused = s.config.run(&["lock", "--host", "e2e", "--release"]).unwrap();
    assert!(!refused.success && refused.stderr.contains("which is running"), "{}", refused.all());
    holder.kill().unwrap();
    let _ = holder.wait();
    host_sh(host, "pkill -f 'sshd: root@' ; true");
    restore_gunzip(host);
    assert!(host_sh(host, "cat /opt/cultivate/deploy.lock").contains("\"operation\":\"deploy\""), "no stale lock");
    // Its holder ran on this machine and is gone: stale at once, no timeout to wait for.
    let takeover = s.deploy(&v4);
    assert!(takeover.success, "the stale lock was not taken over: {}", takeover.all());
    assert!(takeover.stderr.contains("taking over a stale deploy lock"), "{}", takeover.all());
    assert_serves(host, "e2e-v4", &s.config);
    assert!(activities(host).contains(&title), "the row is gone at the end");
    assert!(host_sh(host, "ls /opt/cultivate/deploy.lock 2>/dev/null").trim().is_empty(), "the lock was left behind");

    // A holder on another machine that keeps its heartbeat is never taken over, however
    // old; `lock --release` breaks it, and the history records who did.
    let remote = r#"{"who":"ci@elsewhere","since":"2000-01-01T00:00:00Z","pid":77,"origin":"elsewhere","version":"x","operation":"deploy","heartbeat_seconds":1}"#;
    host_sh(host, &format!("printf '%s\\n' '{remote}' > /opt/cultivate/deploy.lock"));
    let refused = s.deploy(&v4);
    assert!(!refused.success && refused.stderr.contains("ci@elsewhere"), "{}", refused.all());
    assert!(refused.stderr.contains("cargo xtask lock --host e2e --release"), "{}", refused.all());
    let shown = lock_json(&s.config);
    assert_eq!(shown["holder"]["origin"], "elsewhere", "{shown:#}");
    let released = s.config.run(&["lock", "--host", "e2e", "--release"]).unwrap();
    assert!(released.success, "{}", released.all());
    assert!(host_sh(host, "ls /opt/cultivate/deploy.lock 2>/dev/null").trim().is_empty(), "lock --release left it");
    assert_eq!(lock_json(&s.config), serde_json::Value::Null);
    let events = status(&s.config)["events"].clone();
    let last = events.as_array().and_then(|e| e.last()).cloned().unwrap_or_default();
    assert_eq!(last["kind"], "lock-released", "{events:#}");
    assert!(last["detail"].as_str().unwrap_or_default().contains("ci@elsewhere"), "{events:#}");
    let after = s.deploy(&v4);
    assert!(after.success, "deploy after lock --release: {}", after.all());
}

/// `cargo xtask lock --json` on the scenarios' host.
fn lock_json(config: &DeployConfig) -> serde_json::Value {
    let ran = config.run(&["lock", "--host", "e2e", "--json"]).unwrap();
    assert!(ran.success, "lock failed: {}", ran.all());
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("lock --json is not JSON ({e}): {}", ran.stdout))
}

#[test]
fn old_deploy_logs_and_releases_are_pruned() {
    let mut s = scenarios();
    // e2e-v3 deployed, then e2e-v4 serving, after more runs than `keep_logs`.
    let v4 = v4();
    if s.serving().as_deref() != Some("e2e-v4")
        || host_sh(s.host, "ls -d /opt/cultivate/releases/e2e-v3 2>/dev/null").trim().is_empty()
    {
        s.ensure_serving(&v3(), "e2e-v3");
        s.ensure_serving(&v4, "e2e-v4");
    }
    while s.runs < RUNS_BEFORE_PRUNING {
        let again = s.deploy(&v4);
        assert!(again.success, "precondition: redeploying e2e-v4 failed: {}", again.all());
    }
    let host = s.host;
    // Old deploy logs are pruned to `[runtime] keep_logs` (6 here; the scenarios ran
    // more deploys and rollbacks than that); old releases to `keep_releases` (4).
    let logs = host_sh(host, "ls /var/log/cultivate/*.log | wc -l").trim().parse::<usize>().unwrap();
    assert_eq!(logs, 6, "{}", host_sh(host, "ls -l /var/log/cultivate"));
    let releases = host_sh(host, "ls /opt/cultivate/releases");
    assert!(releases.lines().count() <= 5, "releases not pruned: {releases}");
    assert!(releases.contains("e2e-v4") && releases.contains("e2e-v3"), "{releases}");
}

#[test]
fn deploy_to_the_simulated_macos_host_uses_finch_and_refuses_paths_outside_its_vm() {
    require_engine();
    let host = TestHost::start(HostVariant::Macos { finch_vm: FinchVm::Running, finch: true }, false).unwrap();
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
    let volumes = host_sh(&host, &format!("{} volume ls --format '{{{{.Name}}}}'", host.engine_path()));
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
    for service in ["database", "backend-api", "web-frontend", "edge"] {
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
    // The certificates are the host's, in the one directory the frontend mounts.
    let cert_path = host_sh(&host, &format!("sed -n 's/^CERT_PATH=//p' /opt/cultivate/releases/{version}/.env"));
    assert_eq!(cert_path.trim(), "/opt/cultivate/config/certs");
    let key = host_sh(&host, "stat -L -c '%u %a' /opt/cultivate/config/certs/privkey.pem");
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

    renew_certificates_in_place(&host, &https, &certificates);
}

/// `cargo xtask certs` (issue 13): a bad pair is refused with the host unchanged; a
/// renewed pair is served after an in-place reload, with no failed request under HTTPS
/// load and no container restarted.
fn renew_certificates_in_place(host: &TestHost, https: &DeployConfig, certificates: &tls::TestCertificates) {
    let containers = "docker ps -q | xargs docker inspect --format '{{.Name}} {{.State.StartedAt}}' | sort";
    let started = host_sh(host, containers);
    let (_, served) = tls::https_request(host.https_port, &certificates.ca_der, "/").unwrap();
    let events = |config: &DeployConfig| status(config)["events"].as_array().map_or(0, Vec::len);
    let events_before = events(https);

    certificates.renew(-30, -1);
    let refused = https.run(&["certs", "--host", "e2e"]).unwrap();
    assert!(!refused.success, "an expired certificate was installed: {}", refused.all());
    assert!(refused.stderr.contains("fullchain.pem: the certificate expired on"), "{}", refused.all());
    assert_eq!(tls::https_request(host.https_port, &certificates.ca_der, "/").unwrap().1, served);
    assert_eq!(events(https), events_before, "the refused renewal was recorded");

    let renewed = certificates.renew(-1, 90);
    let load = tls::TlsLoad::start(host.https_port, &certificates.ca_der);
    std::thread::sleep(Duration::from_secs(1));
    let ran = https.run(&["certs", "--host", "e2e"]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    assert!(ran.success, "certs failed: {}", ran.all());
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.sent,
        report.failures
    );
    assert_eq!(report.certificates, [served, renewed.clone()], "the old certificate, then the new one");
    assert_eq!(host_sh(host, containers), started, "a container restarted");
    let serving = status(https);
    let event = serving["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["kind"], "certificates", "{event:#}");
    assert!(
        event["detail"].as_str().unwrap().contains(serving["certificate"]["serial"].as_str().unwrap()),
        "{serving:#}"
    );
    assert!(serving["certificate"]["days_left"].as_i64().unwrap() >= 88, "{serving:#}");

    // The same pair again changes nothing.
    let again = https.run(&["certs", "--host", "e2e"]).unwrap();
    assert!(again.success && again.stderr.contains("serves this certificate already"), "{}", again.all());
    assert_eq!(events(https), events_before + 1);
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

/// The host's backups, as `backup --list` would list them: (name, record) per file.
fn backup_records(host: &TestHost) -> Vec<serde_json::Value> {
    let text = host_sh(host, "cat /opt/cultivate/backups/*.dump.json 2>/dev/null; true");
    let mut records: Vec<serde_json::Value> =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    records.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    records
}

/// Issue 13: the backup before a new backend (a failed one stops the deploy,
/// `--skip-backup` is recorded), `backup --download`, `restore` bringing deleted rows
/// back (and to the browser), a corrupt or foreign backup refused with the database
/// untouched, retention, and `audit` recording all of it.
#[test]
fn backups_bring_deleted_rows_back_and_the_audit_trail_records_every_change() {
    let mut s = scenarios();
    let title = s.row();
    s.ensure_v1();
    let v1 = s.v1_version.clone();
    let v2 = v2();
    let v2_path = v2.to_string_lossy().into_owned();
    let history_len = |config: &DeployConfig| status(config)["history"].as_array().unwrap().len();

    // A backup that cannot be written stops the deploy before anything changes.
    host_sh(s.host, "mv /opt/cultivate/backups /opt/cultivate/backups.aside 2>/dev/null; touch /opt/cultivate/backups");
    let before = history_len(&s.config);
    let refused = s.deploy(&v2);
    host_sh(
        s.host,
        "rm -f /opt/cultivate/backups; mv /opt/cultivate/backups.aside /opt/cultivate/backups 2>/dev/null; true",
    );
    assert!(!refused.success, "a deploy went ahead without its backup: {}", refused.all());
    assert!(
        refused.stderr.contains("the backup before the new backend failed, so nothing was changed"),
        "{}",
        refused.all()
    );
    assert_serves(s.host, &v1, &s.config);
    assert_eq!(history_len(&s.config), before, "the refused deploy was recorded");

    // --skip-backup goes ahead, and the history says so.
    let skipped = s.config.run(&["deploy", "--host", "e2e", "--manifest", &v2_path, "--yes", "--skip-backup"]).unwrap();
    assert!(skipped.success, "{}", skipped.all());
    assert_eq!(status(&s.config)["current"]["backup"], "skipped (--skip-backup)");

    // Back on v1, a deploy of a new backend backs the data up first.
    assert!(s.rollback(&["--to", &v1]).success);
    let backed = s.deploy(&v2);
    assert!(backed.success, "{}", backed.all());
    let current = status(&s.config)["current"].clone();
    let name = current["backup"].as_str().expect("the deploy's backup is recorded").to_string();
    let record = backup_records(s.host).into_iter().find(|r| r["name"] == name.as_str()).expect("its record");
    assert_eq!(
        (record["version"].as_str(), record["reason"].as_str()),
        (Some(v1.as_str()), Some("before deploy of e2e-v2"))
    );
    let modes = host_sh(s.host, &format!("stat -c '%a' /opt/cultivate/backups /opt/cultivate/backups/{name}"));
    assert_eq!(modes.split_whitespace().collect::<Vec<_>>(), ["700", "600"], "{modes}");

    // A backup now, copied here with its checksum.
    let second = format!("restored row {}", cultivate_tests::unique(BUILT));
    let body = serde_json::json!({"title": second, "notes": ""}).to_string();
    let url = format!("http://127.0.0.1:{}/api/v1/activities", s.host.http_port);
    assert_eq!(http("POST", &url, &[("content-type", "application/json")], Some(body.as_bytes())).unwrap().status, 201);
    let here = std::env::temp_dir().join(cultivate_tests::unique("backups"));
    let taken = s.config.run(&["backup", "--host", "e2e", "--download", &here.to_string_lossy()]).unwrap();
    assert!(taken.success, "{}", taken.all());
    let path = taken.stdout.trim().to_string();
    let manual = path.rsplit('/').next().unwrap().to_string();
    let local = std::fs::read(here.join(&manual)).unwrap();
    let remote = host_sh(s.host, &format!("sha256sum {path}"));
    assert!(remote.starts_with(&xtask::support::digest::sha256(&local).replace("sha256:", "")), "{remote}");
    assert!(taken.stderr.contains("checked"), "{}", taken.all());

    // Rows deleted, then restored: the same rows through the API and in a browser.
    database_sql(s.host, "DELETE FROM activities");
    assert!(!activities(s.host).contains(&title));
    let backend = service_containers(s.host, "backend");
    let restored = s.config.run(&["restore", "--host", "e2e", "--yes", "--verbose"]).unwrap();
    assert!(restored.success, "{}", restored.all());
    // The backend stops before the data it would still write to is backed up.
    let (stop, dump) = (restored.stderr.find(" stop --time 30 "), restored.stderr.find(" pg_dump --format=custom "));
    assert!(stop.is_some() && dump.is_some() && stop < dump, "{}", restored.all());
    assert!(restored.stderr.contains(&format!("restored {manual}")), "{}", restored.all());
    let listed = activities(s.host);
    assert!(listed.contains(&title) && listed.contains(&second), "{listed}");
    assert_ne!(service_containers(s.host, "backend"), backend, "the backend was not stopped for the restore");
    let dom =
        cultivate_tests::browser::rendered_dom_containing(&format!("http://127.0.0.1:{}/", s.host.http_port), &second)
            .unwrap();
    assert!(dom.contains(&title));
    let records = backup_records(s.host);
    let kept = records.iter().find(|r| r["reason"] == format!("before restore of {manual}")).expect("the data before");
    let list = s.config.run(&["backup", "--list", "--host", "e2e"]).unwrap();
    assert!(list.success && list.stdout.contains(kept["name"].as_str().unwrap()), "{}", list.all());

    // A corrupt backup and a foreign file are refused; the database is untouched.
    let database = database_container(s.host);
    let corrupt = manual.replace(".dump", "9.dump");
    host_sh(
        s.host,
        &format!(
            "cd /opt/cultivate/backups && cp {manual} {corrupt} && sed 's/{manual}/{corrupt}/' {manual}.json > {corrupt}.json \
             && printf 'XX' | dd of={corrupt} bs=1 seek=200 conv=notrunc 2>/dev/null"
        ),
    );
    let refused = s.config.run(&["restore", "--host", "e2e", "--from", &corrupt, "--yes"]).unwrap();
    assert!(
        !refused.success && refused.stderr.contains(&format!("the backup /opt/cultivate/backups/{corrupt} is corrupt")),
        "{}",
        refused.all()
    );
    let foreign = manual.replace(".dump", "8.dump");
    host_sh(
        s.host,
        &format!(
            "cd /opt/cultivate/backups && echo 'SELECT 1;' > {foreign} && sum=$(sha256sum {foreign} | cut -d' ' -f1) && \
             sed -e 's/{manual}/{foreign}/' -e \"s/\\\"sha256\\\":\\\"[0-9a-f]*\\\"/\\\"sha256\\\":\\\"$sum\\\"/\" {manual}.json > {foreign}.json"
        ),
    );
    let refused = s.config.run(&["restore", "--host", "e2e", "--from", &foreign, "--yes"]).unwrap();
    assert!(
        !refused.success && refused.stderr.contains("is not a PostgreSQL backup pg_restore can read"),
        "{}",
        refused.all()
    );
    assert_eq!(database_container(s.host), database, "the database restarted");
    let listed = activities(s.host);
    assert!(listed.contains(&title) && listed.contains(&second), "{listed}");

    // Retention: the newest `[backup] keep` stay, and nothing else in the directory goes.
    host_sh(s.host, "touch /opt/cultivate/backups/notes.txt");
    let keep_two = DeployConfig::with_sections(s.host, "", "[backup]\nkeep = 2\n").unwrap();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100)); // names are per second
        assert!(keep_two.run(&["backup", "--host", "e2e"]).unwrap().success);
    }
    assert_eq!(backup_records(s.host).len(), 2);
    let left = host_sh(s.host, "ls /opt/cultivate/backups");
    assert_eq!(left.lines().filter(|l| l.ends_with(".dump")).count(), 2, "{left}");
    assert!(left.contains("notes.txt"), "{left}");

    // The audit trail: newest first, the restore, the deploys with their backups.
    let audit = s.config.run(&["audit", "--host", "e2e", "--json"]).unwrap();
    assert!(audit.success, "{}", audit.all());
    let trail: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(trail[0]["action"], "restore", "{trail:#?}");
    assert!(
        trail[0]["detail"].as_str().unwrap().contains(&manual) && trail[0]["duration_seconds"].as_f64().unwrap() > 0.0
    );
    let deploy =
        trail.iter().find(|e| e["action"] == "deploy" && e["detail"] == format!("backup {name}")).expect("the deploy");
    assert_eq!(deploy["version"], "e2e-v2");
    assert_eq!(deploy["outcome"], "healthy");
    assert!(deploy["duration_seconds"].as_f64().unwrap() > 0.0, "{deploy:#}");
    assert!(deploy["bytes_shipped"].as_u64().is_some(), "{deploy:#}");
    assert!(deploy["who"].as_str().unwrap().contains('@'), "{deploy:#}");
    assert!(trail.iter().any(|e| e["action"] == "rollback" && e["version"] == v1.as_str()), "{trail:#?}");
    assert!(trail.iter().any(|e| e["detail"] == "backup skipped (--skip-backup)"), "{trail:#?}");
    let text = s.config.run(&["audit", "--host", "e2e"]).unwrap();
    assert!(text.success && text.stdout.lines().nth(1).unwrap_or_default().contains("restore"), "{}", text.all());
    let _ = std::fs::remove_dir_all(&here);
}
