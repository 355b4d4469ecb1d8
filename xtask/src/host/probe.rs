//! What a target machine is: its OS and package manager, its container runtime and
//! compose command with their versions. One probe script gathers everything in a
//! single round trip; the rest are pure functions over its output (design Component 3:
//! `detect_target_os`, `check_target_dependencies`; Properties 18–22).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::host::runtime::RuntimeKind;
use crate::model::platform::{LinuxEngine, Minimums, TargetOs, Version};
use crate::support::command::Cmd;

/// Sections of what the probe printed, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub sections: BTreeMap<String, String>,
}

/// Prints `==name` headers followed by each fact; every command may fail quietly.
pub const PROBE_SCRIPT: &str = r#"
echo "==uname"; uname -s 2>/dev/null
echo "==sw_vers"; sw_vers -productVersion 2>/dev/null
echo "==os-release"; cat /etc/os-release 2>/dev/null
echo "==redhat-release"; cat /etc/redhat-release 2>/dev/null
echo "==debian_version"; cat /etc/debian_version 2>/dev/null
echo "==commands"; for c in apt-get dnf yum zypper apk brew docker docker-compose podman podman-compose finch sudo systemctl; do command -v "$c" >/dev/null 2>&1 && echo "$c"; done
echo "==uid"; id -u
echo "==user"; id -un
echo "==home"; echo "$HOME"
echo "==docker-client"; docker --version 2>/dev/null
echo "==docker-server"; docker version --format '{{.Server.Version}}' 2>/dev/null
echo "==docker-info"; docker info >/dev/null 2>&1 && echo ok || docker info 2>&1 | tail -n 1
echo "==compose-v2"; docker compose version --short 2>/dev/null
echo "==compose-v1"; docker-compose version --short 2>/dev/null
echo "==podman"; podman --version 2>/dev/null
echo "==podman-info"; podman info >/dev/null 2>&1 && echo ok || podman info 2>&1 | tail -n 1
echo "==podman-compose"; podman-compose --version 2>/dev/null | grep podman-compose
echo "==finch"; finch --version 2>/dev/null
echo "==finch-vm"; finch vm status 2>/dev/null
exit 0
"#;

/// The command that runs the probe.
pub fn probe_cmd() -> Cmd {
    Cmd::new("sh").args(["-c", PROBE_SCRIPT])
}

impl Probe {
    pub fn parse(text: &str) -> Probe {
        let mut sections: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("==") {
                current = Some(name.trim().to_string());
                sections.entry(name.trim().to_string()).or_default();
            } else if let Some(name) = &current {
                let section = sections.entry(name.clone()).or_default();
                if !section.is_empty() {
                    section.push('\n');
                }
                section.push_str(line);
            }
        }
        Probe { sections }
    }

    pub fn get(&self, name: &str) -> &str {
        self.sections.get(name).map(|s| s.trim()).unwrap_or("")
    }

    /// The login user's `$HOME` on the target, when the probe printed an absolute path.
    pub fn home(&self) -> Option<&str> {
        Some(self.get("home")).filter(|home| home.starts_with('/'))
    }

    pub fn has_command(&self, command: &str) -> bool {
        self.get("commands").lines().any(|line| line.trim() == command)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    AptGet,
    Dnf,
    Yum,
    Zypper,
    Apk,
    Brew,
}

impl PackageManager {
    pub fn program(self) -> &'static str {
        match self {
            PackageManager::AptGet => "apt-get",
            PackageManager::Dnf => "dnf",
            PackageManager::Yum => "yum",
            PackageManager::Zypper => "zypper",
            PackageManager::Apk => "apk",
            PackageManager::Brew => "brew",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

pub const SUPPORTED: &str = "Ubuntu, Debian, RHEL, CentOS, Fedora, Rocky Linux, AlmaLinux, Amazon Linux (2 and 2023), \
                             SLES, openSUSE, Alpine, macOS";

/// A target's operating system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    pub os: TargetOs,
    /// `ubuntu`, `rhel`, `amzn`, `macos`, …
    pub id: String,
    pub version: Option<String>,
    pub package_manager: PackageManager,
}

impl fmt::Display for OsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{} {version} ({})", self.id, self.package_manager),
            None => write!(f, "{} ({})", self.id, self.package_manager),
        }
    }
}

