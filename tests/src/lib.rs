//! Helpers for the container tests: the engine check, the images under test, resources
//! that clean up after themselves, a shared running stack, and plain HTTP.
//!
//! Every container, volume and network a test creates carries the label
//! `cultivate.test.pid=<pid>`: removed by its guard when the test ends, by an exit
//! handler for the shared stack, and swept on the next run if the process was killed.

pub mod browser;
pub mod deploy;
pub mod hosts;
pub mod vm;
use std::path::PathBuf;
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xtask::images::{Manifest, Service};
use xtask::support::command::Cmd;
use xtask::support::project::Project;

pub const LABEL: &str = "cultivate.test.pid";

/// Runs `docker` with `args`, returning trimmed stdout; errors carry stderr.
pub fn docker<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("docker").args(args).output()
}

/// Runs `docker` with `args` and returns the whole output, whatever the exit status.
pub fn docker_capture<I, S>(args: I) -> Result<std::process::Output>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("docker").args(args).capture()
}

/// Fails the calling test (never skips it) when no engine answers.
pub fn require_engine() {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let outcome =
        CHECKED.get_or_init(|| docker(["info", "--format", "{{.ServerVersion}}"]).map_err(|e| format!("{e:#}")));
    if let Err(why) = outcome {
        panic!(
            "these tests run the images in real containers and need a Docker engine, but none answers: {why}\n\
             Start one (`bash .ci/run` installs and starts it on Debian) and build the images with `cargo xtask images`, \
             or run everything with `cargo xtask verify`."
        );
    }
}

pub fn project() -> Project {
    Project::locate().expect("workspace root")
}

/// The images under test: the manifest `cargo xtask images` wrote (or the one named by
/// CULTIVATE_IMAGES_MANIFEST). Missing images fail the test with the fix.
pub fn manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        require_engine();
        let path = std::env::var_os("CULTIVATE_IMAGES_MANIFEST")
            .map(PathBuf::from)
            .unwrap_or_else(|| xtask::images::latest_manifest_path(&project()));
        let manifest = xtask::images::read_manifest(&path).unwrap_or_else(|e| {
            panic!("{e:#}\nBuild the images first: `cargo xtask images` (or run `cargo xtask verify`).")
        });
        for service in Service::ALL {
            let record =
                manifest.image(service).unwrap_or_else(|| panic!("{} lists no {service} image", path.display()));
            if let Err(e) = docker(["image", "inspect", "--format", "{{.Id}}", record.reference.as_str()]) {
                panic!(
                    "image {} from {} is not in the engine: {e:#}\nRun `cargo xtask images`.",
                    record.reference,
                    path.display()
                );
            }
        }
        manifest
    })
}

/// `image:tag` of the image under test for `service`.
pub fn image(service: Service) -> String {
    manifest().image(service).map(|record| record.reference.clone()).expect("checked in manifest()")
}

/// A name unique to this process and call, e.g. `ct-4242-db-3`.
pub fn unique(purpose: &str) -> String {
    static COUNTER: Mutex<u32> = Mutex::new(0);
    let mut counter = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
    *counter += 1;
    format!("ct-{}-{purpose}-{}", std::process::id(), *counter)
}

/// `--label cultivate.test.pid=<pid>`, for every resource a test creates.
pub fn label_args() -> [String; 2] {
    sweep_stale_resources();
    ["--label".to_string(), format!("{LABEL}={}", std::process::id())]
}

/// Removes resources left by test processes that no longer exist (a killed run).
fn sweep_stale_resources() {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        for kind in ["container", "volume", "network"] {
            let Ok(listing) = docker(
                [kind, "ls", "-a", "--filter", &format!("label={LABEL}"), "--format", "{{.ID}}"]
                    .into_iter()
                    .filter(|arg| !(kind != "container" && *arg == "-a")),
            ) else {
                continue;
            };
            for id in listing.lines().filter(|line| !line.is_empty()) {
                let pid = docker([kind, "inspect", "--format", &format!("{{{{index .Labels \"{LABEL}\"}}}}"), id])
                    .or_else(|_| {
                        docker([kind, "inspect", "--format", &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"), id])
                    })
                    .unwrap_or_default();
                let alive = pid.parse::<u32>().is_ok_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
                if !alive {
                    let _ = remove_resource(kind, id);
                }
            }
        }
    });
}

fn remove_resource(kind: &str, name: &str) -> Result<String> {
    match kind {
        "container" => docker(["rm", "-f", "-v", name]),
        "volume" => docker(["volume", "rm", "-f", name]),
        _ => docker(["network", "rm", name]),
    }
}

/// A container, volume or network removed when this guard drops.
#[derive(Debug)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
}

impl Resource {
    pub fn volume(purpose: &str) -> Result<Resource> {
        Resource::create("volume", purpose)
    }

