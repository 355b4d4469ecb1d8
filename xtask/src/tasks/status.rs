//! `cargo xtask status --host NAME [--json]`: the current release, the history, and
//! each service's state and health, read from the host. Several hosts (`--host a
//! --host b`, `--group`): read in parallel, each printed in turn, then one line per
//! host (with `--json`, an array).

use anyhow::Result;
use serde::Serialize;

use crate::host::session::{Effect, HostArgs, Session, Target};
use crate::model::certificate;
use crate::model::config::Config;
use crate::release::stack::ContainerState;
use crate::release::state::{DeploymentState, HostEvent, Layout};
use crate::release::{certs, fleet, rollout};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// Print one JSON object: `current`, `history`, `services`.
    #[arg(long)]
    pub json: bool,
    /// Log every command with its output.
    #[arg(long, short)]
    pub verbose: bool,
    /// Accepted for symmetry with the other host tasks; status asks nothing.
    #[arg(long, short, hide = true)]
    pub yes: bool,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub host: String,
    pub deployment_path: String,
    /// The release `current` points at, as recorded in the history.
    pub current: Option<DeploymentState>,
    pub history: Vec<DeploymentState>,
    /// What else was done to the host (a broken lock), oldest first.
    pub events: Vec<HostEvent>,
    pub services: Vec<ContainerState>,
    /// How what runs differs from `current` (empty when it is what runs): left by a
    /// deploy interrupted or cut off while it started; `deploy` or `rollback` fixes it.
    pub drift: Vec<String>,
    /// Every service running and healthy.
    pub healthy: bool,
    /// The TLS certificate the host serves (`null` without HTTPS).
    pub certificate: Option<ServedCertificate>,
}

/// The host's current certificate, read from the host.
#[derive(Debug, Serialize)]
pub struct ServedCertificate {
    pub serial: String,
    pub names: Vec<String>,
    /// `YYYY-MM-DD`.
    pub expires: String,
    pub days_left: i64,
}

pub fn run(project: &Project, args: &StatusArgs) -> Result<()> {
    let log = Log::new(args.verbose);
    let config = Config::load(&project.config_file)?;
    if let Some(name) = &args.target.cluster {
        return cluster_status(&config, name, args, &log);
    }
    let targets = args.target.targets(&config)?;
    // Read in parallel, printed in the order given.
    let outcomes = fleet::run_each(&targets, config.deploy.parallel, &log, |target, log| {
        let session = Session::open(&config, target, false, false, log)?;
        let status = read(&session, &config);
        session.close();
        status
    });
    if args.json {
        let statuses: Vec<&Status> = outcomes.iter().filter_map(|o| o.result.as_ref().ok()).collect();
        match statuses.as_slice() {
            [one] if targets.len() == 1 => println!("{}", serde_json::to_string_pretty(one)?),
            all => println!("{}", serde_json::to_string_pretty(all)?),
        }
    } else {
        for (index, status) in outcomes.iter().filter_map(|o| o.result.as_ref().ok()).enumerate() {
            if index > 0 {
                println!();
            }
            print_status(&config, status);
        }
    }
    if targets.len() > 1 {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| {
                let (current, healthy) = match &o.result {
                    Ok(status) => (
                        status.current.as_ref().map_or("none".to_string(), |c| c.version.clone()),
                        if status.healthy { "healthy" } else { "NOT healthy" }.to_string(),
                    ),
                    Err(err) => ("?".to_string(), format!("FAILED: {}", fleet::first_line(&format!("{err:#}")))),
                };
                vec![o.name().to_string(), current, healthy]
            })
            .collect();
        eprint!("\n{}", fleet::table(&["host", "current", "state"], &rows));
    }
    fleet::conclude("status", outcomes)
}

