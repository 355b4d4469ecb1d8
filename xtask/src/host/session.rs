//! A session with one target: the transport to it (SSH, or this machine with
//! `--local`), what the target is (OS, user, container runtime, compose command), its
//! deployment paths, and the one place remote commands run for the host tasks, so each
//! is logged (Property 35) and `--dry-run` can print instead of change.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::host::probe::ComposeCommand;
use crate::host::runtime::RuntimeKind;
pub use crate::host::selection::{HostArgs, Target};
use crate::host::transport::Transport;
use crate::model::config::Config;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{TargetOs, Version};
use crate::model::service::Service;
use crate::support::command::Cmd;
use crate::support::log::Log;

/// `--dry-run`, `--verbose` and `--yes`, shared by the tasks that change a target.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// Print every command that would change the host, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Log every command with its output.
    #[arg(long, short)]
    pub verbose: bool,
    /// Answer yes to confirmations (deploying uncommitted changes to a remote host,
    /// rolling back).
    #[arg(long, short)]
    pub yes: bool,
}

/// Whether a command only reads (run even by `--dry-run`) or changes the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Read,
    Change,
}

pub struct Session<'a> {
    /// The target's name as given (`--host`), or `local`.
    pub name: String,
    pub transport: Transport,
    pub log: &'a Log,
    pub dry_run: bool,
    pub os: TargetOs,
    /// The login user on the target.
    pub user: String,
    pub uid: String,
    pub paths: DeploymentPaths,
    /// Docker, or Finch on macOS: the runtime the target runs the stack with.
    pub runtime: RuntimeKind,
    pub compose: ComposeCommand,
    /// Bytes free at the deployment path (or its nearest existing parent).
    pub free_disk_bytes: Option<u64>,
    /// The engine's version (Docker's server, Podman's, Finch's).
    pub engine_version: Option<Version>,
}

impl<'a> Session<'a> {
    /// The services this target runs (the edge on Docker only).
    pub fn services(&self) -> Vec<Service> {
        Service::on_target(self.os, self.runtime.linux_engine())
    }

    /// Whether the engine and compose honour a healthcheck's `start_interval` (Docker
    /// 25 and Compose v2.20.2 on): checks then run every second while a container
    /// starts, so it is known healthy as soon as it is, not at the next interval.
    pub fn knows_start_interval(&self) -> bool {
        let at_least = |v: &Version, wanted: &str| Version::parse(wanted).is_some_and(|w| *v >= w);
        self.runtime == RuntimeKind::Docker
            && self.engine_version.as_ref().is_some_and(|v| at_least(v, "25.0.0"))
            && matches!(&self.compose, ComposeCommand::DockerV2(v) if at_least(v, "2.20.2"))
    }

    /// Connects (connectivity first, Property 16), detects the target and checks its
    /// runtime; with `install`, installs what is missing first (as `doctor --install`).
    pub fn open(config: &Config, target: &Target, install: bool, dry_run: bool, log: &'a Log) -> Result<Session<'a>> {
        let name = target.name().to_string();
        let transport = match target {
            Target::Host(host) => crate::host::report::connect(config, host)?,
            Target::Local => Transport::Local,
        };
        log.info(format!("connected to {transport}"));
        let report = crate::host::report::machine_report(
            config,
            &transport,
            transport.to_string(),
            target.host().and_then(|h| config.hosts.get(h)),
            install && !dry_run,
        )?;
        for action in &report.actions {
            log.info(format!("installed on {transport}: {action}"));
        }
        if !report.missing.is_empty() {
            let fix = if install { "" } else { "\n(pass --install to install what is missing)" };
            bail!("{transport} is not ready for a deploy:\n  - {}{fix}", report.missing.join("\n  - "));
        }
        let os = report.os.as_ref().map(|os| os.os).context("the target's OS is unknown")?;
        let runtime_report = report.runtime.as_ref().context("the target's runtime is unknown")?;
        let compose = runtime_report.compose.clone().context("the target has no compose command")?;
        let paths = report.paths.clone().context("the target's deployment paths are unknown")?;
        let session = Session {
            name,
            runtime: runtime_report.runtime,
            transport,
            log,
            dry_run,
            os,
            user: report.user.clone(),
            uid: report.uid.clone(),
            paths,
            compose,
            free_disk_bytes: report.free_disk_bytes,
            engine_version: runtime_report.engine.clone(),
        };
        log.info(format!(
            "{}: {} as {}, {}, deployment path {}",
            session.name,
            report.os.as_ref().map(|os| os.to_string()).unwrap_or_default(),
            session.user,
            session.compose,
            session.paths.base
        ));
        Ok(session)
    }

    /// Runs `cmd` on the target and returns its stdout; a `Change` under `--dry-run`
    /// is printed and not run (its output is empty).
    pub fn run(&self, effect: Effect, cmd: &Cmd) -> Result<String> {
        if self.skips(effect, cmd) {
            return Ok(String::new());
        }
        self.log.debug(format!("$ {cmd}"));
        let result = self.transport.output(cmd);
        match &result {
            Ok(out) if !out.is_empty() => self.log.debug(abbreviate(out)),
            Err(err) => self.log.debug(format!("failed: {err:#}")),
            _ => {}
        }
        result
    }

    /// Runs `cmd`, whatever its exit status, returning (success, stdout, stderr).
    pub fn try_run(&self, effect: Effect, cmd: &Cmd) -> Result<(bool, String, String)> {
        if self.skips(effect, cmd) {
            return Ok((true, String::new(), String::new()));
        }
        self.log.debug(format!("$ {cmd}"));
        let output = self.transport.capture(cmd)?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_string();
        self.log.debug(format!("exit {}: {}{}", output.status, abbreviate(&stdout), abbreviate(&stderr)));
        self.transport.check_reached(&output)?;
        Ok((output.status.success(), stdout, stderr))
    }

    /// Writes `bytes` to `path` on the target with `mode` (atomically).
    pub fn upload(&self, bytes: &[u8], path: &str, mode: u32) -> Result<()> {
        let cmd = crate::host::transport::upload_cmd(path, mode);
        if self.skips(Effect::Change, &cmd) {
            return Ok(());
        }
        self.log.debug(format!("$ {cmd} < ({} bytes)", bytes.len()));
        self.transport.upload(bytes, path, mode)
    }

    /// Runs `cmd` with `input` streamed to its stdin, its stdout streamed to `output`.
    pub fn stream(
        &self,
        cmd: &Cmd,
        input: Option<&mut (dyn Read + Send)>,
        output: &mut dyn std::io::Write,
    ) -> Result<u64> {
        if self.skips(Effect::Change, cmd) {
            return Ok(0);
        }
        self.log.debug(format!("$ {cmd}"));
        self.transport.stream(cmd, input, output)
    }

    fn skips(&self, effect: Effect, cmd: &Cmd) -> bool {
        if self.dry_run && effect == Effect::Change {
            println!("[{}] would run: {}", self.name, self.transport.carrier(cmd));
            return true;
        }
        if self.dry_run {
            println!("[{}] reads:     {}", self.name, self.transport.carrier(cmd));
        }
        false
    }

    /// The runtime's program with `args`, e.g. `docker image inspect …`.
    pub fn runtime_cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd::new(self.runtime.program()).args(args)
    }