/// `uname` (Darwin → macOS, version from sw_vers); else /etc/os-release ID and
/// VERSION_ID; else /etc/redhat-release; else /etc/debian_version (Property 18).
pub fn detect_os(probe: &Probe) -> Result<OsInfo> {
    if probe.get("uname") == "Darwin" {
        let version = Some(probe.get("sw_vers").to_string()).filter(|v| !v.is_empty());
        return Ok(OsInfo { os: TargetOs::Macos, id: "macos".into(), version, package_manager: PackageManager::Brew });
    }
    let os_release = parse_os_release(probe.get("os-release"));
    let (id, version) = if let Some(id) = os_release.get("ID") {
        (id.clone(), os_release.get("VERSION_ID").cloned())
    } else if !probe.get("redhat-release").is_empty() {
        ("rhel".to_string(), first_version(probe.get("redhat-release")))
    } else if !probe.get("debian_version").is_empty() {
        ("debian".to_string(), Some(probe.get("debian_version").to_string()))
    } else {
        bail!(
            "cannot tell which operating system this is: no /etc/os-release, /etc/redhat-release or /etc/debian_version. Supported: {SUPPORTED}"
        );
    };
    let package_manager = package_manager(&id, probe.has_command("dnf"))?;
    Ok(OsInfo { os: TargetOs::Linux, id, version, package_manager })
}

/// The package manager for an os-release ID (Properties 19, 21).
pub fn package_manager(id: &str, has_dnf: bool) -> Result<PackageManager> {
    let dnf_or_yum = if has_dnf { PackageManager::Dnf } else { PackageManager::Yum };
    Ok(match id {
        "ubuntu" | "debian" => PackageManager::AptGet,
        // dnf on RHEL 8+/Fedora/AL2023; yum on RHEL 7 and Amazon Linux 2.
        "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "alma" | "amzn" => dnf_or_yum,
        "sles" | "sled" => PackageManager::Zypper,
        id if id.starts_with("opensuse") => PackageManager::Zypper,
        "alpine" => PackageManager::Apk,
        other => bail!("unsupported operating system {other:?}. Supported: {SUPPORTED}"),
    })
}

/// `KEY=value` lines of /etc/os-release, quotes removed.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().trim_matches('"').trim_matches('\'').to_string()))
        .collect()
}

/// A dotted version number, e.g. `20.10.24` from `Docker version 20.10.24+dfsg1, build …`.
fn first_version(text: &str) -> Option<String> {
    Version::find(text).map(|v| v.to_string())
}

/// How a target runs compose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "version")]
pub enum ComposeCommand {
    /// `docker compose` (v2), preferred.
    DockerV2(Version),
    /// `docker-compose` (v1).
    DockerV1(Version),
    /// `finch compose` (macOS).
    Finch(Version),
    /// `podman-compose`, Podman's own compose (what `podman compose` runs when it is
    /// installed).
    Podman(Version),
}

impl ComposeCommand {
    pub fn argv(&self) -> Vec<&'static str> {
        match self {
            ComposeCommand::DockerV2(_) => vec!["docker", "compose"],
            ComposeCommand::DockerV1(_) => vec!["docker-compose"],
            ComposeCommand::Finch(_) => vec!["finch", "compose"],
            ComposeCommand::Podman(_) => vec!["podman-compose"],
        }
    }
}

impl fmt::Display for ComposeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposeCommand::DockerV2(v) => write!(f, "docker compose {v}"),
            ComposeCommand::DockerV1(v) => write!(f, "docker-compose {v}"),
            ComposeCommand::Finch(v) => write!(f, "finch compose (finch {v})"),
            ComposeCommand::Podman(v) => write!(f, "podman-compose {v}"),
        }
    }
}

/// Finch's VM state, from `finch vm status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FinchVm {
    Nonexistent,
    Stopped,
    Running,
}

impl FinchVm {
    pub fn parse(text: &str) -> Option<FinchVm> {
        match text.trim() {
            "Nonexistent" => Some(FinchVm::Nonexistent),
            "Stopped" => Some(FinchVm::Stopped),
            "Running" => Some(FinchVm::Running),
            _ => None,
        }
    }
}

/// A target's container runtime, and what it lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeReport {
    /// What runs the stack: Docker or Podman on Linux, Finch on macOS.
    pub runtime: RuntimeKind,
    /// Engine (or Finch) version found.
    pub engine: Option<Version>,
    pub compose: Option<ComposeCommand>,
    pub finch_vm: Option<FinchVm>,
    /// Everything missing or too old, each with its fix.
    pub problems: Vec<String>,
}

