//! `cargo xtask audit --host NAME [--json]`: every deploy, rollback, restore, lock
//! break and certificate change on the host, newest first, from the host's history.
//! Several hosts (`--host a --host b`, `--group`): each host's trail in turn (with
//! `--json`, one object keyed by host).

use anyhow::Result;

use crate::host::session::{HostArgs, Session, Target};
use crate::model::config::Config;
use crate::release::audit::{self, AuditEntry};
use crate::release::fleet;
use crate::release::rollout;
use crate::release::state::Layout;
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// Print the trail as a JSON array (newest first).
    #[arg(long)]
    pub json: bool,
    /// Log every command with its output.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(project: &Project, args: &AuditArgs) -> Result<()> {
    let log = Log::new(args.verbose);
    let config = Config::load(&project.config_file)?;
    let targets = args.target.history_targets(&config)?;
    let several = targets.len() > 1;
    let outcomes = fleet::run_in_turn(&targets, |target| read_trail(&config, target, &log));
    let mut trails = serde_json::Map::new();
    for outcome in &outcomes {
        match &outcome.result {
            Ok(trail) if args.json && several => {
                trails.insert(outcome.name().to_string(), serde_json::to_value(trail)?);
            }
            Ok(trail) if args.json => println!("{}", serde_json::to_string_pretty(trail)?),
            Ok(trail) => print_trail(outcome.name(), trail, several),
            Err(_) => {}
        }
    }
    if args.json && several {
        println!("{}", serde_json::to_string_pretty(&trails)?);
    }
    fleet::conclude("audit", outcomes)
}

fn read_trail(config: &Config, target: &Target, log: &Log) -> Result<Vec<AuditEntry>> {
    let session = Session::open(config, target, false, false, log)?;
    let history = rollout::read_history(&session, &Layout::new(&session.paths));
    session.close();
    Ok(audit::trail(&history?))
}

fn print_trail(host: &str, trail: &[AuditEntry], several: bool) {
    if trail.is_empty() {
        println!("{host}: nothing recorded yet");
        return;
    }
    if several {
        println!("\n{host}:");
    }
    println!(
        "{:<20} {:<24} {:<18} {:<18} {:<11} {:>8} {:>10}  detail",
        "when (UTC)", "who", "action", "version", "outcome", "took", "shipped"
    );
    for entry in trail {
        println!(
            "{:<20} {:<24} {:<18} {:<18} {:<11} {:>8} {:>10}  {}",
            entry.when.get(..19).unwrap_or(&entry.when).replace('T', " "),
            entry.who,
            entry.action,
            entry.version.as_deref().unwrap_or("-"),
            entry.outcome,
            entry.duration_seconds.map_or("-".to_string(), |s| format!("{s:.1} s")),
            entry.bytes_shipped.map_or("-".to_string(), |b| format!("{:.2} MB", b as f64 / 1e6)),
            entry.detail
        );
    }
}
