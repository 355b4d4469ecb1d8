//! What a target is and lacks, as one report: connecting (the connectivity check
//! first, Property 16), detection (OS, package manager, runtime and compose against the
//! minimums), the deployment paths with the target's own home, free disk, ports in
//! use; and installing the runtime when asked. Used by `doctor` and by every session.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::host::probe::{self as target, FinchVm, OsInfo, Probe, RuntimeReport};
use crate::host::transport::{Ssh, Transport};
use crate::model::config::{Config, Host};
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{LinuxEngine, TargetOs};
use crate::model::ssh_target::SshTarget;
use crate::support::command::Cmd;

/// What one machine has and lacks.
#[derive(Debug, Serialize)]
pub struct MachineReport {
    pub machine: String,
    pub os: Option<OsInfo>,
    pub user: String,
    #[serde(skip)]
    pub uid: String,
    pub runtime: Option<RuntimeReport>,
    pub paths: Option<DeploymentPaths>,
    pub free_disk_bytes: Option<u64>,
    pub ports_in_use: Vec<u16>,
    pub missing: Vec<String>,
    pub actions: Vec<String>,
}

impl MachineReport {
    /// A machine whose OS could not be told: nothing else is known of it.
    pub fn undetected(machine: String, user: String, why: String) -> MachineReport {
        MachineReport {
            machine,
            os: None,
            user,
            uid: String::new(),
            runtime: None,
            paths: None,
            free_disk_bytes: None,
            ports_in_use: Vec::new(),
            missing: vec![why],
            actions: Vec::new(),
        }
    }
}

/// The transport for `--host`: a configured host's table, else `[user@]host[:port]`.
pub fn connect(config: &Config, name: &str) -> Result<Transport> {
    let (target, identity) = match config.hosts.get(name) {
        Some(host) => (host_target(name, host)?, host.identity_file.as_deref().map(expand_local_home)),
        None => (SshTarget::parse(name)?, None),
    };
    let mut ssh = Ssh::new(target)?;
    ssh.identity_file = identity;
    ssh.connect_timeout = std::time::Duration::from_secs(config.ssh.connect_timeout_seconds.into());
    if let Ok(known_hosts) = std::env::var("CULTIVATE_KNOWN_HOSTS") {
        ssh.known_hosts_file = Some(known_hosts.into());
    }
    let transport = Transport::Ssh(ssh);
    check_connectivity(&transport)?;
    Ok(transport)
}

/// The SSH target of `[hosts.NAME]`: its user, its address, and a port only when one
/// is configured (`port`, or `address` as `host:port`), so an alias's `Port` in
/// ~/.ssh/config applies. A port in both places must agree.
pub fn host_target(name: &str, host: &Host) -> Result<SshTarget> {
    let target = SshTarget::parse(&format!("{}@{}", host.user, host.address))
        .with_context(|| format!("[hosts.{name}] in the configuration"))?;
    let port = match (target.port, host.port) {
        (Some(in_address), Some(configured)) if in_address != configured => bail!(
            "`hosts.{name}.address` = {:?} names port {in_address} but `hosts.{name}.port` = {configured}: \
             give the port in one place, or make them agree",
            host.address
        ),
        (in_address, configured) => configured.or(in_address),
    };
    Ok(SshTarget { port, ..target })
}

/// The first remote command of every run (Property 16): does the host answer at all?
pub fn check_connectivity(transport: &Transport) -> Result<()> {
    let answer = transport.output(&connectivity_cmd())?;
    if answer.trim() != CONNECTIVITY_ANSWER {
        bail!("{transport} answered the connectivity check with {answer:?}");
    }
    Ok(())
}

const CONNECTIVITY_ANSWER: &str = "cultivate-connectivity-ok";

pub fn connectivity_cmd() -> Cmd {
    Cmd::new("echo").arg(CONNECTIVITY_ANSWER)
}

