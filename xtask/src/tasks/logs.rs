//! `cargo xtask logs --host NAME [--service S] [--lines N] [--follow]`: the
//! containers' logs, read through the same transport as everything else.

use anyhow::{Result, bail};

use crate::host::session::{HostArgs, Session, Target};
use crate::model::config::Config;
use crate::model::service::Service;
use crate::release::fleet;
use crate::release::rollout;
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// database, backend, frontend or edge (default: all).
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// How many of the last lines to show per container.
    #[arg(long, default_value_t = 100)]
    pub lines: u32,
    /// Keep printing new lines (one service only; stop with Ctrl-C).
    #[arg(long, short)]
    pub follow: bool,
    /// Log every command with its output.
    #[arg(long, short)]
    pub verbose: bool,
    /// Accepted for symmetry with the other host tasks; logs asks nothing.
    #[arg(long, short, hide = true)]
    pub yes: bool,
}

/// `backend-api` and `web-frontend` (the image names) are accepted too.
pub fn service_name(given: &str) -> Result<&'static str> {
    let name = match given {
        "api" => "backend",
        "web" | "nginx" => "frontend",
        "postgres" | "postgresql" | "db" => "database",
        other => other,
    };
    let service = Service::ALL.into_iter().find(|s| s.compose_name() == name || s.name() == name);
    match service {
        Some(service) => Ok(service.compose_name()),
        None => {
            let names: Vec<&str> = Service::ALL.iter().map(|s| s.compose_name()).collect();
            bail!("--service {given:?} is not a service of the stack: use one of {}", names.join(", "))
        }
    }
}

pub fn run(project: &Project, args: &LogsArgs) -> Result<()> {
    let wanted = args.service.as_deref().map(service_name).transpose()?;
    if args.follow && wanted.is_none() {
        bail!("--follow needs one service: add --service database|backend|frontend|edge");
    }
    let log = Log::new(args.verbose);
    let config = Config::load(&project.config_file)?;
    if let Some(name) = &args.target.cluster {
        return cluster_logs(&config, name, args, wanted, &log);
    }
    let targets = args.target.targets(&config)?;
    if args.follow && targets.len() > 1 {
        bail!("--follow follows one host: pass one --host (without --follow, each host's logs are printed in turn)");
    }
    let outcomes = fleet::run_in_turn(&targets, |target| {
        if targets.len() > 1 {
            println!("\n##### {} #####", target.name());
        }
        print_logs(&config, target, args, wanted, &log)
    });
    fleet::conclude("logs", outcomes)
}

/// `logs --cluster NAME`: each service's logs from all its tasks, read on the manager
/// (`docker service logs`).
fn cluster_logs(config: &Config, name: &str, args: &LogsArgs, wanted: Option<&str>, log: &Log) -> Result<()> {
    let cluster = config.cluster(name)?;
    let session = Session::open(config, &Target::Host(cluster.manager.clone()), false, false, log)?;
    let mut stdout = std::io::stdout();
    let services = ["database", "backend", "frontend"];
    let result = services.iter().filter(|s| wanted.is_none_or(|w| w == **s)).try_for_each(|service| {
        if wanted.is_none() {
            println!("==> {service} <==");
        }
        let mut cmd = crate::support::command::Cmd::new("sh")
            .args(["-c", "\"$@\" 2>&1", "logs", "docker", "service", "logs", "--timestamps", "--tail"])
            .arg(args.lines.to_string());
        if args.follow {
            cmd = cmd.arg("--follow");
        }
        session.stream(&cmd.arg(format!("{}_{service}", config.app.name)), None, &mut stdout).map(|_| ())
    });
    session.close();
    result
}

fn print_logs(config: &Config, target: &Target, args: &LogsArgs, wanted: Option<&str>, log: &Log) -> Result<()> {
    let session = Session::open(config, target, false, false, log)?;
    let stack = rollout::stack(&session, config);
    let containers = rollout::read_containers(&session, &stack)?;
    let chosen: Vec<_> = containers.iter().filter(|c| wanted.is_none_or(|w| c.service == w)).collect();
    if chosen.is_empty() {
        session.close();
        bail!(
            "{} runs no {} container of {}: deploy first (`cargo xtask deploy`)",
            session.name,
            wanted.unwrap_or("Cultivate"),
            config.app.name
        );
    }
    let mut stdout = std::io::stdout();
    for container in chosen {
        if wanted.is_none() {
            println!("==> {} ({}) <==", container.service, container.name);
        }
        // The runtime prints the container's stderr on its stderr: merge both here.
        let cmd = crate::support::command::Cmd::new("sh")
            .args(["-c", "\"$@\" 2>&1", "logs"])
            .args(std::iter::once(stack.logs_cmd(&container.name, args.lines, args.follow, true).program))
            .args(stack.logs_cmd(&container.name, args.lines, args.follow, true).args);
        session.stream(&cmd, None, &mut stdout)?;
    }
    session.close();
    Ok(())
}
