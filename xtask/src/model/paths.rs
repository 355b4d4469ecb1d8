//! Where a release lives on its target (design Component 3.2). Linux follows the FHS:
//! `/opt/cultivate` and `/var/log/cultivate`. On macOS, Finch runs containers in a Lima
//! VM that mounts only some host directories, so everything lives under the user's
//! home, and any configured path outside what the VM mounts is refused before a deploy.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::model::config::{Config, Host};
use crate::model::platform::TargetOs;

/// Host directories Finch's VM mounts by default; `/Volumes` only when configured.
pub const FINCH_VM_MOUNTS: [&str; 4] = ["/Users", "/private", "/var/folders", "/tmp/lima"];

/// The directories of a deployment on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeploymentPaths {
    pub os: TargetOs,
    /// Everything of the deployment: releases, config, volumes, the lock.
    pub base: String,
    pub config: String,
    pub volumes: String,
    pub releases: String,
    pub logs: String,
}

impl DeploymentPaths {
    /// `<config>/certs`: the host's TLS certificates, which the frontend mounts
    /// (installed there by a deploy or `certs`, `release::certs`).
    pub fn certs(&self) -> String {
        format!("{}/certs", self.config)
    }

    /// The paths for `os`, logged in as `user`, with the home directory guessed from
    /// the user's name ([`home_of`]): for `render`, which has no target to ask. A real
    /// target uses [`DeploymentPaths::resolve_with_home`] with the home it reported.
    pub fn resolve(os: TargetOs, user: &str, config: &Config, host: Option<&Host>) -> Result<DeploymentPaths> {
        DeploymentPaths::resolve_with_home(os, user, None, config, host)
    }

    /// The paths for `os`, logged in as `user` whose home is `home` (the target's
    /// `$HOME`; `None` falls back to the guess of [`home_of`]), with the configuration's
    /// overrides. Precedence: environment variable, then the host's table, then
    /// `[paths]`, then the OS default. `~` in a path is that home.
    pub fn resolve_with_home(
        os: TargetOs,
        user: &str,
        home: Option<&str>,
        config: &Config,
        host: Option<&Host>,
    ) -> Result<DeploymentPaths> {
        // Only an absolute path is a home; `/` stays `/`, `/x/` becomes `/x`.
        let home = home.filter(|home| home.starts_with('/')).map(|home| match home.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        });
        let home = home.map_or_else(|| home_of(os, user), str::to_string);
        let chosen = |setting: &crate::model::config::PathSetting, from_host: Option<&str>| {
            setting.pick(from_host).map(|path| expand_home(path, &home))
        };
        let base = chosen(&config.paths.deployment, host.and_then(|h| h.deployment_path.as_deref())).unwrap_or_else(
            || match os {
                TargetOs::Linux => "/opt/cultivate".to_string(),
                TargetOs::Macos => format!("{home}/cultivate"),
            },
        );
        let logs = chosen(&config.paths.logs, host.and_then(|h| h.log_path.as_deref())).unwrap_or_else(|| match os {
            TargetOs::Linux => "/var/log/cultivate".to_string(),
            TargetOs::Macos => format!("{base}/logs"),
        });
        let paths = DeploymentPaths {
            os,
            config: format!("{base}/config"),
            volumes: format!("{base}/volumes"),
            releases: format!("{base}/releases"),
            logs,
            base,
        };
        if os == TargetOs::Macos {
            for path in [&paths.base, &paths.logs] {
                check_visible_to_finch(path, user, config.paths.finch_mounts_volumes)?;
            }
        }
        Ok(paths)
    }
}

/// A guess at the user's home directory on the target from its name alone
/// (`/Users/<user>`, `/root`, `/home/<user>`): right on most systems, wrong wherever
/// homes live elsewhere. Used only when the target's own `$HOME` is not known (`render`
/// without a host, or a probe that printed none).
pub fn home_of(os: TargetOs, user: &str) -> String {
    match (os, user) {
        (TargetOs::Macos, _) => format!("/Users/{user}"),
        (TargetOs::Linux, "root") => "/root".to_string(),
        (TargetOs::Linux, _) => format!("/home/{user}"),
    }
}

