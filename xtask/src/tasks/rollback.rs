//! `cargo xtask rollback --host NAME [--to VERSION]`: restores the previous active
//! release (or the named one) from what the host kept: its compose file, env file and
//! images. Started, verified healthy (Properties 30, 31) and recorded as `rolled_back`.
//! The data volume is never touched.

use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::host::session::{ChangeArgs, HostArgs, Session};
use crate::model::config::Config;
use crate::release::rollout;
use crate::release::state::Layout;
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
    let started = Instant::now();
    let config = Config::load(&project.config_file)?;
    if let Some(version) = &args.to {
        crate::model::image::validate_tag(version).context("--to")?;
    }
    let session = Session::open(&config, &args.target, false, args.change.dry_run, &log)?;
    let holder = args.to.as_deref().unwrap_or("previous");
    let result = rollout::with_lock(&session, &config, "rollback", holder, || restore(&config, args, &session));
    let version = result.as_ref().map(|v| v.clone()).unwrap_or_else(|_| "none".to_string());
    let done =
        format!("{} serves {version} again, healthy, after {:.1} s", session.name, started.elapsed().as_secs_f64());
    rollout::conclude(&session, &config, crate::release::state::LoggedTask::Rollback, &version, &result, &done);
    result.map(|version| println!("Rolled back {} to {version}", args.target.name()))
}

fn restore(config: &Config, args: &RollbackArgs, session: &Session) -> Result<String> {
    let layout = Layout::new(&session.paths);
    let stack = rollout::stack(session, config);
    let history = rollout::read_history(session, &layout)?;
    let existing = rollout::existing_releases(session, &layout)?;
    let drift = rollout::drift(history.current(), &rollout::read_containers(session, &stack)?);
    let current = history.current().map(|c| c.version.clone());
    // What runs is not the recorded current release (a deploy killed or cut off while
    // starting): a rollback without --to, or --to the current one, puts that back.
    let reconcile = history
        .current()
        .filter(|c| !drift.is_empty() && args.to.as_deref().is_none_or(|to| to == c.version))
        .filter(|c| existing.contains(&c.version));
    let (target, replaced) = match reconcile {
        Some(recorded) => {
            session.log.warn(format!(
                "what runs on {} is not the current release {}: {}. Restoring {} as recorded",
                session.name,
                recorded.version,
                drift.join("; "),
                recorded.version
            ));
            (recorded.clone(), None)
        }
        None => (history.rollback_target(args.to.as_deref(), &existing)?.clone(), current.clone()),
    };
    rollout::check_restorable(session, &layout, &target)
        .map_err(|err| anyhow::anyhow!("{err:#}; nothing was changed"))?;
    if !args.change.yes && !args.change.dry_run {
        crate::host::session::confirm(&format!(
            "Roll {} back from {} to {} (deployed {})?",
            session.name,
            current.as_deref().unwrap_or("nothing"),
            target.version,
            target.timestamp
        ))?;
    }
    session.log.info(format!(
        "rolling {} back from {} to {}",
        session.name,
        current.as_deref().unwrap_or("nothing"),
        target.version
    ));
    match crate::release::activate::restore(session, config, &stack, &layout, &history, &target, replaced)? {
        Ok(_) => Ok(target.version),
        Err(failure) => {
            // Put back what was running; the data volume was never touched.
            if let Some(current) = &current {
                session.log.warn(format!("restarting {current}, which was running before"));
                let dir = layout.release_dir(current);
                match rollout::start_and_wait(session, &stack, config, &dir, rollout::OnInterrupt::Finish)? {
                    Ok(_) => bail!("{}; {current} is running again", failure.reason),
                    Err(second) => bail!("{}; restarting {current} failed too: {}", failure.reason, second.reason),
                }
            }
            bail!("{}", failure.reason)
        }
    }
}
