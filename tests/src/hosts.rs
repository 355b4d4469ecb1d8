//! Test hosts: containers the xtask reaches over real SSH on loopback, as it reaches a
//! user's servers. Built from `tests/hosts/` (see its Dockerfile and entrypoint.sh):
//!
//! - [`HostVariant::Docker`]: sshd and a real dockerd (docker-in-docker), Compose v1.
//! - [`HostVariant::Os`]: sshd only, imitating another OS by its release files and fake
//!   package managers that record their calls; no Docker unless one is "installed".
//! - [`HostVariant::Macos`]: a *simulated* macOS (uname, sw_vers, /Users) whose containers
//!   run through a simulated Finch in front of the host's dockerd.
//! - [`HostVariant::Engine`]: Debian sid's engines, one image for all: Docker 28 with
//!   either image store, or rootful Podman 5 with podman-compose and no Docker.
//!
//! Every session's command is logged by the host (sshd ForceCommand) and sshd logs every
//! accepted connection, so tests can assert what the xtask ran and how many connections
//! it opened. Containers and volumes carry the test label like every other resource.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xtask::host::probe::FinchVm;
use xtask::support::command::{Cmd, TimedOutput};

use crate::vm::{self, Machine};
use crate::{Resource, docker, docker_capture, logs, project, published_port, require_engine};

/// The OS variants `HostVariant::Os` accepts (tests/hosts/os-variants.sh).
pub const OS_VARIANTS: &[&str] = &[
    "ubuntu",
    "debian",
    "rhel8",
    "rhel9",
    "centos",
    "rocky",
    "alma",
    "fedora",
    "amzn2",
    "amzn2023",
    "sles",
    "opensuse-leap",
    "alpine",
    "unknown",
    "redhat-release-only",
    "debian-version-only",
    "no-release",
];

/// The image the test-host image starts from when no images manifest names a base.
const DEFAULT_BASE: &str = "cultivate-base:bookworm";
/// Start-up limit for each phase (sshd answering, inner dockerd answering).
const START_LIMIT: Duration = Duration::from_secs(60);
/// The same for a VM host, whose kernel boots under software emulation.
const VM_START_LIMIT: Duration = Duration::from_secs(300);
const BUILD_LIMIT: Duration = Duration::from_secs(900);
const SSH_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostVariant {
    /// sshd + a real dockerd.
    Docker,
    /// One of [`OS_VARIANTS`].
    Os(&'static str),
    /// Simulated macOS; `finch_vm` is the initial VM state, `finch: false` leaves Finch
    /// uninstalled.
    Macos { finch_vm: FinchVm, finch: bool },
    /// sshd + a newer engine, from Debian sid's packages (HOST-SETUP §9).
    Engine(Engine),
}

/// The engines of the host matrix beyond Debian 12's Docker 20.10 + Compose v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Docker 28 + Compose v2, classic image store (overlay2).
    Docker28,
    /// Docker 28 + Compose v2, containerd image store (Docker 29's default).
    Docker28Containerd,
    /// Podman 5 (rootful) + podman-compose, no Docker on the host.
    Podman5,
}

/// What the engine hosts install beyond the Dockerfile's own packages: one image serves
/// every engine of a suite (built once), the entrypoint picks which one runs. runc:
/// crun refuses this machine's hybrid cgroups; nftables: netavark's firewall;
/// aardvark-dns: names on Podman networks (only recommended, so not installed by default);
/// docker-registry: the registry-over-SSH path of bench_registry.
const ENGINE_HOST_PACKAGES: &str = "podman podman-compose runc nftables aardvark-dns docker-registry";

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Docker28, Engine::Docker28Containerd, Engine::Podman5];

    /// The Debian suite whose packages give this engine.
    pub fn suite(self) -> &'static str {
        "sid"
    }

    /// The entrypoint's DOCKER_STORE.
    fn store(self) -> &'static str {
        match self {
            Engine::Docker28 | Engine::Podman5 => "classic",
            Engine::Docker28Containerd => "containerd",
        }
    }

    /// Where the engine keeps its images and containers (a volume on the host).
    fn store_dirs(self) -> &'static [&'static str] {
        match self {
            Engine::Docker28 | Engine::Docker28Containerd => &["/var/lib/docker", "/var/lib/containerd"],
            Engine::Podman5 => &["/var/lib/containers"],
        }
    }
}