fn expand_local_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A target: detection, runtime, paths, disk, ports; installs what lacks with `install`.
pub fn machine_report(
    config: &Config,
    transport: &Transport,
    name: String,
    host: Option<&Host>,
    install: bool,
) -> Result<MachineReport> {
    let mut probe = Probe::parse(&transport.output(&target::probe_cmd())?);
    let mut missing = Vec::new();
    let mut actions = Vec::new();
    let os = match target::detect_os(&probe) {
        Ok(os) => os,
        Err(err) => return Ok(MachineReport::undetected(name, probe.get("user").into(), format!("{err:#}"))),
    };
    let configured = host.and_then(|h| h.engine);
    let mut runtime = target::check_runtime(&os, &probe, &config.minimums, configured);
    if install && !runtime.problems.is_empty() {
        let engine = target::linux_engine(&probe, configured);
        actions = install_runtime(transport, &os, &probe, &runtime, engine)?;
        probe = Probe::parse(&transport.output(&target::probe_cmd())?);
        // The engine chosen before the install, not re-detected from what is there now.
        runtime = target::check_runtime(&os, &probe, &config.minimums, Some(engine));
    }
    missing.extend(runtime.problems.iter().cloned());

    let user = probe.get("user").to_string();
    let uid = probe.get("uid").to_string();
    let paths = match deployment_paths(os.os, &probe, config, host) {
        Ok(paths) => Some(paths),
        Err(err) => {
            missing.push(format!("{err:#}"));
            None
        }
    };
    let free_disk_bytes = match &paths {
        Some(paths) => transport.output(&free_disk_cmd(&paths.base)).ok().and_then(|t| parse_df_available(&t)),
        None => None,
    };
    let wanted = config.http.published_ports();
    let ports_in_use = match transport.output(&listening_ports_cmd(os.os)) {
        Ok(text) => parse_listening(&text, os.os).into_iter().filter(|p| wanted.contains(p)).collect(),
        Err(_) => Vec::new(),
    };
    Ok(MachineReport {
        machine: name,
        os: Some(os),
        user,
        uid,
        runtime: Some(runtime),
        paths,
        free_disk_bytes,
        ports_in_use,
        missing,
        actions,
    })
}

/// The deployment paths of a probed target: `~` is the home the target reported
/// (`$HOME`); only when it reported none is the home guessed from the user's name, with
/// a warning.
pub fn deployment_paths(os: TargetOs, probe: &Probe, config: &Config, host: Option<&Host>) -> Result<DeploymentPaths> {
    let user = probe.get("user");
    let home = probe.home();
    if home.is_none() {
        crate::support::log::warn(format!(
            "the target did not report $HOME for {user:?}; assuming {}",
            crate::model::paths::home_of(os, user)
        ));
    }
    DeploymentPaths::resolve_with_home(os, user, home, config, host)
}

/// Installs Docker + Compose (or Podman + podman-compose) with the package manager,
/// starts Docker's engine; on macOS brings Finch's VM up. Returns what it did.
fn install_runtime(
    transport: &Transport,
    os: &OsInfo,
    probe: &Probe,
    runtime: &RuntimeReport,
    engine: LinuxEngine,
) -> Result<Vec<String>> {
    let as_root = probe.get("uid") == "0";
    let mut done = Vec::new();
    let mut run = |cmd: Cmd| -> Result<()> {
        crate::support::log::say(format!("{transport}: {cmd}"));
        transport.output(&cmd).with_context(|| format!("`{cmd}` failed on {transport}"))?;
        done.push(cmd.to_string());
        Ok(())
    };
    if os.os == TargetOs::Macos {
        match runtime.finch_vm {
            Some(FinchVm::Nonexistent) => run(Cmd::new("finch").args(["vm", "init"]))?,
            Some(FinchVm::Stopped) => run(Cmd::new("finch").args(["vm", "start"]))?,
            _ => {}
        }
        return Ok(done);
    }
    if !as_root {
        let sudo = transport.capture(&Cmd::new("sudo").args(["-n", "true"]))?;
        if !sudo.status.success() {
            bail!(
                "installing {engine} on {transport} needs root, and sudo asks for a password there. \
                 Run as root, allow password-less sudo for this user, or install by hand: {}",
                target::install_hint(os.package_manager, engine, false)
            );
        }
    }
    if !probe.has_command(engine.to_string().as_str()) || runtime.compose.is_none() {
        for cmd in target::install_cmds(os.package_manager, engine, as_root) {
            run(cmd)?;
        }
    }
    // Podman has no daemon to start.
    if engine == LinuxEngine::Podman {
        return Ok(done);
    }
    let start = start_engine_cmd();
    run(if as_root { start } else { crate::host::install::through_sudo(start) })?;
    // The engine's socket is root:docker: a user outside the group cannot use it.
    // Group membership applies to new logins only, so the shared connection is closed
    // and the next command logs in afresh.
    if !as_root {
        let after = Probe::parse(&transport.output(&target::probe_cmd())?);
        if target::engine_denied(&after) {
            run(crate::host::install::through_sudo(add_to_docker_group_cmd(after.get("user"))))?;
            transport.close();
        }
    }
    Ok(done)
}