/// The engine a Linux target runs the stack with: the host's `engine` key, else Docker
/// when the target has it, else Podman when it has that, else Docker (to install).
pub fn linux_engine(probe: &Probe, configured: Option<LinuxEngine>) -> LinuxEngine {
    configured.unwrap_or(if !probe.has_command("docker") && probe.has_command("podman") {
        LinuxEngine::Podman
    } else {
        LinuxEngine::Docker
    })
}

/// Linux: docker with `docker compose` (v2) preferred, else `docker-compose` (v1); or
/// podman with `podman-compose` ([`linux_engine`]). macOS: finch with `finch compose`.
/// Versions against `minimums` (Property 22).
pub fn check_runtime(os: &OsInfo, probe: &Probe, minimums: &Minimums, engine: Option<LinuxEngine>) -> RuntimeReport {
    let mut problems = Vec::new();
    let version_of = |section: &str| Version::find(probe.get(section));
    if os.os == TargetOs::Macos {
        if !probe.has_command("finch") {
            return RuntimeReport {
                runtime: RuntimeKind::Finch,
                engine: None,
                compose: None,
                finch_vm: None,
                problems: vec![finch_instructions()],
            };
        }
        let finch = version_of("finch");
        if let Some(found) = &finch {
            problems.extend(too_old("finch", found, &minimums.finch));
        }
        let vm = FinchVm::parse(probe.get("finch-vm"));
        match vm {
            Some(FinchVm::Running) => {}
            Some(FinchVm::Stopped) => {
                problems.push("Finch's VM is stopped: `finch vm start` (or pass --install)".into())
            }
            Some(FinchVm::Nonexistent) => {
                problems.push("Finch's VM does not exist: `finch vm init` (or pass --install)".into())
            }
            None => problems
                .push(format!("cannot read Finch's VM state from `finch vm status`: {:?}", probe.get("finch-vm"))),
        }
        let compose = finch.clone().map(ComposeCommand::Finch);
        return RuntimeReport { runtime: RuntimeKind::Finch, engine: finch, compose, finch_vm: vm, problems };
    }
    if linux_engine(probe, engine) == LinuxEngine::Podman {
        return check_podman(os, probe, minimums);
    }

    let install = install_hint(os.package_manager, LinuxEngine::Docker, probe.get("uid") == "0");
    let engine = version_of("docker-server").or_else(|| version_of("docker-client"));
    match (&engine, probe.has_command("docker")) {
        (_, false) => problems.push(format!("docker is not installed: {install}")),
        (Some(found), true) => problems.extend(too_old("docker", found, &minimums.docker)),
        (None, true) => problems.push("docker is installed but its version cannot be read".into()),
    }
    if probe.has_command("docker") && probe.get("docker-server").is_empty() {
        problems
            .push("the docker engine does not answer: start it (`systemctl start docker`, or pass --install)".into());
    }
    let compose = match (version_of("compose-v2"), version_of("compose-v1")) {
        (Some(v2), _) => {
            problems.extend(too_old("docker compose", &v2, &minimums.compose_v2));
            Some(ComposeCommand::DockerV2(v2))
        }
        (None, Some(v1)) => {
            problems.extend(too_old("docker-compose", &v1, &minimums.compose_v1));
            Some(ComposeCommand::DockerV1(v1))
        }
        (None, None) => {
            problems.push(format!("neither `docker compose` nor `docker-compose` is installed: {install}"));
            None
        }
    };
    RuntimeReport { runtime: RuntimeKind::Docker, engine, compose, finch_vm: None, problems }
}

