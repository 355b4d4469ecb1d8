//! `cargo xtask render`: prints exactly the compose file (and with `--env` the env file)
//! a deploy would write for a target OS, so it can be read and checked before a deploy;
//! with `--stack`, the Docker Swarm stack file of the release.

use anyhow::{Context, Result, bail};

use crate::model::compose::{self, RenderInput};
use crate::model::config::Config;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{LinuxEngine, TargetOs};
use crate::model::stack;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Target operating system: linux (docker) or macos (finch).
    #[arg(long, value_enum)]
    pub os: Option<TargetOs>,
    /// The engine of a Linux target: docker, or podman (health-gated start only with
    /// docker); default: the host's `engine`, else docker.
    #[arg(long, value_enum)]
    pub engine: Option<LinuxEngine>,
    /// A host from [hosts.NAME] in deploy/deploy.toml: its user, OS hint and paths.
    #[arg(long)]
    pub host: Option<String>,
    /// The user on the target (macOS paths live in their home); default: the host's user.
    #[arg(long)]
    pub user: Option<String>,
    /// The image version to pin (default: the last `cargo xtask images` run).
    #[arg(long)]
    pub version: Option<String>,
    /// Also print the env file, after the compose file.
    #[arg(long)]
    pub env: bool,
    /// Print the Docker Swarm stack file of the release instead (Linux, Docker): what
    /// `[clusters]` deploys with `docker stack deploy`.
    #[arg(long, conflicts_with = "env")]
    pub stack: bool,
    /// Explain the volume strategy chosen for the target OS (on stderr).
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(project: &Project, args: &RenderArgs) -> Result<()> {
    let config = Config::load(&project.config_file)?;
    let host = args.host.as_deref().map(|name| config.host(name)).transpose()?;
    let Some(os) = args.os.or(host.and_then(|h| h.os)) else {
        bail!("which target OS? pass --os linux or --os macos (or --host NAME with `os` set in its table)");
    };
    let user = match (&args.user, host) {
        (Some(user), _) => user.clone(),
        (None, Some(host)) => host.user.clone(),
        (None, None) if os == TargetOs::Linux => "root".to_string(),
        (None, None) => bail!("macOS paths live in the target user's home: pass --user NAME or --host NAME"),
    };
    let version = match &args.version {
        Some(version) => version.clone(),
        None => crate::images::read_latest_manifest(project)
            .map(|manifest| manifest.version)
            .context("no image version to pin: pass --version V, or build the images first (cargo xtask images)")?,
    };
    crate::model::image::validate_tag(&version)?;
    // No target is asked: `~` is the home guessed from the user's name (/root,
    // /home/NAME, /Users/NAME). A deploy uses the $HOME the target reports instead.
    let paths = DeploymentPaths::resolve(os, &user, &config, host)?;
    let secrets = crate::support::secrets::secret_names(project)?;
    let engine = args.engine.or(host.and_then(|h| h.engine)).unwrap_or_default();
    let rendered = compose::render(RenderInput {
        config: &config,
        paths: &paths,
        engine,
        version: &version,
        images: &[],
        secrets: &secrets,
        // Known only of a host: `render` asks none.
        start_interval: false,
    });

    if args.verbose {
        eprintln!("{}", explain(&paths));
    }
    if args.stack {
        if os != TargetOs::Linux || engine != LinuxEngine::Docker {
            bail!(
                "--stack renders for Docker Swarm: a Linux target with the docker engine (--os linux --engine docker)"
            );
        }
        let files = crate::support::secrets::read_secrets(project)?;
        // A new task is watched as long as its health check may take to fail.
        let monitor = config.health.interval_seconds * config.health.retries;
        let digest = stack::secrets_digest(&files);
        let stack = stack::stack_file(&rendered, &config.app.name, &digest, monitor, stack::Publish::Ingress);
        print!("{}", stack::to_yaml(&stack));
        return Ok(());
    }
    print!("{}", rendered.compose_yaml());
    if args.env {
        println!("---");
        print!("{}", rendered.env.render());
    }
    Ok(())
}

/// Why the volumes are what they are on this OS.
pub fn explain(paths: &DeploymentPaths) -> String {
    let data = match paths.os {
        TargetOs::Linux => format!(
            "data volume: host path {}/db_data (a plain directory on the host: backups are a file copy)",
            paths.volumes
        ),
        TargetOs::Macos => "data volume: named volume db_data (it lives inside Finch's VM; macOS paths shared \
                            into the VM are slower and lose file ownership)"
            .to_string(),
    };
    format!(
        "target {}: deployment {}, config {}, logs {}\n\
         socket volume: named volume db_socket, mounted by database and backend only \
         (a Unix socket cannot live on a macOS path shared into Finch's VM, so it is never a host path)\n{data}",
        paths.os, paths.base, paths.config, paths.logs
    )
}