impl HostVariant {
    /// The entrypoint's HOST_VARIANT.
    pub fn name(&self) -> &'static str {
        match self {
            HostVariant::Docker => "docker",
            HostVariant::Os(name) => name,
            HostVariant::Macos { .. } => "macos",
            HostVariant::Engine(Engine::Docker28) => "docker28",
            HostVariant::Engine(Engine::Docker28Containerd) => "docker28-containerd",
            HostVariant::Engine(Engine::Podman5) => "podman5",
        }
    }

    /// Whether the host runs a real engine, dockerd or Podman (and publishes port 80).
    pub fn runs_engine(&self) -> bool {
        !matches!(self, HostVariant::Os(_))
    }

    fn validate(&self) -> Result<()> {
        match self {
            HostVariant::Docker => Ok(()),
            HostVariant::Os(name) if OS_VARIANTS.contains(name) => Ok(()),
            HostVariant::Os(name) => bail!("unknown OS variant {name:?}; known: {}", OS_VARIANTS.join(", ")),
            HostVariant::Macos { .. } | HostVariant::Engine(_) => Ok(()),
        }
    }

    fn env(&self, fake_docker_old: bool) -> Vec<String> {
        let entrypoint_variant = match self {
            HostVariant::Engine(Engine::Podman5) => "podman",
            HostVariant::Engine(_) => "docker",
            other => other.name(),
        };
        let mut env = vec![format!("HOST_VARIANT={entrypoint_variant}")];
        if let HostVariant::Engine(engine) = self {
            env.push(format!("DOCKER_STORE={}", engine.store()));
        }
        if let HostVariant::Macos { finch_vm, finch } = self {
            // The entrypoint's FINCH_VM is what `finch vm status` prints (FinchVm::parse).
            let state = match finch_vm {
                FinchVm::Nonexistent => "Nonexistent",
                FinchVm::Stopped => "Stopped",
                FinchVm::Running => "Running",
            };
            env.push(format!("FINCH_VM={state}"));
            if !finch {
                env.push("FINCH=absent".to_string());
            }
        }
        if fake_docker_old {
            env.push("FAKE_DOCKER=old".to_string());
        }
        env
    }
}

#[derive(Debug)]
pub struct TestHost {
    /// Container name.
    pub container: String,
    /// 127.0.0.1 port published for the host's sshd.
    pub ssh_port: u16,
    /// 127.0.0.1 port published for the host's port 80 (docker and macos variants), else 0.
    pub http_port: u16,
    /// The same for the host's port 443.
    pub https_port: u16,
    /// Private key (ed25519, one per test process, mode 0600) every host user accepts.
    pub key: PathBuf,
    /// A known_hosts file holding this host's key for `[127.0.0.1]:ssh_port`.
    pub known_hosts: PathBuf,
    pub variant: HostVariant,
    /// Container first, then its volume: removed in that order on drop. Empty for the
    /// shared hosts, whose resources are removed at exit.
    guards: Vec<Resource>,
    /// sshd's accepted connections when start-up was done (the readiness probe).
    accepted_at_start: usize,
    /// The qemu of a VM host ([`TestHost::start_vm_pair`]); `None` for a container.
    machine: Option<Machine>,
}