/// Podman, rootful, with `podman-compose`.
fn check_podman(os: &OsInfo, probe: &Probe, minimums: &Minimums) -> RuntimeReport {
    let mut problems = Vec::new();
    let install = install_hint(os.package_manager, LinuxEngine::Podman, probe.get("uid") == "0");
    let engine = Version::find(probe.get("podman"));
    match (&engine, probe.has_command("podman")) {
        (_, false) => problems.push(format!("podman is not installed: {install}")),
        (Some(found), true) => problems.extend(too_old("podman", found, &minimums.podman)),
        (None, true) => problems.push("podman is installed but its version cannot be read".into()),
    }
    if probe.get("uid") != "0" {
        // Rootless Podman would run another stack: no port 80, data owned by subuids.
        problems.push(format!(
            "Podman runs the stack rootful here and {} is not root: connect as root (`user = \"root\"` in the \
             host's table)",
            if probe.get("user").is_empty() { "this user" } else { probe.get("user") }
        ));
    } else if probe.has_command("podman") && probe.get("podman-info") != "ok" {
        problems.push(format!("`podman info` fails: {}", probe.get("podman-info")));
    }
    let compose = match Version::find(probe.get("podman-compose")) {
        Some(found) => {
            problems.extend(too_old("podman-compose", &found, &minimums.podman_compose));
            Some(ComposeCommand::Podman(found))
        }
        None => {
            problems.push(format!("podman-compose is not installed: {install}"));
            None
        }
    };
    RuntimeReport { runtime: RuntimeKind::Podman, engine, compose, finch_vm: None, problems }
}

/// Whether the engine runs but refuses this user (the socket is root:docker 0660).
pub fn engine_denied(probe: &Probe) -> bool {
    probe.get("docker-info").to_ascii_lowercase().contains("permission denied")
}

/// The shortfall message when `found` is below `minimum` (required and found, Property 22).
fn too_old(what: &str, found: &Version, minimum: &Version) -> Option<String> {
    (!found.at_least(minimum)).then(|| format!("{what} {found} is too old: {minimum} or newer is required"))
}

/// The design's instructions for a macOS target without Finch.
pub fn finch_instructions() -> String {
    "Finch is not installed on the target macOS system.\n\
     To install Finch, run the following commands on the target host:\n\n  \
     # Using Homebrew:\n  brew install --cask finch\n\n  \
     # Or download from GitHub:\n  # https://github.com/runfinch/finch/releases\n\n\
     After installation, initialize Finch:\n  finch vm init"
        .to_string()
}

/// The packages that give the engine and its compose with each package manager.
pub fn engine_packages(manager: PackageManager, engine: LinuxEngine) -> &'static [&'static str] {
    if engine == LinuxEngine::Podman {
        // netavark, Podman's network stack, sets up its firewall rules with nft, and
        // the services find each other by name through aardvark-dns: both only
        // recommended by Debian's podman, and recommends are not installed here.
        return match manager {
            PackageManager::AptGet => &["podman", "podman-compose", "nftables", "aardvark-dns"],
            PackageManager::Brew => &[],
            _ => &["podman", "podman-compose"],
        };
    }
    match manager {
        PackageManager::AptGet => &["docker.io", "docker-compose"],
        PackageManager::Dnf | PackageManager::Yum => &["docker"],
        PackageManager::Zypper => &["docker", "docker-compose"],
        PackageManager::Apk => &["docker", "docker-cli-compose"],
        PackageManager::Brew => &[],
    }
}

/// The commands installing the engine and its compose, as root or through `sudo -n`.
pub fn install_cmds(manager: PackageManager, engine: LinuxEngine, as_root: bool) -> Vec<Cmd> {
    let packages = engine_packages(manager, engine);
    let cmds = match manager {
        PackageManager::AptGet => vec![
            Cmd::new("apt-get").args(["update", "-q"]),
            Cmd::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages.iter().copied())
                .env("DEBIAN_FRONTEND", "noninteractive"),
        ],
        PackageManager::Dnf | PackageManager::Yum => {
            vec![Cmd::new(manager.program()).args(["install", "-y"]).args(packages.iter().copied())]
        }
        PackageManager::Zypper => {
            vec![Cmd::new("zypper").args(["--non-interactive", "install"]).args(packages.iter().copied())]
        }
        PackageManager::Apk => vec![Cmd::new("apk").args(["add", "--no-cache"]).args(packages.iter().copied())],
        PackageManager::Brew => Vec::new(),
    };
    if as_root { cmds } else { cmds.into_iter().map(crate::host::install::through_sudo).collect() }
}

/// One line saying how to install the engine with this package manager.
pub fn install_hint(manager: PackageManager, engine: LinuxEngine, as_root: bool) -> String {
    let lines: Vec<String> = install_cmds(manager, engine, as_root).iter().map(ToString::to_string).collect();
    match (lines.is_empty(), engine) {
        (false, _) => lines.join(" && "),
        (true, LinuxEngine::Docker) => "see https://docs.docker.com/engine/install/".into(),
        (true, LinuxEngine::Podman) => "see https://podman.io/docs/installation".into(),
    }
}

#[cfg(test)]
mod tests;