    pub fn network(purpose: &str) -> Result<Resource> {
        Resource::create("network", purpose)
    }

    /// `docker volume create` / `docker network create` with the test label.
    fn create(kind: &'static str, purpose: &str) -> Result<Resource> {
        let name = unique(purpose);
        let mut args = vec![kind.to_string(), "create".to_string()];
        args.extend(label_args());
        args.push(name.clone());
        docker(args)?;
        Ok(Resource { kind, name })
    }

    /// `docker run -d --name <unique> <labels> <args…>`.
    pub fn container(purpose: &str, args: &[String]) -> Result<Resource> {
        let name = unique(purpose);
        let mut all = vec!["run".to_string(), "-d".to_string(), "--name".to_string(), name.clone()];
        all.extend(label_args());
        all.extend(args.iter().cloned());
        docker(all)?;
        Ok(Resource { kind: "container", name })
    }

    /// Keeps the resource until the test process exits (for fixtures shared by tests).
    pub fn keep_until_exit(self) -> String {
        register_exit_cleanup();
        let name = self.name.clone();
        EXIT_CLEANUP.lock().unwrap_or_else(|e| e.into_inner()).push((self.kind, self.name.clone()));
        std::mem::forget(self);
        name
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        let _ = remove_resource(self.kind, &self.name);
    }
}

static EXIT_CLEANUP: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

extern "C" fn cleanup_at_exit() {
    let mut resources = EXIT_CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
    // Containers first, then the volumes and networks they used.
    resources.sort_by_key(|(kind, _)| match *kind {
        "container" => 0,
        "volume" => 1,
        _ => 2,
    });
    for (kind, name) in resources.drain(..) {
        let _ = remove_resource(kind, &name);
    }
}

fn register_exit_cleanup() {
    static REGISTERED: Once = Once::new();
    // The test harness ends with process::exit, which runs atexit handlers.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
}

/// Waits until `container` reports healthy; fails with its logs if it exits or the
/// time runs out.
pub fn wait_healthy(container: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let state = docker([
            "inspect",
            "--format",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            container,
        ])?;
        match state.split_whitespace().collect::<Vec<_>>().as_slice() {
            [_, "healthy"] => return Ok(()),
            ["exited" | "dead", ..] => bail!("{container} stopped ({state}); its logs:\n{}", logs(container)),
            _ if Instant::now() >= deadline => {
                bail!("{container} not healthy after {limit:?} ({state}); its logs:\n{}", logs(container))
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

pub fn logs(container: &str) -> String {
    match docker_capture(["logs", "--tail", "60", container]) {
        Ok(output) => format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        Err(e) => format!("(no logs: {e:#})"),
    }
}

/// The loopback port the engine published for `container_port`.
pub fn published_port(container: &str, container_port: u16) -> Result<u16> {
    let mapping = docker(["port", container, &format!("{container_port}/tcp")])?;
    let first = mapping.lines().next().context("no published port")?;
    let port = first.rsplit(':').next().context("unexpected `docker port` output")?;
    port.parse().with_context(|| format!("unexpected `docker port` output {mapping:?}"))
}

/// Runs a command in a container, returning the whole output.
pub fn exec(container: &str, user: Option<&str>, command: &[&str]) -> Result<std::process::Output> {
    let mut args = vec!["exec".to_string()];
    if let Some(user) = user {
        args.extend(["--user".to_string(), user.to_string()]);
    }
    args.push(container.to_string());
    args.extend(command.iter().map(|s| s.to_string()));
    docker_capture(args)
}

/// The TCP ports a container's network namespace listens on (from /proc/net/tcp{,6}).
pub fn listening_tcp_ports(container: &str) -> Result<Vec<u16>> {
    let output = exec(container, None, &["cat", "/proc/net/tcp", "/proc/net/tcp6"])?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(parse_listening_ports(&text))
}

/// Docker's embedded DNS server (127.0.0.11, as /proc/net/tcp writes it) listens on a
/// random TCP port inside every container on a user-defined network; it is the
/// engine's, not the container's.
const DOCKER_DNS: &str = "0B00007F";

/// Local ports of sockets in state 0A (LISTEN) in /proc/net/tcp format, leaving out
/// Docker's embedded DNS server.
pub fn parse_listening_ports(text: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            let (address, port) = local.rsplit_once(':')?;
            if *state != "0A" || address == DOCKER_DNS {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(15))
}

fn agent_with_timeout(limit: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(limit))
        .build()
        .into()
}

/// `GET url` (loopback) given up after `limit`: the status, or the error.
pub fn get_within(url: &str, limit: Duration) -> Result<u16> {
    assert!(url.starts_with("http://127.0.0.1:"), "tests talk to loopback only, not {url}");
    let response = agent_with_timeout(limit).get(url).call().with_context(|| format!("GET {url}"))?;
    Ok(response.status().as_u16())
}

/// One HTTP request to a loopback URL. `body` is sent as JSON when present.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response> {
    assert!(url.starts_with("http://127.0.0.1:"), "tests talk to loopback only, not {url}");
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.map(<[u8]>::to_vec).unwrap_or_default())?;
    let mut response = agent().run(request).with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_vec()?;
    Ok(Response { status, headers, body })
}

