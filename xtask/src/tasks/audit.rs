//! `cargo xtask audit --host NAME [--json]`: every deploy, rollback, restore, lock
//! break and certificate change on the host, newest first, from the host's history.

use anyhow::Result;

use crate::host::session::{HostArgs, Session};
use crate::model::config::Config;
use crate::release::audit::{self, AuditEntry};
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
    let session = Session::open(&config, &args.target, false, false, &log)?;
    let history = rollout::read_history(&session, &Layout::new(&session.paths));
    session.close();
    let trail = audit::trail(&history?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trail)?);
    } else {
        print_trail(&session.name, &trail);
    }
    Ok(())
}

fn print_trail(host: &str, trail: &[AuditEntry]) {
    if trail.is_empty() {
        println!("{host}: nothing recorded yet");
        return;
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