/// `status --cluster NAME`: read on the cluster's manager.
fn cluster_status(config: &Config, name: &str, args: &StatusArgs, log: &Log) -> Result<()> {
    let cluster = config.cluster(name)?;
    let session = Session::open(config, &Target::Host(cluster.manager.clone()), false, false, log)?;
    let status = crate::release::cluster::status(&session, name, &config.app.name);
    session.close();
    let status = status?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!("cluster {name} (manager {})", cluster.manager);
    match &status.current {
        Some(current) => {
            println!("  current:  {} (deployed {} by {})", current.version, current.timestamp, current.deployed_by)
        }
        None => println!("  current:  none (nothing deployed yet)"),
    }
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.hostname.clone(),
                n.state.clone(),
                n.availability.clone(),
                if n.manager { "manager" } else { "worker" }.to_string(),
            ]
        })
        .collect();
    print!("\n{}", fleet::table(&["node", "state", "availability", "role"], &rows));
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|s| vec![s.name.clone(), format!("{}/{}", s.running, s.desired), s.update.clone(), s.on.join(", ")])
        .collect();
    print!("\n{}", fleet::table(&["service", "tasks", "last update", "running on"], &rows));
    for lost in &status.lost {
        println!("  lost:     {lost}");
    }
    for drift in &status.drift {
        println!("  drift:    {drift}");
    }
    if let (false, Some(current)) = (status.drift.is_empty(), &status.current) {
        println!(
            "  (left by an interrupted deploy or rollback, or changed by hand: `cargo xtask rollback --cluster {name} --to {}` \
             puts the current release back, or deploy again)",
            current.version
        );
    }
    Ok(())
}

fn print_status(config: &Config, status: &Status) {
    println!("{} ({})", status.host, status.deployment_path);
    match &status.current {
        Some(current) => println!(
            "  current:  {} (deployed {} by {}, {})",
            current.version, current.timestamp, current.deployed_by, current.status
        ),
        None => println!("  current:  none (nothing deployed yet)"),
    }
    for difference in &status.drift {
        println!("  drift:    {difference}");
    }
    if !status.drift.is_empty() {
        println!(
            "            (what runs is not the current release: `cargo xtask rollback` restores it, a deploy replaces it)"
        );
    }
    if let Some(cert) = &status.certificate {
        println!(
            "  certificate: {} for {}, expires {} ({} days left{})",
            cert.serial,
            cert.names.join(", "),
            cert.expires,
            cert.days_left,
            if cert.days_left < i64::from(config.http.cert_warn_days) {
                ": renew it, then `cargo xtask certs`"
            } else {
                ""
            }
        );
    }
    println!("\n  {:<10} {:<34} {:<11} {:<10} image", "service", "container", "state", "health");
    for service in &status.services {
        println!(
            "  {:<10} {:<34} {:<11} {:<10} {}",
            service.service,
            service.name,
            service.status,
            service.health.as_deref().unwrap_or("-"),
            service.image
        );
    }
    println!("\n  history (newest first):");
    for entry in status.history.iter().rev().take(10) {
        let replaced = entry.replaced.as_deref().map(|r| format!(" (replaced {r})")).unwrap_or_default();
        println!("    {}  {:<24} {:<12}{replaced}", entry.timestamp, entry.version, entry.status.to_string());
    }
    if !status.events.is_empty() {
        println!("\n  events (newest first):");
        for event in status.events.iter().rev().take(10) {
            println!("    {}  {:<14} by {}: {}", event.timestamp, event.kind, event.by, event.detail);
        }
    }
}

pub fn read(session: &Session, config: &Config) -> Result<Status> {
    let layout = Layout::new(&session.paths);
    let history = rollout::read_history(session, &layout)?;
    let stack = rollout::stack(session, config);
    let services = rollout::read_containers(session, &stack)?;
    let health = rollout::evaluate(session, &stack, &services)?;
    let chain = session.run(Effect::Read, &certs::read_chain_cmd(&session.paths))?;
    let now = certificate::now();
    // A chain the host holds but that does not read is reported, not fatal: the rest of
    // the status still says what runs.
    let described = (!chain.trim().is_empty())
        .then(|| certificate::describe(&session.paths.certs(), chain.as_bytes()))
        .transpose()
        .unwrap_or_else(|err| {
            session.log.warn(format!("the certificate on {} cannot be read: {err:#}", session.name));
            None
        });
    let certificate = described.map(|summary| ServedCertificate {
        days_left: summary.days_left(now),
        expires: summary.expiry_date(),
        serial: summary.serial,
        names: summary.names,
    });
    Ok(Status {
        certificate,
        drift: rollout::drift(history.current(), &services),
        host: session.name.clone(),
        deployment_path: session.paths.base.clone(),
        current: history.current().cloned(),
        healthy: health.iter().all(|h| h.status == "healthy"),
        history: history.deployments,
        events: history.events,
        services,
    })
}
