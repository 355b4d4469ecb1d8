//! `cargo xtask deploy --host NAME`: build, ship, release, start, verify healthy, and
//! roll back by itself on failure (design Component 3, `main()`).
//!
//! Order, stopping at the first failure: configuration and local prerequisites →
//! connect and check the target → take the deploy lock → build the images → check
//! ports and disk → ship what the target lacks, verified → write the release → start
//! it and wait for health → point `current` at it and record it. A failure once the
//! release has started restores the previous release (or, on a first deploy, stops the
//! new one); the data volume is never touched.
//!
//! Several hosts (`--host a --host b`, `--group`): the images are built once, before
//! any host is reached, and each archive is made once; then each host goes through the
//! steps above on its own thread (at most `[deploy] parallel` at once), and a table
//! says what each did. With `[deploy] all_or_nothing`, a failure on one host rolls
//! back the hosts that succeeded.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::host::runtime::Runtime;
use crate::host::session::{ChangeArgs, Effect, HostArgs, Session, Target};
use crate::images::{self, BuildOptions, Manifest, Service};
use crate::model::certificate::LocalCertificates;
use crate::model::config::Config;
use crate::model::image::Image;
use crate::release::fleet::{self, HostOutcome};
use crate::release::ship;
use crate::release::state::{self as release, Layout};
use crate::release::{activate, rollout, write};
use crate::support::log::Log;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: HostArgs,
    /// Where the images are built: here (then shipped), or on the host from the
    /// build contexts sent over SSH.
    #[arg(long, value_enum, default_value_t = BuildMode::Local)]
    pub build_mode: BuildMode,
    /// Deploy the images this manifest records (from `cargo xtask images`) instead of
    /// building them now.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Install what is missing: Docker and Compose on the host (or start Finch's VM),
    /// and with --local the engine on this machine.
    #[arg(long)]
    pub install: bool,
    /// Deploy without the database backup taken before a new backend starts (recorded
    /// in the host's history).
    #[arg(long)]
    pub skip_backup: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildMode {
    Local,
    Remote,
}

