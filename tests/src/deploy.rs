//! Helpers for the end-to-end deploy tests: the xtask binary as a user runs it, a
//! deploy configuration pointing at a test host, and image versions made from the
//! built images (a changed backend, a broken one) with manifests naming them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::images::{Manifest, Service};

use crate::hosts::TestHost;
use crate::{docker, get_when_up, manifest, project, unique};

/// The xtask binary, built once per test process (`cargo build -p xtask`).
pub fn xtask_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        use xtask::support::cargo::{JSON_MESSAGES, built_executable, cargo};
        let build = cargo(&["build", "-q", "-p", "xtask", JSON_MESSAGES]).dir(&project().root);
        // JSON messages on stdout; a failure carries the rendered diagnostics.
        let messages = build.output().unwrap_or_else(|err| panic!("{err:#}"));
        built_executable(&messages, "xtask").unwrap_or_else(|| panic!("`{build}` named no xtask executable"))
    })
}

/// The tests' `[health]`: a check a second, so that releases get healthy quickly.
const QUICK_HEALTH: &str = "timeout_seconds = 120\ninterval_seconds = 1\nretries = 3\nstart_period_seconds = 20\n";

/// A deploy configuration for `host` as `[hosts.e2e]`, with quick health settings and
/// a short lock timeout so the stale-lock test need not wait long.
pub struct DeployConfig {
    pub path: PathBuf,
    pub known_hosts: PathBuf,
}

/// The folder a configuration's deploys take their secrets from: its own, beside the
/// file (none until a test writes one), so that no test ships a developer's real
/// `secrets/` to a test host.
fn secrets_dir_of(config_path: &Path) -> PathBuf {
    config_path.with_extension("secrets")
}

impl DeployConfig {
    /// `host_extra` goes into `[hosts.e2e]`.
    pub fn new(host: &TestHost, host_extra: &str) -> Result<DeployConfig> {
        DeployConfig::with_sections(host, host_extra, "")
    }

    /// With `sections` (whole tables, e.g. `[http]`) added to the file.
    pub fn with_sections(host: &TestHost, host_extra: &str, sections: &str) -> Result<DeployConfig> {
        DeployConfig::with_runtime(host, host_extra, sections, "keep_releases = 4\nkeep_logs = 6\n")
    }

    /// Logging in as `user` instead of root.
    pub fn with_user(host: &TestHost, user: &str, host_extra: &str) -> Result<DeployConfig> {
        DeployConfig::write(host, user, host_extra, "", "keep_releases = 4\nkeep_logs = 6\n", QUICK_HEALTH)
    }

    /// With `runtime` (lines of `[runtime]`, besides the short lock timeout) too.
    pub fn with_runtime(host: &TestHost, host_extra: &str, sections: &str, runtime: &str) -> Result<DeployConfig> {
        DeployConfig::write(host, "root", host_extra, sections, runtime, QUICK_HEALTH)
    }

    /// With `health` (the lines of `[health]`) instead of the quick settings.
    pub fn with_health(host: &TestHost, health: &str) -> Result<DeployConfig> {
        DeployConfig::write(host, "root", "", "", "keep_releases = 4\nkeep_logs = 6\n", health)
    }

