//! Where things are in the workspace, and what git says about it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::support::command::Cmd;

/// The deployment configuration, relative to the workspace root.
pub const CONFIG_FILE: &str = "deploy/deploy.toml";

/// Names another folder than `secrets/` for the secrets ([`Project::secrets_dir`]).
pub const SECRETS_DIR_VAR: &str = "CULTIVATE_SECRETS_DIR";

/// The workspace the xtask belongs to.
#[derive(Clone, Debug)]
pub struct Project {
    pub root: PathBuf,
    /// The deployment configuration (`--config`, default `deploy/deploy.toml`).
    pub config_file: PathBuf,
}

impl Project {
    /// The workspace root: the parent of this crate's manifest directory.
    pub fn locate() -> Result<Project> {
        let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = xtask_dir.parent().context("xtask has no parent directory")?.to_path_buf();
        if !root.join("Cargo.toml").is_file() {
            bail!("workspace root {} has no Cargo.toml: was the xtask moved?", root.display());
        }
        Ok(Project { config_file: root.join(CONFIG_FILE), root })
    }

    /// Cargo's target directory, honouring CARGO_TARGET_DIR.
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }

    /// Where the xtask keeps what it produces (manifests, logs, scratch space).
    pub fn state_dir(&self) -> PathBuf {
        self.target_dir().join("cultivate")
    }

    /// The folder whose files reach the backend as secrets: `secrets/` in the workspace,
    /// or CULTIVATE_SECRETS_DIR (a relative one from the workspace root), for secrets
    /// kept outside the checkout, e.g. on a tmpfs a CI job fills.
    pub fn secrets_dir(&self) -> Result<PathBuf> {
        let dir = secrets_dir_in(&self.root, std::env::var_os(SECRETS_DIR_VAR));
        // Through links and `..`, where the folder exists (one that does not holds no secret).
        let real = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        check_secrets_dir(&real(&self.root), &real(&dir))?;
        Ok(dir)
    }

    /// The path of `relative` inside the workspace.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn git(&self) -> Cmd {
        Cmd::new("git").arg("-C").arg(self.root.to_string_lossy())
    }

    /// What git knows of the checked-out revision.
    pub fn revision(&self) -> Result<Revision> {
        let sha = self
            .git()
            .args(["rev-parse", "HEAD"])
            .output()
            .context("cannot read the git revision (is this a git checkout with at least one commit?); pass --version to name the build yourself")?;
        let short = self.git().args(["rev-parse", "--short", "HEAD"]).output()?;
        let committed_at = self.git().args(["log", "-1", "--format=%cI"]).output()?;
        let status = self.git().args(["status", "--porcelain"]).output()?;
        Ok(Revision { sha, short, committed_at, dirty: !status.is_empty() })
    }
}

/// The secrets' folder in the workspace at `root`, `named` by CULTIVATE_SECRETS_DIR or not.
fn secrets_dir_in(root: &Path, named: Option<std::ffi::OsString>) -> PathBuf {
    match named {
        // An empty value names nothing: the default, not the workspace root itself.
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("secrets"),
    }
}

/// A secrets folder inside the workspace must be named `secrets`: the build contexts'
/// ignore files exclude folders of that name only, so another one's files could be
/// sent to a build (the backend's context is the workspace root).
fn check_secrets_dir(root: &Path, dir: &Path) -> Result<()> {
    if dir.starts_with(root) && dir.file_name().is_none_or(|name| name != "secrets") {
        bail!(
            "{SECRETS_DIR_VAR} names {}, inside the workspace under another name than `secrets`: the build \
             contexts leave out only folders named `secrets`, so these files could reach an image build. Name the \
             folder `secrets`, or keep it outside {}",
            dir.display(),
            root.display()
        );
    }
    Ok(())
}

/// A git commit and whether the work tree differs from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub sha: String,
    pub short: String,
    /// Commit time, RFC 3339 (git's strict ISO 8601).
    pub committed_at: String,
    pub dirty: bool,
}

impl Revision {
    /// The version images get by default: the short sha, `-dirty` when the tree has
    /// uncommitted changes.
    pub fn version(&self) -> String {
        if self.dirty { format!("{}-dirty", self.short) } else { self.short.clone() }
    }
}

/// This machine's host name, for build records.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| Cmd::new("hostname").output().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_marks_a_dirty_tree() {
        let mut revision = Revision {
            sha: "0123456789abcdef".into(),
            short: "0123456".into(),
            committed_at: "2026-11-23T13:00:00+00:00".into(),
            dirty: false,
        };
        assert_eq!(revision.version(), "0123456");
        revision.dirty = true;
        assert_eq!(revision.version(), "0123456-dirty");
    }

    #[test]
    fn locate_finds_the_workspace() {
        let project = Project::locate().unwrap();
        assert!(project.root.join("xtask").is_dir());
        assert!(project.state_dir().ends_with("target/cultivate") || std::env::var_os("CARGO_TARGET_DIR").is_some());
    }

    #[test]
    fn the_secrets_are_in_the_workspace_unless_a_folder_is_named() {
        let root = Path::new("/work/app");
        assert_eq!(secrets_dir_in(root, None), Path::new("/work/app/secrets"));
        assert_eq!(secrets_dir_in(root, Some("".into())), Path::new("/work/app/secrets"), "empty names nothing");
        assert_eq!(secrets_dir_in(root, Some("/run/ci-secrets".into())), Path::new("/run/ci-secrets"));
        assert_eq!(secrets_dir_in(root, Some("deploy/secrets".into())), Path::new("/work/app/deploy/secrets"));
    }

    #[test]
    fn a_secrets_folder_inside_the_workspace_must_be_one_the_build_contexts_leave_out() {
        let root = Path::new("/work/app");
        for allowed in ["/work/app/secrets", "/work/app/deploy/secrets", "/run/ci-secrets", "/work/other/keys"] {
            assert!(check_secrets_dir(root, Path::new(allowed)).is_ok(), "{allowed}");
        }
        for refused in ["/work/app/backend-api/keys", "/work/app/tokens", "/work/app"] {
            let message = check_secrets_dir(root, Path::new(refused)).unwrap_err().to_string();
            assert!(message.contains(refused) && message.contains("Name the folder `secrets`"), "{message}");
        }
    }
}