/// Time spent per phase, for the summary.
#[derive(Default)]
struct Phases(Vec<(&'static str, f64)>);

impl Phases {
    /// `connect 0.4 s, pre-checks 0.2 s, … (total 9.1 s)`.
    fn describe(&self) -> String {
        let total: f64 = self.0.iter().map(|(_, s)| s).sum();
        let times: Vec<String> = self.0.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
        format!("{} (total {total:.1} s)", times.join(", "))
    }

    fn time<T>(&mut self, name: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = work();
        self.0.push((name, started.elapsed().as_secs_f64()));
        result
    }
}

pub fn run(project: &Project, args: &DeployArgs) -> Result<()> {
    crate::support::interrupt::install();
    let log = Log::new(args.change.verbose);
    let started_at = crate::support::log::now_rfc3339();

    // 1. Configuration, local prerequisites, local runtime.
    let config = Config::load(&project.config_file)?;
    let cluster = args.target.cluster.as_deref().map(|name| cluster_named(&config, name)).transpose()?;
    let targets = match &cluster {
        Some((_, cluster)) => cluster.nodes.iter().cloned().map(Target::Host).collect(),
        None => args.target.targets(&config)?,
    };
    let secrets = crate::support::secrets::read_secrets(project)?;
    let now = crate::model::certificate::now();
    let certs = LocalCertificates::load(&config, now)?;
    if let Some(warning) = certs.as_ref().and_then(|c| c.expiry_warning(now, config.http.cert_warn_days)) {
        log.warn(warning);
    }
    if targets.iter().any(|t| t.host().is_some()) && which::which("ssh").is_err() {
        bail!("the OpenSSH client (ssh) is missing on this machine: `sudo apt-get install openssh-client`");
    }
    // Every input is checked before the engine is touched or a host reached.
    let given = args.manifest.as_deref().map(images::read_manifest).transpose()?;
    let version = match &given {
        Some(manifest) => manifest.version.clone(),
        None => project.revision()?.version(),
    };
    let (local_runtime, engine) = if args.change.dry_run {
        (Runtime::detect_local(None)?, String::new())
    } else {
        crate::host::install::ensure_local_engine(args.install && args.target.local)?
    };
    let names = match &cluster {
        Some((name, _)) => format!("cluster {name}"),
        None => targets.iter().map(Target::name).collect::<Vec<_>>().join(", "),
    };
    if version.ends_with("-dirty") && !args.target.local && !args.change.yes && !args.change.dry_run {
        crate::host::session::confirm(&format!("Deploy uncommitted changes (version {version}) to {names}?"))?;
    }
    log.info(format!("deploying Cultivate {version} to {names}"));
    if let Some((name, cluster)) = cluster {
        let manifest = local_images(project, &config, args, given.as_ref(), (&local_runtime, &engine), &version)?;
        return deploy_cluster(
            project,
            &config,
            (name, cluster),
            (&manifest, &local_runtime),
            (args, &started_at),
            (&secrets, certs.as_ref()),
            &log,
        );
    }
    // Several hosts: one build here, before any is reached, shipped to each.
    let several = targets.len() > 1;
    let built = if several && given.is_none() && args.build_mode == BuildMode::Local && !args.change.dry_run {
        let started = Instant::now();
        let manifest = local_images(project, &config, args, None, (&local_runtime, &engine), &version)?;
        log.info(format!(
            "built {version} once for {} hosts in {:.1} s",
            targets.len(),
            started.elapsed().as_secs_f64()
        ));
        Some(manifest)
    } else {
        None
    };
    let archives = ship::shared::Archives::default();
    let inputs = Inputs {
        release: write::ReleaseInputs {
            project,
            config: &config,
            version: &version,
            secrets: &secrets,
            certs: &certs,
            started_at: &started_at,
        },
        args,
        local_runtime: &local_runtime,
        engine: &engine,
        given: given.as_ref().or(built.as_ref()),
        archives: several.then_some(&archives),
    };
    let outcomes =
        fleet::run_each(&targets, config.deploy.parallel, &log, |target, log| deploy_one(&inputs, target, log));
    if !several {
        if let Some(Ok(deployed)) = outcomes.first().map(|o| &o.result) {
            if args.change.dry_run {
                println!(
                    "\nDry run: nothing was changed on {}. The commands above are what a deploy of {version} would run.",
                    deployed.host
                );
            } else {
                print_summary(&version, deployed);
            }
        }
        return fleet::conclude("deploy", outcomes);
    }
    let failed = outcomes.iter().any(|o| o.result.is_err());
    let undone = if failed && config.deploy.all_or_nothing && !args.change.dry_run {
        undo_successes(&config, &outcomes, &version, &log)
    } else {
        Vec::new()
    };
    print!("\n{}", deploy_table(&outcomes, &undone, &version));
    if failed && !config.deploy.all_or_nothing {
        println!(
            "  The hosts that failed rolled themselves back; the others run {version}. (`[deploy] all_or_nothing = true` \
             rolls them back too.)"
        );
    }
    fleet::conclude("deploy", outcomes)
}

/// `[clusters.NAME]`, or an error naming the configured ones.
fn cluster_named<'c>(config: &'c Config, name: &'c str) -> Result<(&'c str, &'c crate::model::config::Cluster)> {
    Ok((name, config.cluster(name)?))
}

/// A deploy to a swarm: the images of the stack's services, the secrets, and the
/// release layer's cluster deploy; then one line per node.
fn deploy_cluster(
    project: &Project,
    config: &Config,
    (name, cluster): (&str, &crate::model::config::Cluster),
    (manifest, local): (&Manifest, &Runtime),
    (args, started_at): (&DeployArgs, &str),
    (secrets, certs): (&[(String, Vec<u8>)], Option<&LocalCertificates>),
    log: &Log,
) -> Result<()> {
    let started = Instant::now();
    // The stack's services: Swarm's routing takes the edge's place.
    let images = local_images_of(&[Service::Database, Service::BackendApi, Service::WebFrontend], manifest, local)?;
    let release = crate::release::cluster::ClusterRelease {
        config,
        name,
        cluster,
        local,
        images: &images,
        version: &manifest.version,
        secrets,
        state_dir: &project.state_dir(),
        started_at,
        skip_backup: args.skip_backup,
        certs,
        dry_run: args.change.dry_run,
    };
    let outcome = crate::release::cluster::deploy(&release, log)?;
    if args.change.dry_run {
        println!(
            "\nDry run: nothing was changed on cluster {name}. The commands above are what a deploy of {} would run.",
            manifest.version
        );
        return Ok(());
    }
    println!("\nCultivate {} is live on cluster {name} in {:.1} s", manifest.version, started.elapsed().as_secs_f64());
    let rows: Vec<Vec<String>> = outcome
        .nodes
        .iter()
        .map(|(node, bytes)| {
            let address = config.hosts.get(node).map_or(node.as_str(), |h| h.address.as_str());
            let role = if *node == cluster.data_node { "data, frontend" } else { "frontend" };
            vec![node.clone(), role.to_string(), format!("{:.2} MB", *bytes as f64 / 1e6), config.http.url(address)]
        })
        .collect();
    print!("{}", fleet::table(&["node", "runs", "shipped", "url"], &rows));
    Ok(())
}

/// One host's deploy, from connecting to its summary (its log written on it).
fn deploy_one(inputs: &Inputs, target: &Target, log: &Log) -> Result<Deployed> {
    let (args, config, version) = (inputs.args, inputs.release.config, inputs.release.version);
    let started = Instant::now();
    let mut phases = Phases::default();
    // 2. Connect and check the target.
    let session = phases.time("connect", || Session::open(config, target, args.install, args.change.dry_run, log))?;
    // 3. The lock, held for the rest of the deploy.
    let result = rollout::with_lock(&session, config, "deploy", version, || pipeline(inputs, &session, &mut phases));
    let done = if args.change.dry_run {
        format!("dry run of the deploy of {version} to {} done", session.name)
    } else {
        format!("deploy of {version} to {} done in {:.1} s", session.name, started.elapsed().as_secs_f64())
    };
    if result.is_ok() && !args.change.dry_run {
        // Where the time went, in the host's log (and on each host's line).
        session.log.info(format!("time: {}", phases.describe()));
    }
    rollout::conclude(&session, config, release::LoggedTask::Deploy, version, &result, &done);
    let summary = result?;
    Ok(Deployed { host: session.name.clone(), url: config.http.url(&address(&session)), summary, phases })
}

/// What a host that was deployed to reports.
struct Deployed {
    host: String,
    url: String,
    summary: Summary,
    phases: Phases,
}

/// With `[deploy] all_or_nothing`, after a host failed: each host that succeeded goes
/// back to the release it ran before (in parallel, each under its own lock). Returns,
/// per host that succeeded, what became of it.
fn undo_successes(
    config: &Config,
    outcomes: &[HostOutcome<Deployed>],
    version: &str,
    log: &Log,
) -> Vec<(String, String)> {
    let succeeded: Vec<(Target, Option<String>)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|d| (o.target.clone(), d.summary.replaced.clone())))
        .collect();
    if succeeded.is_empty() {
        return Vec::new();
    }
    log.warn(format!(
        "a host failed and `[deploy] all_or_nothing` is on: rolling back the {} host(s) that took {version}",
        succeeded.len()
    ));
    let targets: Vec<Target> = succeeded.iter().map(|(t, _)| t.clone()).collect();
    let undone = fleet::run_each(&targets, config.deploy.parallel, log, |target, log| {
        let replaced = succeeded.iter().find(|(t, _)| t == target).and_then(|(_, r)| r.clone());
        match replaced {
            None => Ok(format!("kept {version}: its first release, there is nothing to return to")),
            Some(previous) if previous == version => Ok(format!("kept {version}: it ran {version} before")),
            Some(previous) => {
                let session = Session::open(config, target, false, false, log)?;
                let result = rollout::with_lock(&session, config, "rollback", &previous, || {
                    activate::roll_back(&session, config, Some(&previous), false)
                });
                let done = format!("{} rolled back to {previous} (all_or_nothing)", session.name);
                rollout::conclude(&session, config, release::LoggedTask::Rollback, &previous, &result, &done);
                result.map(|v| format!("rolled back to {v}"))
            }
        }
    });
    undone
        .into_iter()
        .map(|o| {
            let text = match o.result {
                Ok(text) => text,
                Err(err) => format!("rollback FAILED: {}", fleet::first_line(&format!("{err:#}"))),
            };
            (o.target.name().to_string(), text)
        })
        .collect()
}