/// Adds `user` to the docker group (usermod, or addgroup on Alpine/BusyBox).
pub fn add_to_docker_group_cmd(user: &str) -> Cmd {
    Cmd::new("sh")
        .args(["-c", "usermod -aG docker \"$1\" 2>/dev/null || addgroup \"$1\" docker", "add-to-docker-group"])
        .arg(user)
}

/// Starts the engine: systemd, OpenRC, or dockerd in the background.
pub fn start_engine_cmd() -> Cmd {
    let script = "if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl enable --now docker; \
                  elif command -v rc-service >/dev/null 2>&1; then rc-service docker start; \
                  elif docker info >/dev/null 2>&1; then true; \
                  else nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null & \
                  i=0; while [ $i -lt 60 ] && ! docker info >/dev/null 2>&1; do sleep 1; i=$((i+1)); done; fi";
    Cmd::new("sh").args(["-c", script])
}

/// `df -Pk` of the deployment path, or of its nearest existing parent.
pub fn free_disk_cmd(path: &str) -> Cmd {
    let script = "p=$1; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname \"$p\"); done; df -Pk \"$p\"";
    Cmd::new("sh").args(["-c", script, "df"]).arg(path)
}

/// Bytes available from `df -Pk` output.
pub fn parse_df_available(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn listening_ports_cmd(os: TargetOs) -> Cmd {
    match os {
        TargetOs::Linux => Cmd::new("sh").args(["-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"]),
        TargetOs::Macos => Cmd::new("sh").args(["-c", "netstat -an -p tcp 2>/dev/null | grep LISTEN; exit 0"]),
    }
}

/// Listening TCP ports from /proc/net/tcp (Linux) or `netstat -an` (macOS).
pub fn parse_listening(text: &str, os: TargetOs) -> Vec<u16> {
    let mut ports: Vec<u16> = match os {
        TargetOs::Linux => text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(3) == Some(&"0A"))
                    .then(|| fields.get(1)?.rsplit(':').next())?
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            })
            .collect(),
        TargetOs::Macos => {
            text.lines().filter_map(|line| line.split_whitespace().nth(3)?.rsplit('.').next()?.parse().ok()).collect()
        }
    };
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_gives_available_bytes() {
        let text = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda        263174212  11230000 83886080      12% /\n";
        assert_eq!(parse_df_available(text), Some(83886080 * 1024));
        assert_eq!(parse_df_available("garbage"), None);
    }

    #[test]
    fn listening_ports_on_linux_and_macos() {
        let linux = "  sl  local_address rem_address   st\n   0: 00000000:0050 00000000:0000 0A\n   1: 0100007F:1F90 0100007F:D2F0 01\n";
        assert_eq!(parse_listening(linux, TargetOs::Linux), vec![80]);
        let macos =
            "tcp4       0      0  *.443                  *.*                    LISTEN\ntcp6  0 0 *.80 *.* LISTEN\n";
        assert_eq!(parse_listening(macos, TargetOs::Macos), vec![80, 443]);
    }

    fn config(text: &str) -> Config {
        Config::parse(&format!("[app]\nname = \"x\"\n{text}"), "test", &|_| None).unwrap()
    }

    #[test]
    fn paths_use_the_home_the_probe_reported() {
        let config = config("[paths]\ndeployment = \"~/cultivate\"\n");
        let probe = Probe::parse("==user\ndeploy\n==home\n/var/lib/deploy\n==docker-client\n");
        let paths = deployment_paths(TargetOs::Linux, &probe, &config, None).unwrap();
        assert_eq!(paths.base, "/var/lib/deploy/cultivate");
        // No $HOME from the probe: the guess from the user's name.
        let probe = Probe::parse("==user\ndeploy\n==home\n\n");
        assert_eq!(deployment_paths(TargetOs::Linux, &probe, &config, None).unwrap().base, "/home/deploy/cultivate");
    }

    /// `[hosts.web]` with these lines, as the configuration gives it.
    fn host(lines: &str) -> Result<Host> {
        let text = format!("[app]\nname = \"x\"\n[hosts.web]\nuser = \"deploy\"\n{lines}");
        let config = Config::parse(&text, "test", &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config.hosts["web"].clone())
    }

    fn options_for(lines: &str) -> Result<Vec<String>> {
        let target = host_target("web", &host(lines)?)?;
        Ok(Ssh::new(target)?.options())
    }

    fn port_option(options: &[String]) -> Option<&str> {
        options.iter().position(|o| o == "-p").map(|at| options[at + 1].as_str())
    }

    #[test]
    fn no_port_option_without_a_configured_port() {
        // An alias whose Port is in ~/.ssh/config: ssh must be left to read it.
        let options = options_for("address = \"my-alias\"\n").unwrap();
        assert_eq!(port_option(&options), None, "{options:?}");
        assert!(!options.iter().any(|o| o.to_ascii_lowercase().starts_with("port")), "{options:?}");
        assert_eq!(host("address = \"my-alias\"\n").unwrap().port, None);
    }

    #[test]
    fn a_configured_port_is_passed() {
        let options = options_for("address = \"203.0.113.7\"\nport = 2200\n").unwrap();
        assert_eq!(port_option(&options), Some("2200"));
        let options = options_for("address = \"203.0.113.7:2200\"\nport = 2200\n").unwrap();
        assert_eq!(port_option(&options), Some("2200"));
    }

    #[test]
    fn a_port_in_the_address_is_used() {
        let target = host_target("web", &host("address = \"h.example:2222\"\n").unwrap()).unwrap();
        assert_eq!((target.host.as_str(), target.port), ("h.example", Some(2222)));
        let target = host_target("web", &host("address = \"[2001:db8::1]:2222\"\n").unwrap()).unwrap();
        assert_eq!((target.host.as_str(), target.port), ("2001:db8::1", Some(2222)));
        let target = host_target("web", &host("address = \"2001:db8::1\"\n").unwrap()).unwrap();
        assert_eq!((target.host.as_str(), target.port), ("2001:db8::1", None));
        assert_eq!(port_option(&options_for("address = \"h.example:2222\"\n").unwrap()), Some("2222"));
    }

    #[test]
    fn conflicting_ports_are_refused_naming_both_keys() {
        let message = format!("{:#}", host("address = \"h.example:2222\"\nport = 22\n").unwrap_err());
        assert!(message.contains("hosts.web.address") && message.contains("hosts.web.port"), "{message}");
        // A host built by hand (not through the file's checks) is refused as well.
        let mut built = host("address = \"h.example\"\n").unwrap();
        built.address = "h.example:2222".into();
        built.port = Some(22);
        let message = format!("{:#}", host_target("web", &built).unwrap_err());
        assert!(message.contains("hosts.web.address") && message.contains("hosts.web.port"), "{message}");
        for bad in ["h.example:0", "h.example:x", "[::1", "h;reboot"] {
            let message = format!("{:#}", host(&format!("address = {bad:?}\n")).unwrap_err());
            assert!(message.contains("hosts.web.address"), "{bad}: {message}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, failure_persistence: None, ..Default::default() })]

        #[test]
        fn the_port_option_is_exactly_the_configured_port(
            name in "[a-z][a-z0-9-]{0,12}",
            in_address in proptest::option::of(1u16..),
            in_port in proptest::option::of(1u16..),
        ) {
            let address = match in_address { Some(p) => format!("{name}:{p}"), None => name.clone() };
            let port_line = in_port.map(|p| format!("port = {p}\n")).unwrap_or_default();
            let outcome = options_for(&format!("address = {address:?}\n{port_line}"));
            match (in_address, in_port) {
                (Some(a), Some(p)) if a != p => proptest::prop_assert!(outcome.is_err()),
                (a, p) => {
                    let options = outcome.unwrap();
                    let expected = p.or(a).map(|p| p.to_string());
                    proptest::prop_assert_eq!(port_option(&options).map(str::to_string), expected);
                }
            }
        }
    }

    #[test]
    fn connectivity_is_a_harmless_echo() {
        assert_eq!(connectivity_cmd().to_string(), "echo cultivate-connectivity-ok");
    }
}
