//! Benchmark: `cargo xtask deploy` and `rollback` against the naive path a user would
//! script — `docker save | gzip | ssh 'gunzip | docker load'` of the three images, then
//! `docker-compose up -d` of the three services (the frontend publishing the ports, no
//! edge) and a wait for health — in the same run, each on a fresh test
//! host of its own, for each image store: Docker 20.10 (classic), Docker 28 (classic),
//! Docker 28 with the containerd image store, and Podman 5 (whose naive path is the
//! same with `podman load` and `podman-compose`).
//!
//!     cargo run -p cultivate-tests --example bench_deploy [-- STORE…]
//!
//! STORE: `docker20`, `docker28`, `docker28-containerd`, `podman5` (default: all). Needs a
//! Docker engine and the images (`cargo xtask images`). Prints one table, a row group
//! per store: wall time and bytes over the wire for a first deploy, a redeploy with
//! nothing changed, a deploy changing only the backend (a new 2 MB layer of random
//! bytes, as a new binary brings), a rollback to the previous release (time until
//! healthy), and a deploy changing only the frontend (one more page); for each, the requests through nginx that failed meanwhile (one GET every
//! ~20 ms, 2 s timeout) and whether the database container restarted. Then the
//! backend's changed layer, gzip-compressed, to hold the backend-only figure against.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cultivate_tests::Load;
use cultivate_tests::deploy::{DeployConfig, built_manifest_path, derived_version, derived_version_of};
use cultivate_tests::hosts::{Engine, HostVariant, TestHost};
use xtask::images::{Manifest, Service, read_manifest};
use xtask::model::compose::{RenderInput, render, to_yaml};
use xtask::model::config::Config;
use xtask::model::paths::DeploymentPaths;
use xtask::model::platform::{LinuxEngine, TargetOs};

struct Row {
    store: &'static str,
    step: &'static str,
    ours: Outcome,
    naive: Outcome,
}

/// One path's figures for one step.
#[derive(Clone, Copy, Default)]
struct Outcome {
    seconds: f64,
    mb: f64,
    /// Requests that failed (not 200, or no answer in 2 s) of those sent meanwhile.
    failed: u32,
    sent: u32,
    /// Whether the database container restarted.
    database_restarted: bool,
}

/// The database container's id and start time on `host` (empty when none runs).
fn database_started(host: &TestHost) -> String {
    let cli = host.engine_path();
    let output = host
        .exec(&[
            "sh",
            "-c",
            &format!("{cli} ps -q --filter name=database | xargs -r {cli} inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}'"),
        ])
        .expect("inspecting the database container");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

const STORES: [(&str, HostVariant); 4] = [
    ("docker20", HostVariant::Docker),
    ("docker28", HostVariant::Engine(Engine::Docker28)),
    ("docker28-containerd", HostVariant::Engine(Engine::Docker28Containerd)),
    ("podman5", HostVariant::Engine(Engine::Podman5)),
];

fn main() {
    cultivate_tests::require_engine();
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for name in &wanted {
        assert!(
            STORES.iter().any(|(store, _)| store == name),
            "unknown store {name:?}: docker20, docker28, docker28-containerd, podman5"
        );
    }
    let v1 = built_manifest_path();
    let v2 = derived_version("bench-v2", "RUN head -c 2000000 /dev/urandom > /tmp/cultivate-bench-binary\n")
        .expect("v2 images");
    let front = derived_version_of(
        "bench-front",
        Service::WebFrontend,
        "USER root\nRUN echo bench > /usr/share/cultivate/html/release.txt\nUSER 101:101\n",
    )
    .expect("frontend-changed images");
    let manifests = [
        read_manifest(&v1).expect("v1 manifest"),
        read_manifest(&v2).expect("v2 manifest"),
        read_manifest(&front).expect("frontend-changed manifest"),
    ];
    let changed_layer = top_layer_gzipped_mb(&manifests[1]);

    let mut rows = Vec::new();
    for (store, variant) in STORES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == store) {
            continue;
        }
        rows.extend(bench_store(store, variant, [&v1, &v2, &front], &manifests));
    }

    println!(
        "\nDeploy to a test host over SSH on loopback (2 cores); MB = compressed bytes over the wire; failed = \
         requests through nginx during the step (GET every ~20 ms, 2 s timeout) that failed, of those sent; db = \
         the database container restarted\n"
    );
    println!(
        "{:<20} {:<38} {:>8} {:>8} {:>12} {:>4} {:>8} {:>8} {:>12} {:>4}",
        "store", "step", "xtask", "MB", "failed", "db", "naive", "MB", "failed", "db"
    );
    let restarted = |yes: bool| if yes { "yes" } else { "no" };
    for row in &rows {
        let (ours, naive) = (row.ours, row.naive);
        println!(
            "{:<20} {:<38} {:>7.1}s {:>8.2} {:>12} {:>4} {:>7.1}s {:>8.2} {:>12} {:>4}",
            row.store,
            row.step,
            ours.seconds,
            ours.mb,
            format!("{}/{}", ours.failed, ours.sent),
            restarted(ours.database_restarted),
            naive.seconds,
            naive.mb,
            format!("{}/{}", naive.failed, naive.sent),
            restarted(naive.database_restarted),
        );
    }
    println!("\nthe backend's changed layer, gzip -6: {changed_layer:.2} MB");
}