/// The summary of a deploy to several hosts: host, version, bytes, time, result.
fn deploy_table(outcomes: &[HostOutcome<Deployed>], undone: &[(String, String)], version: &str) -> String {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let (bytes, result) = match &o.result {
                Ok(deployed) => {
                    let result = match undone.iter().find(|(host, _)| host == o.name()) {
                        Some((_, what)) => format!("ok, then {what}"),
                        None => format!("ok: {}", deployed.url),
                    };
                    (format!("{:.2} MB", deployed.summary.sent_bytes as f64 / 1e6), result)
                }
                Err(_) => ("-".to_string(), fleet::result_cell(&o.result)),
            };
            vec![o.name().to_string(), version.to_string(), bytes, format!("{:.1} s", o.seconds), result]
        })
        .collect();
    fleet::table(&["host", "version", "shipped", "time", "result"], &rows)
}

/// What a successful deploy reports.
struct Summary {
    images: Vec<(String, String, String)>,
    sent_bytes: u64,
    /// The version that was current before (what `all_or_nothing` returns to).
    replaced: Option<String>,
}

/// What the deploy works from, settled before it connects.
struct Inputs<'a> {
    /// The project, configuration, version, secrets and certificates the release is
    /// written from.
    release: write::ReleaseInputs<'a>,
    args: &'a DeployArgs,
    local_runtime: &'a Runtime,
    /// The local engine's version, as it answered.
    engine: &'a str,
    /// The images `--manifest` names, checked (else they are built now).
    given: Option<&'a Manifest>,
    /// Several hosts: each archive made once, sent to each.
    archives: Option<&'a ship::shared::Archives>,
}

