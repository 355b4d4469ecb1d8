//! `cargo xtask lock --host NAME [--release] [--json]`: who holds the host's deploy
//! lock, and with `--release` break it (recorded in the host's history). Several
//! hosts (`--host a --host b`, `--group`): each in turn.

use anyhow::Result;

use crate::host::session::{HostArgs, Session, Target};
use crate::model::config::Config;
use crate::release::fleet;
use crate::release::rollout;
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// Break the lock: for a holder that will not come back (its process is gone, or
    /// its machine unreachable). A holder running on this machine is refused.
    #[arg(long)]
    pub release: bool,
    /// Print the lock as JSON (`null` when the host is not locked).
    #[arg(long)]
    pub json: bool,
    /// Log every command with its output.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(project: &Project, args: &LockArgs) -> Result<()> {
    let log = Log::new(args.verbose);
    let config = Config::load(&project.config_file)?;
    let targets = args.target.history_targets(&config)?;
    fleet::conclude("lock", fleet::run_in_turn(&targets, |target| one(&config, target, args, &log)))
}

fn one(config: &Config, target: &Target, args: &LockArgs, log: &Log) -> Result<()> {
    let session = Session::open(config, target, false, false, log)?;
    let result = (|| {
        let view = rollout::inspect_lock(&session, config)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            match &view {
                None => println!("{}: not locked", session.name),
                Some(view) => {
                    let holder = match &view.holder {
                        Some(holder) => format!("{holder}"),
                        None => format!("a lock file without a record ({:?})", view.text.trim()),
                    };
                    let silent = view.silent_seconds.map(|s| format!(", last renewed {s} s ago")).unwrap_or_default();
                    let verdict = if view.stale { "stale: the next deploy takes it over" } else { "held" };
                    println!("{}: locked by {holder}{silent} ({verdict})\n  {}", session.name, view.path);
                }
            }
        }
        match (&view, args.release) {
            (Some(view), true) => rollout::break_lock(&session, config, view),
            (None, true) => {
                log.info(format!("{} is not locked: nothing to release", session.name));
                Ok(())
            }
            _ => Ok(()),
        }
    })();
    session.close();
    result
}