    fn write(
        host: &TestHost,
        user: &str,
        host_extra: &str,
        sections: &str,
        runtime: &str,
        health: &str,
    ) -> Result<DeployConfig> {
        let path = std::env::temp_dir().join(format!("{}.toml", unique("deploy-config")));
        let text = format!(
            "[app]\nname = \"cultivate\"\n\
             [health]\n{health}\
             [runtime]\nlock_timeout_seconds = 3\n{runtime}{sections}\n\
             [hosts.e2e]\naddress = \"127.0.0.1\"\nuser = {user:?}\nport = {}\nidentity_file = {:?}\n{host_extra}",
            host.ssh_port,
            host.key.display().to_string()
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(DeployConfig { path, known_hosts: host.known_hosts.clone() })
    }

    /// Several hosts, `[hosts.NAME]` each (as root), in one file with `sections`; their
    /// host keys in one known_hosts file. A host given as `None` is a name whose
    /// address answers nothing (a closed loopback port): a host that is down.
    pub fn for_hosts(hosts: &[(&str, Option<&TestHost>)], sections: &str) -> Result<DeployConfig> {
        DeployConfig::for_hosts_with_health(hosts, sections, QUICK_HEALTH)
    }

    /// The same with `health` (lines of `[health]`) instead of the quick settings.
    pub fn for_hosts_with_health(
        hosts: &[(&str, Option<&TestHost>)],
        sections: &str,
        health: &str,
    ) -> Result<DeployConfig> {
        let path = std::env::temp_dir().join(format!("{}.toml", unique("fleet-config")));
        let mut text = format!(
            "[app]\nname = \"cultivate\"\n[health]\n{health}[runtime]\nlock_timeout_seconds = 3\n\
             keep_releases = 4\nkeep_logs = 6\n[ssh]\nconnect_timeout_seconds = 3\n{sections}\n"
        );
        let mut known_hosts = String::new();
        // One key per test process: every host (and the one that is down) names it.
        let key = hosts.iter().find_map(|(_, h)| *h).context("at least one running host")?.key.display().to_string();
        for (name, host) in hosts {
            let port = match host {
                Some(host) => {
                    known_hosts.push_str(&std::fs::read_to_string(&host.known_hosts)?);
                    host.ssh_port
                }
                None => closed_port()?,
            };
            text.push_str(&format!(
                "[hosts.{name}]\naddress = \"127.0.0.1\"\nuser = \"root\"\nport = {port}\nidentity_file = {key:?}\n"
            ));
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let known = path.with_extension("known_hosts");
        std::fs::write(&known, known_hosts).with_context(|| format!("writing {}", known.display()))?;
        Ok(DeployConfig { path, known_hosts: known })
    }

    /// `xtask --config FILE <args>`, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(xtask_binary());
        command
            .arg("--config")
            .arg(&self.path)
            .args(args)
            .env("CULTIVATE_KNOWN_HOSTS", &self.known_hosts)
            .env("CULTIVATE_SECRETS_DIR", self.secrets_dir())
            .current_dir(&project().root)
            .stdin(Stdio::null());
        command
    }

    /// Runs the xtask to completion (killed after `limit_seconds`).
    pub fn run(&self, args: &[&str]) -> Result<Ran> {
        let mut command = self.command(args);
        let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("starting the xtask")?;
        wait_bounded(child, 900)
    }

    /// The folder this configuration's deploys read their secrets from.
    pub fn secrets_dir(&self) -> PathBuf {
        secrets_dir_of(&self.path)
    }

    /// Writes the secret `name` (mode 0600) for the next deploys.
    pub fn write_secret(&self, name: &str, content: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.secrets_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join(name);
        std::fs::write(&file, content).with_context(|| format!("writing {}", file.display()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", file.display()))
    }

    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("starting the xtask")
    }
}

impl Drop for DeployConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // The known_hosts file of [`DeployConfig::for_hosts`] (none for one host).
        let _ = std::fs::remove_file(self.path.with_extension("known_hosts"));
        let _ = std::fs::remove_dir_all(self.secrets_dir());
    }
}

/// A loopback port nothing listens on (bound, then let go).
pub fn closed_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A finished xtask run.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }

    /// The MB figure of the summary's "image bytes shipped" line.
    pub fn shipped_mb(&self) -> Option<f64> {
        self.stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix("image bytes shipped: ")?.strip_suffix(" MB")?.parse().ok())
    }
}