fn bench_store(
    store: &'static str,
    variant: HostVariant,
    [v1, v2, front]: [&Path; 3],
    manifests: &[Manifest; 3],
) -> Vec<Row> {
    let ours_host = TestHost::start(variant, false).expect("test host");
    let naive_host = TestHost::start(variant, false).expect("test host");
    let config = DeployConfig::new(&ours_host, "").expect("config");
    let engine =
        if variant == HostVariant::Engine(Engine::Podman5) { LinuxEngine::Podman } else { LinuxEngine::Docker };
    let naive = Naive::new(&naive_host, engine);

    let mut rows = Vec::new();
    let mut measure = |step: &'static str, ours: &mut dyn FnMut() -> f64, naive: &mut dyn FnMut() -> f64| {
        eprintln!("== {store}: {step}");
        let run = |host: &TestHost, path: &mut dyn FnMut() -> f64| {
            let database = database_started(host);
            // Under load only once something serves: a first deploy has nothing to fail.
            let load = (!database.is_empty()).then(|| Load::start(host.http_port));
            let started = Instant::now();
            let mb = path();
            let seconds = started.elapsed().as_secs_f64();
            let report = load.map(Load::stop).unwrap_or_default();
            if !report.failures.is_empty() {
                eprintln!("   failed requests: {:?}", report.failures);
            }
            let (failed, sent) = report.counts();
            let database_restarted = !database.is_empty() && database_started(host) != database;
            Outcome { seconds, mb, failed, sent, database_restarted }
        };
        let ours = run(&ours_host, ours);
        let naive = run(&naive_host, naive);
        rows.push(Row { store, step, ours, naive });
    };
    let deploy = |manifest: &Path| -> f64 {
        let ran = config
            .run(&["deploy", "--host", "e2e", "--manifest", &manifest.to_string_lossy(), "--yes"])
            .expect("deploy");
        assert!(ran.success, "deploy failed: {}", ran.all());
        if let Some(times) = ran.stdout.lines().find(|l| l.trim_start().starts_with("time:")) {
            eprintln!("   xtask {}", times.trim());
        }
        ran.shipped_mb().expect("shipped bytes in the summary")
    };
    measure("first deploy", &mut || deploy(v1), &mut || naive.deploy(&manifests[0]));
    measure("redeploy, nothing changed", &mut || deploy(v1), &mut || naive.deploy(&manifests[0]));
    measure("deploy, backend changed", &mut || deploy(v2), &mut || naive.deploy(&manifests[1]));
    measure(
        "rollback to previous (until healthy)",
        &mut || {
            let ran = config.run(&["rollback", "--host", "e2e", "--yes"]).expect("rollback");
            assert!(ran.success, "rollback failed: {}", ran.all());
            0.0
        },
        &mut || naive.up(&manifests[0]),
    );
    measure("deploy, frontend changed", &mut || deploy(front), &mut || naive.deploy(&manifests[2]));
    rows
}

/// The backend image's last layer (the one the change added), gzip -6, in MB.
fn top_layer_gzipped_mb(manifest: &Manifest) -> f64 {
    let reference = &manifest.image(Service::BackendApi).expect("backend image").reference;
    let saved = Command::new("docker").args(["save", reference]).output().expect("docker save");
    assert!(saved.status.success(), "docker save {reference} failed");
    let mut archive = tar::Archive::new(&saved.stdout[..]);
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().expect("save stream") {
        let mut entry = entry.expect("save stream");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("save stream");
        files.insert(path, data);
    }
    let listed: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let top = listed[0]["Layers"].as_array().and_then(|l| l.last()).and_then(|l| l.as_str()).expect("layers");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&files[top]).expect("gzip");
    gzip.finish().expect("gzip").len() as f64 / 1e6
}

