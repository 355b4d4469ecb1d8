//! Getting a container engine onto a machine that has none (`--install`). The
//! commands are values; this machine runs them. Only Debian and Ubuntu are handled
//! here; other systems get the command to run themselves.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::host::runtime::Runtime;
use crate::support::command::Cmd;

/// How long a freshly started engine may take to answer.
const ENGINE_START_LIMIT: Duration = Duration::from_secs(90);

/// Makes sure a container engine answers on this machine, installing and starting
/// Docker when `install` is set. Returns the runtime and the engine version.
pub fn ensure_local_engine(install: bool) -> Result<(Runtime, String)> {
    if let Ok(runtime) = Runtime::detect_local(None)
        && let Ok(version) = runtime.ensure_engine()
    {
        if install {
            install_missing_tools(ENGINE_TOOLS)?;
        }
        return Ok((runtime, version));
    }
    if !install {
        let runtime = Runtime::detect_local(None)?;
        let version = runtime.ensure_engine().context("or pass --install to install and start Docker here")?;
        return Ok((runtime, version));
    }
    install_missing_tools(ENGINE_TOOLS)?;
    // Some packagings start the engine on install; start it only if it is still silent.
    if !Runtime::detect_local(Some(crate::host::runtime::RuntimeKind::Docker)).is_ok_and(|r| r.ensure_engine().is_ok())
    {
        start_docker()?;
    }
    let runtime = Runtime::detect_local(None)?;
    let version = wait_for_engine(&runtime)?;
    Ok((runtime, version))
}

fn is_debian_like() -> bool {
    let release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    release.lines().any(|line| {
        let line = line.trim();
        (line.starts_with("ID=") || line.starts_with("ID_LIKE="))
            && (line.contains("debian") || line.contains("ubuntu"))
    })
}

/// `apt-get` commands installing whatever of `missing` packages is needed, as root or
/// through `sudo -n` (never a password prompt).
pub fn apt_install_cmds(missing: &[&str], as_root: bool) -> Vec<Cmd> {
    if missing.is_empty() {
        return Vec::new();
    }
    let elevate = |cmd: Cmd| if as_root { cmd } else { through_sudo(cmd) };
    vec![
        elevate(Cmd::new("apt-get").args(["update", "-q"])),
        elevate(
            Cmd::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(missing.iter().copied())
                .env("DEBIAN_FRONTEND", "noninteractive"),
        ),
    ]
}

/// Whether this process runs as root.
pub fn is_root() -> Result<bool> {
    Ok(Cmd::new("id").arg("-u").output()? == "0")
}

/// The same command run by `sudo -n` (which fails rather than asking for a password);
/// the environment is passed as sudo's own `KEY=value` arguments.
pub fn through_sudo(cmd: Cmd) -> Cmd {
    let env = cmd.env.iter().map(|(key, value)| format!("{key}={value}"));
    Cmd::new("sudo").arg("-n").args(env).arg(cmd.program).args(cmd.args)
}

/// (package, program it provides) for building and shipping.
const ENGINE_TOOLS: &[(&str, &str)] = &[
    ("docker.io", "dockerd"),
    ("docker-compose", "docker-compose"),
    ("debootstrap", "debootstrap"),
    // ssh and ssh-keygen: deploy, doctor and the tests reach their hosts over SSH.
    ("openssh-client", "ssh"),
];

/// What only the tests need: the frontend and deploy tests load the page in headless
/// Chromium, at this path; the routing-mesh test boots its hosts as virtual machines
/// (the test hosts' kernel has no IPVS).
pub const TEST_TOOLS: &[(&str, &str)] =
    &[("chromium", "/usr/bin/chromium"), ("qemu-system-x86", "/usr/bin/qemu-system-x86_64")];

/// Installs (with apt, on Debian and Ubuntu) the packages of `wanted` whose program is
/// missing.
pub fn install_missing_tools(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> =
        wanted.iter().filter(|(_, program)| which::which(program).is_err()).map(|(package, _)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_debian_like() {
        bail!(
            "--install handles Debian and Ubuntu; this machine needs {} installed by hand \
             (docker engine, docker-compose, debootstrap)",
            missing.join(", ")
        );
    }
    let as_root = is_root()?;
    if !as_root && !Cmd::new("sudo").args(["-n", "true"]).succeeds() {
        bail!(
            "installing {} needs root: sudo asks for a password. Run `sudo apt-get install {}` yourself, then again without --install",
            missing.join(" "),
            missing.join(" ")
        );
    }
    crate::support::log::say(format!("installing {}", missing.join(", ")));
    for cmd in apt_install_cmds(&missing, as_root) {
        let log = std::env::temp_dir().join("cultivate-apt.log");
        cmd.run_logged(&log).with_context(|| format!("installing {}", missing.join(" ")))?;
    }
    Ok(())
}

fn start_docker() -> Result<()> {
    if Path::new("/run/systemd/system").exists() {
        crate::support::log::say("starting docker with systemctl");
        let start = Cmd::new("systemctl").args(["start", "docker"]);
        let start = if is_root()? { start } else { through_sudo(start) };
        return start.output().map(drop);
    }
    // No systemd (containers, CI machines): run dockerd in its own session so it
    // outlives this process, logging to a file.
    let log_path = Path::new("/var/log/dockerd.log");
    crate::support::log::say(format!("starting dockerd (log: {})", log_path.display()));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .context("opening /var/log/dockerd.log (are you root?)")?;
    std::process::Command::new("dockerd")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting dockerd")?;
    Ok(())
}

fn wait_for_engine(runtime: &Runtime) -> Result<String> {
    let deadline = Instant::now() + ENGINE_START_LIMIT;
    loop {
        match runtime.ensure_engine() {
            Ok(version) => return Ok(version),
            Err(err) if Instant::now() >= deadline => {
                return Err(err.context(format!(
                    "the engine did not answer within {ENGINE_START_LIMIT:?} (see /var/log/dockerd.log)"
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_means_no_commands() {
        assert!(apt_install_cmds(&[], true).is_empty());
    }

    #[test]
    fn apt_runs_noninteractively_and_through_sudo_when_not_root() {
        let cmds = apt_install_cmds(&["docker.io", "debootstrap"], false);
        let lines: Vec<String> = cmds.iter().map(ToString::to_string).collect();
        assert_eq!(lines[0], "sudo -n apt-get update -q");
        assert_eq!(
            lines[1],
            "sudo -n 'DEBIAN_FRONTEND=noninteractive' apt-get install -y -q --no-install-recommends docker.io debootstrap"
        );
        let as_root = apt_install_cmds(&["docker.io"], true);
        assert_eq!(
            as_root[1].to_string(),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io"
        );
    }
}