/// `~` and `~/x` → the home directory; anything else unchanged.
pub fn expand_home(path: &str, home: &str) -> String {
    match path.strip_prefix('~') {
        Some("") => home.to_string(),
        Some(rest) if rest.starts_with('/') => format!("{home}{rest}"),
        _ => path.to_string(),
    }
}

/// Whether `path` lies in a directory Finch's VM mounts.
pub fn visible_to_finch(path: &str, volumes_mounted: bool) -> bool {
    let under = |mount: &str| path == mount || path.strip_prefix(mount).is_some_and(|rest| rest.starts_with('/'));
    FINCH_VM_MOUNTS.iter().any(|mount| under(mount)) || (volumes_mounted && under("/Volumes"))
}

fn check_visible_to_finch(path: &str, user: &str, volumes_mounted: bool) -> Result<()> {
    if visible_to_finch(path, volumes_mounted) {
        return Ok(());
    }
    let name = path.rsplit('/').find(|part| !part.is_empty()).unwrap_or("cultivate");
    bail!(
        "Cannot access path '{path}' on macOS target\n\n\
         Finch runs containers in a Linux VM that only mounts certain host directories.\n\
         The path '{path}' is not accessible inside the VM.\n\n\
         Solutions:\n\
         1. Use a path under /Users (recommended):\n   DEPLOYMENT_PATH=/Users/{user}/cultivate\n\n\
         2. Create a symlink in your home directory:\n   ln -s {path} ~/{name}\n   DEPLOYMENT_PATH=~/{name}\n\n\
         3. Configure Lima to mount {path} (advanced):\n   Edit ~/.finch/finch.yaml to add {path} to mounts\n   \
         (for /Volumes, then set `finch_mounts_volumes = true` under [paths] in deploy/deploy.toml)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_expanded_for_the_target_user() {
        assert_eq!(expand_home("~/apps/x", "/Users/ada"), "/Users/ada/apps/x");
        assert_eq!(expand_home("~", "/root"), "/root");
        assert_eq!(expand_home("/opt/x", "/root"), "/opt/x");
        assert_eq!(expand_home("~bob/x", "/root"), "~bob/x");
        assert_eq!(home_of(TargetOs::Linux, "deploy"), "/home/deploy");
    }

    fn config(text: &str) -> Config {
        Config::parse(&format!("[app]\nname = \"x\"\n{text}"), "test", &|_| None).unwrap()
    }

    #[test]
    fn the_targets_own_home_is_used_and_the_guess_only_without_one() {
        let config = config("[paths]\ndeployment = \"~/apps/cultivate\"\nlogs = \"~\"\n");
        let paths =
            DeploymentPaths::resolve_with_home(TargetOs::Linux, "deploy", Some("/srv/homes/deploy/"), &config, None)
                .unwrap();
        assert_eq!(
            (paths.base.as_str(), paths.logs.as_str()),
            ("/srv/homes/deploy/apps/cultivate", "/srv/homes/deploy")
        );
        for nothing in [None, Some(""), Some("relative/home")] {
            let guessed =
                DeploymentPaths::resolve_with_home(TargetOs::Linux, "deploy", nothing, &config, None).unwrap();
            assert_eq!(guessed.base, "/home/deploy/apps/cultivate", "{nothing:?}");
        }
        let mac =
            DeploymentPaths::resolve_with_home(TargetOs::Macos, "ada", Some("/Users/Ada Lovelace"), &config, None)
                .unwrap();
        assert_eq!(mac.base, "/Users/Ada Lovelace/apps/cultivate");
    }

    #[test]
    fn finch_sees_only_its_mounts() {
        assert!(visible_to_finch("/Users/ada/cultivate", false));
        assert!(visible_to_finch("/private/var/x", false));
        assert!(visible_to_finch("/tmp/lima", false));
        assert!(!visible_to_finch("/opt/cultivate", false));
        assert!(!visible_to_finch("/Usersfoo/x", false));
        assert!(!visible_to_finch("/Volumes/data", false));
        assert!(visible_to_finch("/Volumes/data", true));
    }
}
