//! `cargo xtask rollback --host NAME [--to VERSION]`: restores the previous active
//! release (or the named one) from what the host kept: its compose file, env file and
//! images. Started, verified healthy (Properties 30, 31) and recorded as `rolled_back`.
//! The data volume is never touched. Several hosts (`--host a --host b`, `--group`):
//! in parallel (`[deploy] parallel`), confirmed once, then a table of each host's result.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::host::session::{ChangeArgs, HostArgs, Session};
use crate::model::config::Config;
use crate::release::{activate, fleet, rollout};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// The release to restore (default: the one that ran before the current one).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub fn run(project: &Project, args: &RollbackArgs) -> Result<()> {
    crate::support::interrupt::install();
    let log = Log::new(args.change.verbose);
    let config = Config::load(&project.config_file)?;
    if let Some(version) = &args.to {
        crate::model::image::validate_tag(version).context("--to")?;
    }
    if let Some(name) = &args.target.cluster {
        let cluster = config.cluster(name)?;
        if !args.change.yes && !args.change.dry_run {
            let to = args.to.as_deref().unwrap_or("the release before the current one");
            crate::host::session::confirm(&format!("Roll cluster {name} back to {to}?"))?;
        }
        let dry_run = args.change.dry_run;
        let version = crate::release::cluster::roll_back(&config, (name, cluster), args.to.as_deref(), dry_run, &log)?;
        if dry_run {
            println!("\nDry run: nothing was changed on cluster {name}. The commands above roll it back to {version}.");
        } else {
            println!("Rolled back cluster {name} to {version}");
        }
        return Ok(());
    }
    let targets = args.target.targets(&config)?;
    // Several hosts are confirmed once, for all of them.
    let several = targets.len() > 1;
    if several && !args.change.yes && !args.change.dry_run {
        let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
        let to = args.to.as_deref().unwrap_or("the release each ran before");
        crate::host::session::confirm(&format!("Roll back {} hosts ({}) to {to}?", names.len(), names.join(", ")))?;
    }
    let ask = !several && !args.change.yes;
    let outcomes = fleet::run_each(&targets, config.deploy.parallel, &log, |target, log| {
        let started = Instant::now();
        let session = Session::open(&config, target, false, args.change.dry_run, log)?;
        let holder = args.to.as_deref().unwrap_or("previous");
        let result = rollout::with_lock(&session, &config, "rollback", holder, || {
            activate::roll_back(&session, &config, args.to.as_deref(), ask)
        });
        let version = result.as_ref().map(|v| v.clone()).unwrap_or_else(|_| "none".to_string());
        let done =
            format!("{} serves {version} again, healthy, after {:.1} s", session.name, started.elapsed().as_secs_f64());
        rollout::conclude(&session, &config, crate::release::state::LoggedTask::Rollback, &version, &result, &done);
        result
    });
    for outcome in &outcomes {
        if let Ok(version) = &outcome.result {
            println!("Rolled back {} to {version}", outcome.name());
        }
    }
    if several {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| {
                let version = o.result.as_ref().map_or("-".to_string(), String::clone);
                vec![o.name().to_string(), version, format!("{:.1} s", o.seconds), fleet::result_cell(&o.result)]
            })
            .collect();
        print!("\n{}", fleet::table(&["host", "version", "time", "result"], &rows));
    }
    fleet::conclude("rollback", outcomes)
}