/// The deploy.sh a user would write: ship the three images, write a compose file of the
/// three services, `docker-compose up -d` (`podman-compose`), poll until healthy.
struct Naive<'a> {
    host: &'a TestHost,
    config: Config,
    engine: LinuxEngine,
}

impl<'a> Naive<'a> {
    fn new(host: &'a TestHost, engine: LinuxEngine) -> Naive<'a> {
        let config = Config::parse(
            "[app]\nname = \"naive\"\n[health]\nstart_period_seconds = 20\ninterval_seconds = 1\n",
            "bench",
            &|_| None,
        )
        .expect("config");
        Naive { host, config, engine }
    }

    fn ssh(&self, command: &str, input: Option<&[u8]>) -> String {
        let args = self.host.ssh_args("root");
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            stdin.write_all(input).expect("writing to ssh");
        }
        drop(stdin);
        let output = child.wait_with_output().expect("ssh");
        assert!(output.status.success(), "`{command}` failed on the naive host");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Ships every image, then starts the stack; returns MB sent.
    fn deploy(&self, manifest: &Manifest) -> f64 {
        let mut sent = 0u64;
        for image in manifest.images.iter().filter(|i| i.service != Service::Edge) {
            let mut save = Command::new("sh")
                .args(["-c", "docker save \"$1\" | gzip", "save", &image.reference])
                .stdout(Stdio::piped())
                .spawn()
                .expect("docker save | gzip");
            let args = self.host.ssh_args("root");
            let mut ssh = Command::new(&args[0])
                .args(&args[1..])
                .arg(format!("gunzip | {} load", self.engine))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("ssh");
            let mut input = save.stdout.take().expect("stdout");
            let mut output = ssh.stdin.take().expect("stdin");
            let mut buffer = vec![0; 1 << 16];
            loop {
                let n = input.read(&mut buffer).expect("reading the image stream");
                if n == 0 {
                    break;
                }
                output.write_all(&buffer[..n]).expect("writing to ssh");
                sent += n as u64;
            }
            drop(output);
            assert!(save.wait().expect("save").success() && ssh.wait().expect("ssh").success(), "naive ship failed");
        }
        self.up(manifest);
        sent as f64 / 1e6
    }

    /// Writes the compose file for `manifest`'s version and brings it up, until healthy.
    fn up(&self, manifest: &Manifest) -> f64 {
        let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &self.config, None).expect("paths");
        let paths = DeploymentPaths { base: "/opt/naive".into(), volumes: "/opt/naive/volumes".into(), ..paths };
        let rendered = render(RenderInput {
            config: &self.config,
            paths: &paths,
            engine: self.engine,
            version: &manifest.version,
            images: &[],
            secrets: &[],
            start_interval: false,
        });
        // Three services, the frontend publishing the ports: no edge.
        let mut compose = rendered.compose.clone();
        if let Some(edge) = compose.services.edge.take() {
            compose.services.frontend.ports = edge.ports;
        }
        let mut env = rendered.env.clone();
        for (key, value) in env.vars.iter_mut() {
            if key == "DEPLOYMENT_PATH" {
                *value = "/opt/naive".into();
            }
        }
        self.ssh("mkdir -p /opt/naive/volumes/db_data && chown 999:999 /opt/naive/volumes/db_data && chmod 700 /opt/naive/volumes/db_data && cat > /opt/naive/docker-compose.yml", Some(to_yaml(&compose).as_bytes()));
        self.ssh("cat > /opt/naive/.env", Some(env.render().as_bytes()));
        // `docker-compose` is v1 on Debian 12 and v2 (same command line) on sid.
        // podman-compose needs --force-recreate (see release::stack), and someone to run
        // the checks where no systemd timer does: the loop below.
        let (up, check) = match self.engine {
            LinuxEngine::Docker => (
                "docker-compose -p naive up -d",
                "docker inspect --format '{{.State.Health.Status}}' $(docker ps -q --filter label=com.docker.compose.project=naive)",
            ),
            LinuxEngine::Podman => (
                "podman-compose -p naive up -d --force-recreate",
                "for c in $(podman ps -q --filter label=com.docker.compose.project=naive); do \
                 podman healthcheck run $c >/dev/null 2>&1; podman inspect --format '{{.State.Health.Status}}' $c; done",
            ),
        };
        self.ssh(&format!("cd /opt/naive && {up} >/dev/null 2>&1"), None);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let states = self.ssh(check, None);
            if states.lines().count() == 3 && states.lines().all(|s| s.trim() == "healthy") {
                return 0.0;
            }
            assert!(Instant::now() < deadline, "the naive stack never became healthy: {states}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