impl TestHost {
    /// The shared docker-in-docker host for this test process (started once, removed at exit).
    pub fn docker() -> &'static TestHost {
        static HOST: OnceLock<TestHost> = OnceLock::new();
        HOST.get_or_init(|| {
            TestHost::start(HostVariant::Docker, false)
                .map(TestHost::share)
                .unwrap_or_else(|e| panic!("starting the shared docker test host: {e:#}"))
        })
    }

    /// The shared simulated macOS host with Finch Running (started once, removed at exit).
    pub fn macos() -> &'static TestHost {
        static HOST: OnceLock<TestHost> = OnceLock::new();
        HOST.get_or_init(|| {
            TestHost::start(HostVariant::Macos { finch_vm: FinchVm::Running, finch: true }, false)
                .map(TestHost::share)
                .unwrap_or_else(|e| panic!("starting the shared macOS test host: {e:#}"))
        })
    }

    /// A fresh host of this variant, removed when dropped. Returns once `ssh … true`
    /// works (and, on docker/macos, once the inner dockerd answers). The command log
    /// starts empty and [`TestHost::accepted_connections`] starts at 0.
    pub fn start(variant: HostVariant, fake_docker_old: bool) -> Result<TestHost> {
        require_engine();
        variant.validate()?;
        let image = match variant {
            HostVariant::Engine(engine) => engine_image(engine)?,
            _ => image()?,
        };
        let keys = keys()?;
        let started = Instant::now();

        let mut args = Vec::new();
        let mut volumes = Vec::new();
        if variant.runs_engine() {
            // HOST-SETUP §4: --privileged fails here; this set works. The volumes give
            // the inner engine overlay (Docker's and, for its containerd store,
            // containerd's; Podman's) instead of overlay on overlay.
            let store_dirs: &[&str] = match variant {
                HostVariant::Engine(engine) => engine.store_dirs(),
                _ => &["/var/lib/docker"],
            };
            args.extend(
                [
                    "--cap-add=ALL",
                    "--cap-drop=SYS_RESOURCE",
                    "--security-opt",
                    "seccomp=unconfined",
                    "--security-opt",
                    "apparmor=unconfined",
                    "--cgroupns=host",
                    "-v",
                    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                    "-p",
                    "127.0.0.1::80",
                    "-p",
                    "127.0.0.1::443",
                ]
                .map(String::from),
            );
            for dir in store_dirs {
                let label = dir.rsplit('/').next().unwrap_or("store");
                let volume = Resource::volume(&format!("th-{}-{label}", variant.name()))?;
                args.extend(["-v".to_string(), format!("{}:{dir}", volume.name)]);
                volumes.push(volume);
            }
        }
        args.extend(["-p", "127.0.0.1::22"].map(String::from));
        for pair in variant.env(fake_docker_old) {
            args.extend(["-e".to_string(), pair]);
        }
        args.extend(["-e".to_string(), format!("AUTHORIZED_KEY={}", keys.public)]);
        args.push(image);

        let container = Resource::container(&format!("th-{}", variant.name()), &args)?;
        let name = container.name.clone();
        let mut guards = vec![container];
        guards.extend(volumes);

        let mut host = TestHost {
            container: name.clone(),
            ssh_port: 0,
            http_port: 0,
            https_port: 0,
            key: keys.key.clone(),
            known_hosts: keys.dir.join(format!("known_hosts-{name}")),
            variant,
            guards,
            accepted_at_start: 0,
            machine: None,
        };
        host.wait_until_ready().with_context(|| format!("test host {name}; its logs:\n{}", logs(&name)))?;
        eprintln!("test host {name} ({}) ready in {:.1?}", variant.name(), started.elapsed());
        Ok(host)
    }

    /// Two Docker 28 hosts booted as virtual machines ([`crate::vm`]), linked to each
    /// other, for Swarm's routing mesh (IPVS, which the container hosts cannot have).
    /// They stop when dropped. `exec` runs over SSH as root.
    pub fn start_vm_pair() -> Result<[TestHost; 2]> {
        require_engine();
        let keys = keys()?;
        let started = Instant::now();
        let booting = vm::boot_pair(&keys.public)?;
        let mut hosts = booting.map(|vm| TestHost {
            known_hosts: keys.dir.join(format!("known_hosts-{}", vm.name)),
            container: vm.name,
            ssh_port: vm.ssh_port,
            http_port: vm.http_port,
            https_port: vm.https_port,
            key: keys.key.clone(),
            variant: HostVariant::Engine(Engine::Docker28),
            guards: Vec::new(),
            accepted_at_start: 0,
            machine: Some(vm.machine),
        });
        std::thread::scope(|scope| {
            let waiting: Vec<_> = hosts
                .iter_mut()
                .map(|host| {
                    scope.spawn(move || {
                        let ready = host.wait_until_ready();
                        let console = host.machine.as_ref().map(|m| m.console_tail(40)).unwrap_or_default();
                        ready.with_context(|| format!("VM test host {}; {console}", host.container))
                    })
                })
                .collect();
            waiting.into_iter().try_for_each(|wait| wait.join().unwrap_or_else(|_| bail!("waiting for a VM panicked")))
        })?;
        eprintln!("VM test hosts {} and {} ready in {:.1?}", hosts[0].container, hosts[1].container, started.elapsed());
        Ok(hosts)
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        if self.machine.is_none() {
            self.ssh_port = published_port(&self.container, 22)?;
            if self.variant.runs_engine() {
                self.http_port = published_port(&self.container, 80)?;
                self.https_port = published_port(&self.container, 443)?;
            }
        }

        let host_key = if self.machine.is_some() {
            // Only SSH reaches a VM: its key as its sshd offers it, once it answers.
            let mut offered = String::new();
            let port = self.ssh_port.to_string();
            self.wait_for("sshd to offer its host key", || {
                let scan = Cmd::new("ssh-keyscan").args(["-T", "5", "-t", "ed25519", "-p", &port, "127.0.0.1"]);
                offered = scan.capture().map(|o| String::from_utf8_lossy(&o.stdout).into_owned())?;
                Ok(offered.contains("ssh-ed25519"))
            })?;
            offered
                .lines()
                .find(|l| l.contains("ssh-ed25519"))
                .unwrap_or_default()
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            // sshd listening means the entrypoint has written the host keys and users.
            let listening = "test -s /etc/ssh/ssh_host_ed25519_key.pub && ss -Hltn 'sport = :22' | grep -q .";
            self.wait_for("sshd to listen", || Ok(self.exec(&["sh", "-c", listening])?.status.success()))?;
            String::from_utf8_lossy(&self.exec(&["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])?.stdout)
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        fs::write(&self.known_hosts, format!("[127.0.0.1]:{} {host_key}\n", self.ssh_port))
            .with_context(|| format!("writing {}", self.known_hosts.display()))?;

        let mut last = String::new();
        self.wait_for("`ssh root@… true` to succeed", || {
            let output = self.ssh("root", "true")?;
            last = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Ok(output.status.success())
        })
        .with_context(|| format!("last ssh error: {last}"))?;

        if self.variant.runs_engine() {
            let docker = self.engine_path();
            self.wait_for("the inner engine to answer", || Ok(self.exec(&[docker, "info"])?.status.success()))
                .with_context(|| {
                    let log = self.exec(&["tail", "-n", "30", "/var/log/dockerd.log"]);
                    format!(
                        "dockerd.log:\n{}",
                        log.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
                    )
                })?;
        }

        // Tests see only their own sessions: drop the readiness probe from both logs.
        self.exec(&["sh", "-c", ": >/var/log/ssh-commands.log"])?;
        self.accepted_at_start = self.accepted_total();
        Ok(())
    }

    /// Polls `ready` every 200 ms until it is true, the container (or VM) stops, or
    /// [`START_LIMIT`] ([`VM_START_LIMIT`]) passes.
    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
        let limit = if self.machine.is_some() { VM_START_LIMIT } else { START_LIMIT };
        let deadline = Instant::now() + limit;
        loop {
            if ready()? {
                return Ok(());
            }
            match &self.machine {
                Some(machine) if !machine.running() => bail!("the VM stopped while waiting for {what}"),
                Some(_) => {}
                None => {
                    let state = docker(["inspect", "--format", "{{.State.Status}}", self.container.as_str()])?;
                    if state != "running" {
                        bail!("the container stopped ({state}) while waiting for {what}");
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!("waited {limit:?} for {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Hands the container and volume to the exit cleanup.
    fn share(mut self) -> TestHost {
        for guard in self.guards.drain(..) {
            guard.keep_until_exit();
        }
        if self.variant.runs_engine() {
            // Registered after the exit cleanup above, so it runs before it (atexit is LIFO).
            SHARED_DIND.lock().unwrap_or_else(|e| e.into_inner()).push((self.container.clone(), self.engine_path()));
            static REGISTERED: Once = Once::new();
            REGISTERED.call_once(|| unsafe {
                libc::atexit(kill_shared_inner_containers);
            });
        }
        self
    }

    /// `user@127.0.0.1:port` for the xtask's host parser.
    pub fn target(&self, user: &str) -> String {
        format!("{user}@127.0.0.1:{}", self.ssh_port)
    }

    /// Plain `ssh` argv (this host's key and known_hosts only, BatchMode, no user
    /// config), ending with `user@127.0.0.1`: append the remote command.
    pub fn ssh_args(&self, user: &str) -> Vec<String> {
        let mut args: Vec<String> =
            ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"].map(String::from).to_vec();
        args.extend(["-o".to_string(), "IdentityAgent=none".to_string()]);
        args.extend(["-i".to_string(), self.key.to_string_lossy().into_owned()]);
        args.extend(["-o".to_string(), format!("UserKnownHostsFile={}", self.known_hosts.display())]);
        args.extend(
            ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]
                .map(String::from),
        );
        args.extend(["-p".to_string(), self.ssh_port.to_string(), format!("{user}@127.0.0.1")]);
        args
    }

    /// Runs `command` over real SSH as `user` (stdin empty), killed after two minutes.
    pub fn ssh(&self, user: &str, command: &str) -> Result<Output> {
        let args = self.ssh_args(user);
        let cmd = Cmd::new(&args[0]).args(args[1..].iter().cloned()).arg(command);
        match cmd.capture_with_timeout(SSH_LIMIT)? {
            TimedOutput::Finished(output) => Ok(output),
            TimedOutput::TimedOut => bail!("`{cmd}` did not finish in {SSH_LIMIT:?}"),
        }
    }

    /// Runs a command in the host container (docker exec, as root), for assertions
    /// about its state; on a VM host, over SSH as root.
    pub fn exec(&self, command: &[&str]) -> Result<Output> {
        if self.machine.is_some() {
            let line: Vec<String> = command.iter().map(|word| xtask::support::command::quote(word)).collect();
            return self.ssh("root", &line.join(" "));
        }
        crate::exec(&self.container, None, command)
    }

    /// Asserts that the secret `api_token`, seen through `cli` in the backend container
    /// `container` (a shell expression), is owned by uid and gid 1001 with `mode`, holds
    /// `content`, and is refused to another user (uid 65534).
    pub fn assert_secret_is_the_backends_alone(&self, cli: &str, container: &str, mode: &str, content: &str) {
        let script = format!(
            "{cli} exec {container} stat -c '%u %g %a' /run/secrets/api_token; \
             {cli} exec {container} cat /run/secrets/api_token; \
             {cli} exec -u 65534 {container} cat /run/secrets/api_token 2>&1 || echo refused to others"
        );
        let output = self.exec(&["sh", "-c", &script]).unwrap();
        let seen = String::from_utf8_lossy(&output.stdout);
        let context = format!("{}: {seen}", self.container);
        assert_eq!(
            seen.lines().take(2).collect::<Vec<_>>(),
            [format!("1001 1001 {mode}").as_str(), content],
            "{context}"
        );
        assert!(seen.contains("Permission denied") && seen.ends_with("refused to others\n"), "{context}");
    }

    fn read_log(&self, path: &str) -> String {
        self.exec(&["cat", path]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// `/var/log/ssh-commands.log`: `<unix time> <user> <command>` per SSH session
    /// (newlines in the command written as `\n`), since start-up.
    pub fn command_log(&self) -> String {
        self.read_log("/var/log/ssh-commands.log")
    }

    /// `/var/log/pkg-calls.log`: `<uid> <manager> <args>` per fake package-manager call.
    pub fn package_calls(&self) -> String {
        self.read_log("/var/log/pkg-calls.log")
    }

    /// `/var/log/finch-calls.log`: `<unix time> <user> finch <args>` per simulated Finch call.
    pub fn finch_calls(&self) -> String {
        self.read_log("/var/log/finch-calls.log")
    }

    /// TCP connections sshd accepted since start-up (its "Accepted publickey" lines;
    /// the readiness probe is not counted).
    pub fn accepted_connections(&self) -> usize {
        self.accepted_total().saturating_sub(self.accepted_at_start)
    }

    fn accepted_total(&self) -> usize {
        if let Some(machine) = &self.machine {
            return fs::read_to_string(&machine.console).unwrap_or_default().matches("Accepted publickey").count();
        }
        match docker_capture(["logs", self.container.as_str()]) {
            Ok(output) => [&output.stdout, &output.stderr]
                .iter()
                .map(|text| String::from_utf8_lossy(text).matches("Accepted publickey").count())
                .sum(),
            Err(_) => 0,
        }
    }

    /// The host's real engine CLI: docker (hidden from PATH on the macOS host), or podman.
    pub fn engine_path(&self) -> &'static str {
        match self.variant {
            HostVariant::Macos { .. } => "/opt/realdocker/docker",
            HostVariant::Engine(Engine::Podman5) => "/usr/bin/podman",
            _ => "/usr/bin/docker",
        }
    }

    /// Copies an image of the outer engine into the host's dockerd (`docker save |
    /// docker exec -i … docker load`), so tests need no registry.
    pub fn load_image(&self, reference: &str) -> Result<()> {
        if !self.variant.runs_engine() {
            bail!("{} runs no dockerd", self.container);
        }
        let mut save = Command::new("docker")
            .args(["save", reference])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting docker save")?;
        let stdout = save.stdout.take().context("docker save stdout")?;
        let load = Command::new("docker")
            .args(["exec", "-i", self.container.as_str(), self.engine_path(), "load"])
            .stdin(stdout)
            .output()
            .context("running docker load in the test host")?;
        let saved = save.wait_with_output().context("waiting for docker save")?;
        if !saved.status.success() {
            bail!("docker save {reference} failed: {}", String::from_utf8_lossy(&saved.stderr).trim());
        }
        if !load.status.success() {
            bail!("docker load in {} failed: {}", self.container, String::from_utf8_lossy(&load.stderr).trim());
        }
        // A load can exit 0 and still be incomplete (HOST-SETUP §6): check.
        let check = self.exec(&[self.engine_path(), "image", "inspect", "--format", "{{.Id}}", reference])?;
        if !check.status.success() {
            bail!("{reference} is not in {} after docker load", self.container);
        }
        Ok(())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if self.machine.take().is_some() {
            let _ = fs::remove_file(&self.known_hosts);
            return;
        }
        if self.guards.is_empty() {
            return;
        }
        if self.variant.runs_engine() {
            kill_inner_containers(&self.container, self.engine_path());
        }
        for guard in self.guards.drain(..) {
            drop(guard);
        }
        let _ = fs::remove_file(&self.known_hosts);
    }
}

/// Kills the containers of a host's inner dockerd. With `--cgroupns=host` their cgroups
/// live in the outer hierarchy, and removing the host under running containers leaves
/// those cgroup directories behind on the machine.
fn kill_inner_containers(container: &str, engine_path: &str) {
    let script = format!("{engine_path} ps -q | xargs -r {engine_path} kill >/dev/null 2>&1");
    let _ =
        Cmd::new("docker").args(["exec", container, "sh", "-c", &script]).capture_with_timeout(Duration::from_secs(30));
}

static SHARED_DIND: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

extern "C" fn kill_shared_inner_containers() {
    for (container, engine_path) in SHARED_DIND.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        kill_inner_containers(&container, engine_path);
    }
}

/// The test-host image on the images' base, built on first use.
pub fn image() -> Result<String> {
    image_for(&base_image()?, "")
}

/// The test-host image on `base` with `packages` added, built on first use:
/// `cultivate-testhost:<hash of tests/hosts/, the base reference and the packages>`, so
/// it is rebuilt only when those change.
pub fn image_for(base: &str, packages: &str) -> Result<String> {
    static IMAGES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    // Held across the build: concurrent tests wait for one build instead of racing.
    let mut built = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{base} {packages}");
    if let Some(tag) = built.get(&key) {
        return Ok(tag.clone());
    }
    let dir = project().path("tests/hosts");
    // Without packages the key is the base alone, as before: the image keeps its tag.
    let hashed = if packages.is_empty() { base.to_string() } else { key.clone() };
    let tag = format!("cultivate-testhost:{}", &content_hash(&dir, &hashed)?[..12]);
    if docker(["image", "inspect", "--format", "{{.Id}}", tag.as_str()]).is_err() {
        build(&dir, &[("BASE_IMAGE", base), ("ENGINE_PACKAGES", packages)], &tag)?;
    }
    built.insert(key, tag.clone());
    Ok(tag)
}

/// The image of `engine`'s hosts: one for every engine of its suite.
pub fn engine_image(engine: Engine) -> Result<String> {
    image_for(&suite_base(engine.suite())?, ENGINE_HOST_PACKAGES)
}

/// `cultivate-base:<suite>`, built from the Debian mirror by the xtask's own offline
/// base builder when the engine lacks it (as `cargo xtask images` builds bookworm's).
pub fn suite_base(suite: &str) -> Result<String> {
    static BUILT: Mutex<()> = Mutex::new(());
    let _one_build = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = xtask::host::runtime::Runtime::detect_local(Some(xtask::host::runtime::RuntimeKind::Docker))?;
    let base = xtask::images::ensure_base(&project(), &runtime, &format!("debian:{suite}-slim"))
        .with_context(|| format!("building the Debian {suite} base of the engine test hosts"))?;
    Ok(base.reference)
}

/// The base image named by the images manifest (the file `crate::manifest()` reads,
/// but without requiring the service images: hosts need only the base), else
/// `cultivate-base:bookworm`. It must be in the engine.
pub fn base_image() -> Result<String> {
    let path = std::env::var_os("CULTIVATE_IMAGES_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| xtask::images::latest_manifest_path(&project()));
    let reference = match xtask::images::read_manifest(&path) {
        Ok(manifest) => manifest.base.reference,
        Err(_) => DEFAULT_BASE.to_string(),
    };
    docker(["image", "inspect", "--format", "{{.Id}}", reference.as_str()]).with_context(|| {
        format!(
            "the test hosts are built on the base image {reference} (from {}), which is not in the engine; \
             run `cargo xtask images`",
            path.display()
        )
    })?;
    Ok(reference)
}

/// `docker build` of `dir` as `tag` with `build_args`, logged to
/// `target/cultivate/logs/<image name>-build.log`.
pub(crate) fn build(dir: &Path, build_args: &[(&str, &str)], tag: &str) -> Result<()> {
    let name = tag.split(':').next().unwrap_or(tag).trim_start_matches("cultivate-");
    let log = project().state_dir().join("logs").join(format!("{name}-build.log"));
    let started = Instant::now();
    // --force-rm: the legacy builder otherwise leaves a failed step's container behind.
    let mut cmd = Cmd::new("docker").args(["build", "--force-rm"]);
    for (name, value) in build_args {
        cmd = cmd.args(["--build-arg".to_string(), format!("{name}={value}")]);
    }
    let cmd = cmd.args(["--label", "cultivate.testhost=1", "-t", tag, &dir.to_string_lossy()]);
    let output = match cmd.capture_with_timeout(BUILD_LIMIT)? {
        TimedOutput::Finished(output) => output,
        TimedOutput::TimedOut => bail!("`{cmd}` did not finish in {BUILD_LIMIT:?}"),
    };
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut text = output.stdout.clone();
    text.extend_from_slice(&output.stderr);
    fs::write(&log, &text).with_context(|| format!("writing {}", log.display()))?;
    if !output.status.success() {
        bail!("`{cmd}` failed; full log: {}\n{}", log.display(), xtask::support::command::tail_of_file(&log, 30));
    }
    eprintln!("built {tag} in {:.1?} (log: {})", started.elapsed(), log.display());
    Ok(())
}

/// sha256 (by `sha256sum`, to need no crate) over every file under `dir`, by relative
/// path, plus the base reference.
pub(crate) fn content_hash(dir: &Path, base: &str) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut input = format!("base={base}\0").into_bytes();
    for file in &files {
        let content = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(dir).unwrap_or(file);
        input.extend_from_slice(format!("{}\0{}\0", relative.display(), content.len()).as_bytes());
        input.extend_from_slice(&content);
    }
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().context("starting sha256sum")?;
    child.stdin.take().context("sha256sum stdin")?.write_all(&input)?;
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let hash = text.split_whitespace().next().unwrap_or_default();
    if !output.status.success() || hash.len() != 64 {
        bail!("sha256sum failed: {text}");
    }
    Ok(hash.to_string())
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// The process's key pair and the private directory holding it and the known_hosts files.
struct Keys {
    dir: PathBuf,
    key: PathBuf,
    public: String,
}

fn keys() -> Result<&'static Keys> {
    static KEYS: OnceLock<Result<Keys, String>> = OnceLock::new();
    KEYS.get_or_init(|| make_keys().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

const KEY_DIR_PREFIX: &str = "cultivate-testhosts-";

fn make_keys() -> Result<Keys> {
    sweep_stale_key_dirs();
    let dir = std::env::temp_dir().join(format!("{KEY_DIR_PREFIX}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
    register_key_dir_cleanup(dir.clone());
    let key = dir.join("id_ed25519");
    let comment = format!("cultivate-tests-{}", std::process::id());
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", &key.to_string_lossy()])
        .output()
        .context("generating the test hosts' SSH key")?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
    let public = fs::read_to_string(key.with_extension("pub"))?.trim().to_string();
    Ok(Keys { dir, key, public })
}

/// Key directories of test processes that no longer exist (a killed run).
fn sweep_stale_key_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(KEY_DIR_PREFIX).and_then(|pid| pid.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

static KEY_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

extern "C" fn remove_key_dir() {
    if let Some(dir) = KEY_DIR.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn register_key_dir_cleanup(dir: PathBuf) {
    *KEY_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir);
    static REGISTERED: Once = Once::new();
    // The test harness ends with process::exit, which runs atexit handlers.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(remove_key_dir);
    });
}