    /// Whether commands run as root on the target.
    pub fn is_root(&self) -> bool {
        self.uid == "0"
    }

    pub fn close(&self) {
        self.transport.close();
    }
}

/// Long outputs in the log keep their start and end.
fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 4000;
    if text.len() <= LIMIT {
        return text.to_string();
    }
    let head: String = text.chars().take(LIMIT / 2).collect();
    let tail: String = text.chars().rev().take(LIMIT / 2).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head}\n… ({} bytes left out) …\n{tail}", text.len() - LIMIT)
}

/// Polls `check` with exponential backoff (from `first`, doubling up to `most`) until
/// it returns `Some`, or `limit` passes (then `None`).
pub fn with_backoff<T>(
    limit: Duration,
    first: Duration,
    most: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = std::time::Instant::now() + limit;
    let mut wait = first;
    loop {
        if let Some(value) = check()? {
            return Ok(Some(value));
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(wait.min(deadline - now));
        wait = (wait * 2).min(most);
    }
}

/// Asks `question` on the terminal; without one, refuses and names `--yes`.
pub fn confirm(question: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!("{question} Pass --yes to confirm (there is no terminal to ask on).");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("stopped: not confirmed");
    }
    Ok(())
}

#[cfg(test)]
impl<'a> Session<'a> {
    /// A session as root on a Linux target running Docker and Compose v1, for unit tests.
    pub fn for_tests(name: &str, transport: Transport, log: &'a Log, paths: DeploymentPaths) -> Session<'a> {
        Session {
            name: name.into(),
            transport,
            log,
            dry_run: false,
            os: TargetOs::Linux,
            user: "root".into(),
            uid: "0".into(),
            paths,
            runtime: RuntimeKind::Docker,
            compose: ComposeCommand::DockerV1(Version::parse("1.29.2").expect("a version")),
            free_disk_bytes: None,
            engine_version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_interval_needs_docker_25_and_compose_2_20_2() {
        let config = Config::parse("[app]\nname = \"cultivate\"\n", "deploy.toml", &|_| None).unwrap();
        let log = Log::new(false);
        let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &config, None).unwrap();
        let session = |runtime: RuntimeKind, engine: &str, compose: ComposeCommand| Session {
            runtime,
            compose,
            engine_version: Version::parse(engine),
            ..Session::for_tests("h", Transport::Local, &log, paths.clone())
        };
        let v = |text: &str| Version::parse(text).unwrap();
        let docker = RuntimeKind::Docker;
        assert!(session(docker, "28.5.1", ComposeCommand::DockerV2(v("2.40.3"))).knows_start_interval());
        assert!(session(docker, "25.0.0", ComposeCommand::DockerV2(v("2.20.2"))).knows_start_interval());
        assert!(!session(docker, "24.0.9", ComposeCommand::DockerV2(v("2.40.3"))).knows_start_interval());
        assert!(!session(docker, "28.5.1", ComposeCommand::DockerV2(v("2.20.1"))).knows_start_interval());
        assert!(!session(docker, "28.5.1", ComposeCommand::DockerV1(v("1.29.2"))).knows_start_interval());
        assert!(!session(docker, "20.10.24", ComposeCommand::DockerV1(v("1.29.2"))).knows_start_interval());
        let podman = session(RuntimeKind::Podman, "5.8.0", ComposeCommand::Podman(v("1.6.0")));
        assert!(!podman.knows_start_interval());
    }
}
