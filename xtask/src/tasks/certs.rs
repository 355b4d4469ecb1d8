//! `cargo xtask certs --host NAME` (or several hosts, in parallel): installs renewed TLS certificates on a host and
//! reloads nginx in the running frontend in place: no image built, no container
//! restarted, no connection refused (design Property 15).
//!
//! The pair in `[http] cert_path` is checked here first (as a deploy checks it); on the
//! host it becomes the current pair by one rename, each running frontend checks its
//! configuration with it and reloads gracefully; should one refuse, the pair before
//! comes back. The change is recorded in the host's history.

use anyhow::{Result, bail};

use crate::host::session::{ChangeArgs, Effect, HostArgs, Session};
use crate::model::certificate::{self, LocalCertificates};
use crate::model::config::Config;
use crate::release::certs;
use crate::release::fleet;
use crate::release::rollout;
use crate::release::state::{self as release, Layout, LoggedTask};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    #[command(flatten)]
    pub target: HostArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
}

pub fn run(project: &Project, args: &CertsArgs) -> Result<()> {
    crate::support::interrupt::install();
    let log = Log::new(args.change.verbose);
    let config = Config::load(&project.config_file)?;
    let now = certificate::now();
    let Some(local) = LocalCertificates::load(&config, now)? else {
        bail!(
            "HTTPS is off in {}: set `[http] https = true` and `cert_path` to the directory holding fullchain.pem and \
             privkey.pem, then deploy",
            project.config_file.display()
        );
    };
    if let Some(warning) = local.expiry_warning(now, config.http.cert_warn_days) {
        log.warn(warning);
    }
    let summary = &local.summary;
    log.info(format!(
        "certificate {} for {} from {}, expires {} ({} days)",
        summary.serial,
        summary.names.join(", "),
        summary.issuer,
        summary.expiry_date(),
        summary.days_left(now)
    ));
    if let Some(name) = &args.target.cluster {
        let cluster = config.cluster(name)?;
        let nodes = crate::release::cluster::renew_certs(&config, (name, cluster), &local, args.change.dry_run, &log)?;
        if args.change.dry_run {
            return Ok(());
        }
        let rows: Vec<Vec<String>> = nodes
            .iter()
            .map(|(node, reloaded)| {
                let result = match reloaded {
                    None => "had this certificate already".to_string(),
                    Some(reloaded) if reloaded.is_empty() => "installed; no frontend runs there".to_string(),
                    Some(reloaded) => format!("installed; reloaded {}", reloaded.join(", ")),
                };
                vec![node.clone(), result]
            })
            .collect();
        print!("{}", fleet::table(&["node", "result"], &rows));
        return Ok(());
    }
    let targets = args.target.targets(&config)?;
    let outcomes = fleet::run_each(&targets, config.deploy.parallel, &log, |target, log| {
        let session = Session::open(&config, target, false, args.change.dry_run, log)?;
        let result =
            rollout::with_lock(&session, &config, "certs", &summary.serial, || install(&session, &config, &local));
        let done = format!("certificates on {} done", session.name);
        rollout::conclude(&session, &config, LoggedTask::Certs, "certificates", &result, &done);
        result
    });
    if targets.len() > 1 {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| vec![o.name().to_string(), format!("{:.1} s", o.seconds), fleet::result_cell(&o.result)])
            .collect();
        print!("{}", fleet::table(&["host", "time", "result"], &rows));
    }
    fleet::conclude("certs", outcomes)
}

fn install(session: &Session, config: &Config, local: &LocalCertificates) -> Result<()> {
    let began = std::time::Instant::now();
    let layout = Layout::new(&session.paths);
    let history = rollout::read_history(session, &layout)?;
    let Some(current) = history.current() else {
        bail!(
            "no release runs on {}: deploy first (`cargo xtask deploy --host {}`), which installs the certificates",
            session.name,
            session.name
        );
    };
    // A release deployed before certificates were the host's mounts its own copy:
    // renewing in place cannot reach it.
    let env =
        session.run(Effect::Read, &release::read_cmd(&layout.release_file(&current.version, release::ENV_FILE)))?;
    let mounted = env_value(&env, "CERT_PATH");
    let dir = session.paths.certs();
    if mounted.as_deref() != Some(dir.as_str()) {
        bail!(
            "the running release {} on {} {}: deploy once (`cargo xtask deploy --host {}`); from then on `certs` \
             renews in place",
            current.version,
            session.name,
            match mounted {
                Some(path) => format!("mounts its certificates from {path}, a copy of its own, not {dir}"),
                None => "serves no HTTPS".to_string(),
            },
            session.name
        );
    }

    let stack = rollout::stack(session, config);
    let containers = rollout::read_containers(session, &stack)?;
    let Some(reloaded) = certs::install_and_reload(session, local, &containers)? else {
        session.log.info(format!("{} serves this certificate already: nothing to do", session.name));
        return Ok(());
    };
    let detail = certs::installed_detail(local, &reloaded);
    rollout::record_event(session, &layout, "certificates", &detail, Some(began.elapsed()))?;
    if !session.dry_run {
        session.log.info(format!("{detail} on {}", session.name));
    }
    Ok(())
}

/// The value of `key` in an env file as a deploy writes it (one `KEY=value` per line,
/// the value quoted for a shell when it needs to be).
fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| shlex::split(value)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_values_are_read_unquoted() {
        let env = "SECRETS_PATH='/opt/a b/secrets'\nCERT_PATH=/opt/cultivate/config/certs\n";
        assert_eq!(super::env_value(env, "CERT_PATH").as_deref(), Some("/opt/cultivate/config/certs"));
        assert_eq!(super::env_value(env, "SECRETS_PATH").as_deref(), Some("/opt/a b/secrets"));
        assert_eq!(super::env_value(env, "CERT"), None);
    }
}