fn pipeline(inputs: &Inputs, session: &Session, phases: &mut Phases) -> Result<Summary> {
    let Inputs { args, local_runtime, engine, given, .. } = *inputs;
    let write::ReleaseInputs { project, config, version, .. } = inputs.release;
    let layout = Layout::new(&session.paths);
    let stack = rollout::stack(session, config);

    // 4a. Ports: free, or published by this stack already. What runs is read once: the
    // lock is held, so it is still so when the release is written (7).
    let running = phases.time("pre-checks", || {
        let running = rollout::read_containers(session, &stack)?;
        check_ports(session, config, &running)?;
        Ok(running)
    })?;

    let history = rollout::read_history(session, &layout)?;
    // 5 and 6. Images: built here and shipped, or built on the host.
    let (images, sent_bytes) = match args.build_mode {
        BuildMode::Local => {
            let manifest = phases
                .time("build", || local_images(project, config, args, given, (local_runtime, engine), version))?;
            let local = keep_unchanged_images(
                session,
                local_runtime,
                &history,
                local_images_of(&session.services(), &manifest, local_runtime)?,
            )?;
            phases.time("ship", || {
                ship::ship_all(session, local_runtime, &local, &project.state_dir(), inputs.archives)
            })?
        }
        BuildMode::Remote => phases.time("remote build", || {
            crate::release::remote_build::run(project, config, session, local_runtime, version)
        })?,
    };

    // 7. The release, complete before anything starts (Property 22).
    let current = history.current();
    let replaced = current.map(|c| c.version.clone());
    let drift = rollout::drift(current, &running);
    if !drift.is_empty() {
        session.log.warn(format!(
            "what runs on {} is not the current release {}: {} (left by an interrupted deploy, or changed by hand). \
             This deploy replaces it{}",
            session.name,
            current.map_or("(none)", |c| c.version.as_str()),
            drift.join("; "),
            current.map(|c| format!("; should it fail, {} is restored", c.version)).unwrap_or_default()
        ));
    }
    // 6b. The data, backed up before a new backend starts (it may migrate the schema).
    let backup = phases.time("backup", || {
        let skip = args.skip_backup;
        crate::release::backup::before_release(session, config, &history, &running, &images, version, skip)
    })?;
    let notes = write::Notes { backup, bytes_shipped: sent_bytes };
    let state =
        phases.time("release", || write::write_release(&inputs.release, session, &layout, &images, &running, notes))?;

    // 8. Start and wait for health; on failure, the previous release comes back.
    let history = phases
        .time("start", || crate::release::activate::go_live(session, config, &stack, &layout, state, &history))?;
    // 9. Success.
    rollout::prune(session, config, &layout, &history, version);
    Ok(Summary {
        images: images.iter().map(|i| (i.service.clone(), i.reference.clone(), i.id.clone())).collect(),
        sent_bytes,
        replaced,
    })
}

