//! `cargo xtask render`: prints exactly the compose file (and with `--env` the env file)
//! a deploy would write for a target OS, so it can be read and checked before a deploy.

use anyhow::{Context, Result, bail};

use crate::compose::{self, RenderInput};
use crate::config::Config;
use crate::paths::{DeploymentPaths, TargetOs};
use crate::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Target operating system: linux (docker) or macos (finch).
    #[arg(long, value_enum)]
    pub os: Option<TargetOs>,
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
    crate::images::validate_tag(&version)?;
    // No target is asked: `~` is the home guessed from the user's name (/root,
    // /home/NAME, /Users/NAME). A deploy uses the $HOME the target reports instead.
    let paths = DeploymentPaths::resolve(os, &user, &config, host)?;
    let secrets = secret_names(project)?;
    let rendered =
        compose::render(RenderInput { config: &config, paths: &paths, version: &version, secrets: &secrets });

    if args.verbose {
        eprintln!("{}", explain(&paths));
    }
    print!("{}", rendered.compose_yaml());
    if args.env {
        println!("---");
        print!("{}", rendered.env.render());
    }
    Ok(())
}

/// Names of the files under `secrets/`: each reaches the backend as a file-based secret.
/// Each must be readable by its owner only (0600 or 0400): a secret readable by others
/// on this machine is refused with the command that fixes it.
pub fn secret_names(project: &Project) -> Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;

    let dir = project.path("secrets");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && !name.starts_with('.') {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                bail!("secrets/{name}: a secret's file name may hold only letters, digits, `_`, `-` and `.`");
            }
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "secrets/{name} has mode {mode:04o}, readable by others: run `chmod 600 {}`",
                    entry.path().display()
                );
            }
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secret_files_must_be_private() {
        let root = std::env::temp_dir().join(format!("cultivate-secrets-{}", std::process::id()));
        let secrets = root.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        let project = Project { config_file: root.join("deploy.toml"), root: root.clone() };
        std::fs::write(secrets.join("api_token"), "x").unwrap();
        std::fs::set_permissions(secrets.join("api_token"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secret_names(&project).unwrap(), ["api_token"]);
        std::fs::set_permissions(secrets.join("api_token"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = secret_names(&project).unwrap_err().to_string();
        assert!(message.contains("mode 0644") && message.contains("chmod 600"), "{message}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