pub fn get(url: &str) -> Result<Response> {
    http("GET", url, &[], None)
}

/// Retries `GET url` until it answers (any status) or `limit` passes.
pub fn get_when_up(url: &str, limit: Duration) -> Result<Response> {
    let deadline = Instant::now() + limit;
    loop {
        match get(url) {
            Ok(response) => return Ok(response),
            Err(e) if Instant::now() >= deadline => return Err(e.context(format!("{url} did not answer in {limit:?}"))),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The three services running together the way a deploy runs them: one network,
/// the socket volume shared by database and backend only, the data volume on the
/// database only, and only the frontend published (on loopback).
#[derive(Debug)]
pub struct Stack {
    pub network: String,
    pub socket_volume: String,
    pub data_volume: String,
    pub database: String,
    pub backend: String,
    pub frontend: String,
    pub http_port: u16,
}

impl Stack {
    /// One stack for the whole test process, started on first use.
    pub fn shared() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| Stack::start().unwrap_or_else(|e| panic!("starting the test stack: {e:#}")))
    }

    fn start() -> Result<Stack> {
        let network = Resource::network("net")?.keep_until_exit();
        let socket_volume = Resource::volume("socket")?.keep_until_exit();
        let data_volume = Resource::volume("data")?.keep_until_exit();
        let database = run_database(&network, &socket_volume, &data_volume)?.keep_until_exit();
        wait_healthy(&database, Duration::from_secs(120))?;
        let backend = Resource::container(
            "backend",
            &strings(&[
                "--network",
                &network,
                "--network-alias",
                "backend",
                "-v",
                &format!("{socket_volume}:/var/run/postgresql"),
                &image(Service::BackendApi),
            ]),
        )?
        .keep_until_exit();
        wait_healthy(&backend, Duration::from_secs(90))?;
        let frontend = Resource::container(
            "frontend",
            &strings(&["--network", &network, "-p", "127.0.0.1::80", &image(Service::WebFrontend)]),
        )?
        .keep_until_exit();
        wait_healthy(&frontend, Duration::from_secs(60))?;
        let http_port = published_port(&frontend, 80)?;
        Ok(Stack { network, socket_volume, data_volume, database, backend, frontend, http_port })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }
}

/// Starts a database container on `network` with the given volumes.
pub fn run_database(network: &str, socket_volume: &str, data_volume: &str) -> Result<Resource> {
    Resource::container(
        "db",
        &strings(&[
            "--network",
            network,
            "--network-alias",
            "database",
            "-v",
            &format!("{socket_volume}:/var/run/postgresql"),
            "-v",
            &format!("{data_volume}:/var/lib/postgresql/data"),
            &image(Service::Database),
        ]),
    )
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_are_read_from_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue\n\
                    0: 00000000:0050 00000000:0000 0A 00000000:00000000\n\
                    1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000\n\
                    2: 0B00007F:AC8D 00000000:0000 0A 00000000:00000000\n\
                    0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(parse_listening_ports(text), vec![80, 443]);
        assert!(parse_listening_ports("  sl  local_address rem_address   st\n").is_empty());
    }
}

/// Requests through a host's nginx while something happens to it: one
/// `GET /api/v1/activities` about every 20 ms, each given up after 2 s, for at most
/// 10 minutes.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    worker: std::thread::JoinHandle<LoadReport>,
}

/// What a [`Load`] saw: the failures (status and what went wrong), of how many sent.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: u32,
    pub failures: Vec<String>,
}

impl LoadReport {
    /// (failed, sent)
    pub fn counts(&self) -> (u32, u32) {
        (self.failures.len() as u32, self.sent)
    }
}

impl Load {
    pub fn start(port: u16) -> Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{port}/api/v1/activities");
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut report = LoadReport::default();
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                report.sent += 1;
                let started = Instant::now();
                match get_within(&url, Duration::from_secs(2)) {
                    Ok(200) => {}
                    Ok(status) => report.failures.push(format!("{status} after {:?}", started.elapsed())),
                    Err(err) => report.failures.push(format!("{err:#} after {:?}", started.elapsed())),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            report
        });
        Load { stop, worker }
    }

    pub fn stop(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.worker.join().expect("the load thread")
    }
}