/// Ports the stack publishes must be free, or published by this stack already.
fn check_ports(session: &Session, config: &Config, running: &[crate::release::stack::ContainerState]) -> Result<()> {
    let wanted = config.http.published_ports();
    let text = session.run(Effect::Read, &crate::host::report::listening_ports_cmd(session.os))?;
    let listening = crate::host::report::parse_listening(&text, session.os);
    let ours: Vec<u16> = running.iter().flat_map(|c| c.host_ports.iter().copied()).collect();
    let taken: Vec<u16> = wanted.into_iter().filter(|p| listening.contains(p) && !ours.contains(p)).collect();
    if !taken.is_empty() {
        bail!(
            "port {} on {} is in use by something other than this stack: stop it, or choose other ports with \
             `[http] port` / `[http] https_port` in {}",
            taken.iter().map(u16::to_string).collect::<Vec<_>>().join(" and "),
            session.name,
            crate::model::config::CONFIG_FILE
        );
    }
    Ok(())
}

/// The images to deploy: the given manifest, or a build now (the images task).
fn local_images(
    project: &Project,
    config: &Config,
    args: &DeployArgs,
    given: Option<&Manifest>,
    (runtime, engine): (&Runtime, &str),
    version: &str,
) -> Result<Manifest> {
    if let Some(manifest) = given {
        return Ok(manifest.clone());
    }
    if args.change.dry_run {
        println!("[local] would run: cargo xtask images --version {version}");
        let path = crate::images::latest_manifest_path(project);
        return images::read_manifest(&path)
            .context("--dry-run needs images built once (`cargo xtask images`) to plan with");
    }
    let options = BuildOptions { version: Some(version.to_string()), ..BuildOptions::default() };
    images::build(project, config, runtime, engine, &options)
}

/// The manifest's images of the services the target runs, checked against this
/// machine's engine.
fn local_images_of(services: &[Service], manifest: &Manifest, runtime: &Runtime) -> Result<Vec<Image>> {
    services
        .iter()
        .map(|service| {
            let record = manifest
                .image(*service)
                .with_context(|| format!("the images manifest {} has no {service} image", manifest.version))?;
            let details = runtime.inspect_image(&record.reference)?.with_context(|| {
                format!("{} is not in this machine's engine: run `cargo xtask images`", record.reference)
            })?;
            Ok(details.to_image(service.name(), &record.reference))
        })
        .collect()
}

/// The images of this release, those unchanged since the current release named as it
/// names them (so their containers are kept), and tagged so here too: `save` finds an
/// image by that name should the host have lost it.
fn keep_unchanged_images(
    session: &Session,
    local: &Runtime,
    history: &release::History,
    images: Vec<Image>,
) -> Result<Vec<Image>> {
    let (images, carried) = history.carry_over_unchanged(images);
    for image in images.iter().filter(|i| carried.contains(&i.service)) {
        session.log.info(format!(
            "{}: unchanged since {}, which stays its image (its container is kept)",
            image.service, image.reference
        ));
        if !session.dry_run {
            local.tag(&image.id, &image.reference)?;
        }
    }
    Ok(images)
}

/// The address the target was reached at, for its URL.
fn address(session: &Session) -> String {
    match &session.transport {
        crate::host::transport::Transport::Local | crate::host::transport::Transport::Scripted(_) => {
            "127.0.0.1".to_string()
        }
        crate::host::transport::Transport::Ssh(ssh) => ssh.target.host.clone(),
    }
}

fn print_summary(version: &str, deployed: &Deployed) {
    let Deployed { host, url, summary, phases } = deployed;
    println!("\nCultivate {version} is live on {host}: {url}");
    println!("\n  {:<14} {:<44} id", "service", "image");
    for (service, reference, id) in &summary.images {
        let short = id.trim_start_matches("sha256:");
        println!("  {service:<14} {reference:<44} {}", &short[..12.min(short.len())]);
    }
    println!("\n  image bytes shipped: {:.2} MB", summary.sent_bytes as f64 / 1e6);
    println!("  time: {}", phases.describe());
}