/// Waits for `child` at most `limit_seconds`, then kills it.
pub fn wait_bounded(mut child: Child, limit_seconds: u64) -> Result<Ran> {
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit_seconds);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the xtask did not finish in {limit_seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    Ok(Ran {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A version of the stack derived from the built images, as a backend-only commit gives:
/// the built database and frontend under the new tag (the same ids, as a new commit
/// that leaves them alone gives) and the backend rebuilt `FROM` the built one with
/// `backend_extra` Dockerfile lines (a changed backend). Returns the manifest naming them.
/// Each version is built once per test process (later calls return the same manifest),
/// so tests sharing a version share its images.
pub fn derived_version(version: &str, backend_extra: &str) -> Result<PathBuf> {
    derived_version_of(version, Service::BackendApi, backend_extra)
}

/// [`derived_version`] with `changed` the one service rebuilt with `extra` lines.
pub fn derived_version_of(version: &str, changed: Service, extra: &str) -> Result<PathBuf> {
    static BUILT: Mutex<BTreeMap<String, (Service, String, PathBuf)>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((service, lines, path)) = built.get(version) {
        if (*service, lines.as_str()) != (changed, extra) {
            bail!("{version} was derived already, from other {service} lines: {lines:?}");
        }
        return Ok(path.clone());
    }
    let path = build_derived_version(version, changed, extra)?;
    built.insert(version.to_string(), (changed, extra.to_string(), path.clone()));
    Ok(path)
}

fn build_derived_version(version: &str, changed: Service, extra: &str) -> Result<PathBuf> {
    let built = manifest();
    let mut derived: Manifest = built.clone();
    derived.version = version.to_string();
    for record in derived.images.iter_mut() {
        let reference = format!("{}:{version}", record.image);
        if record.service == changed {
            let dockerfile = format!("FROM {}\nLABEL cultivate.test.version={version}\n{extra}", record.reference);
            build_from_stdin(&reference, &dockerfile)?;
        } else {
            // Unchanged inputs rebuild to the same image in a new commit: same id.
            docker(["tag", record.reference.as_str(), reference.as_str()])?;
        }
        let inspected = docker(["image", "inspect", "--format", "{{.Id}}", reference.as_str()])?;
        record.tag = version.to_string();
        record.reference = reference;
        record.id = inspected.trim().to_string();
    }
    let path = std::env::temp_dir().join(format!("{}.json", unique(&format!("manifest-{version}"))));
    std::fs::write(&path, serde_json::to_string_pretty(&derived)?)?;
    Ok(path)
}

fn build_from_stdin(tag: &str, dockerfile: &str) -> Result<()> {
    let mut child = Command::new("docker")
        .args(["build", "--force-rm", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting docker build")?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, dockerfile.as_bytes())?;
    let output: Output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("docker build of {tag} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// The built images' manifest file (what `cargo xtask images` wrote).
pub fn built_manifest_path() -> PathBuf {
    std::env::var_os("CULTIVATE_IMAGES_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| xtask::images::latest_manifest_path(&project()))
}

/// `deploy --host e2e --manifest FILE --yes`, run to completion.
pub fn deploy(config: &DeployConfig, manifest: &Path) -> Ran {
    let manifest = manifest.to_string_lossy().into_owned();
    config.run(&["deploy", "--host", "e2e", "--manifest", &manifest, "--yes"]).expect("running deploy")
}

/// `status --host e2e --json`, which must succeed.
pub fn status(config: &DeployConfig) -> serde_json::Value {
    status_of(config, "e2e")
}

/// `status --host NAME --json`, which must succeed.
pub fn status_of(config: &DeployConfig, name: &str) -> serde_json::Value {
    let ran = config.run(&["status", "--host", name, "--json"]).expect("running status");
    assert!(ran.success, "status failed: {}", ran.all());
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", ran.stdout))
}

/// The images the running containers use, by service.
pub fn running_images(config: &DeployConfig) -> Vec<(String, String)> {
    let status = status(config);
    status["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| (s["service"].as_str().unwrap().to_string(), s["image"].as_str().unwrap().to_string()))
        .collect()
}

/// `version` is current and healthy, every service runs the image that release
/// records for it (its own, or, unchanged, an earlier release's), and `/health` answers.
pub fn assert_serves(host: &TestHost, version: &str, config: &DeployConfig) {
    let status = status(config);
    assert_eq!(status["current"]["version"], version, "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["drift"], serde_json::json!([]), "{status:#}");
    let recorded = |service: &str| {
        let images = status["current"]["images"].as_array().expect("images");
        let image = images.iter().find(|i| i["service"] == service).expect("each service's image is recorded");
        image["reference"].as_str().unwrap_or_default().to_string()
    };
    let names = [("database", "database"), ("backend", "backend-api"), ("frontend", "web-frontend"), ("edge", "edge")];
    for (service, image) in running_images(config) {
        let (_, name) = names.iter().find(|(s, _)| *s == service).expect("a known service");
        assert!(xtask::model::image::names_same_image(&image, &recorded(name)), "{service} runs {image}: {status:#}");
    }
    let health = get_when_up(&format!("http://127.0.0.1:{}/health", host.http_port), Duration::from_secs(30)).unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
}

/// Where the host's edge routes new connections (deploy/edge/route.sh), `cli` being
/// the host's engine command (`docker`, `podman`).
pub fn edge_route(host: &TestHost, cli: &str) -> String {
    let script = format!(
        "{cli} ps -q --filter label=com.docker.compose.service=edge | xargs -r -I{{}} {cli} exec {{}} cat /tmp/edge/route"
    );
    let output = host.exec(&["sh", "-c", &script]).unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `GET /api/v1/activities` through the host's nginx.
pub fn activities(host: &TestHost) -> String {
    let list = get_when_up(&format!("http://127.0.0.1:{}/api/v1/activities", host.http_port), Duration::from_secs(30))
        .unwrap();
    assert_eq!(list.status, 200, "{}", list.text());
    list.text()
}
