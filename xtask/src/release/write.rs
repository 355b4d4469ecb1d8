//! Writing a release on a host (deploy's step 7): `releases/<version>/` with its compose
//! file, env file and state, the secrets and certificates it names (kept once per
//! content), all checked present before anything starts (Property 22).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::host::session::{Effect, Session};
use crate::model::certificate::{CHAIN_FILE, KEY_FILE, LocalCertificates};
use crate::model::compose::{RenderInput, render};
use crate::model::config::Config;
use crate::model::image::Image;
use crate::model::platform::TargetOs;
use crate::release::rollout;
use crate::release::state::{self as release, DeploymentState, Layout, ReleaseStatus};
use crate::support::command::Cmd;
use crate::support::project::Project;

/// What a release is written from, settled before the deploy connects.
pub struct ReleaseInputs<'a> {
    pub project: &'a Project,
    pub config: &'a Config,
    pub version: &'a str,
    /// (name, bytes) of each secret (the files under secrets/).
    pub secrets: &'a [(String, Vec<u8>)],
    /// fullchain.pem and privkey.pem on this machine, checked, when HTTPS is on.
    pub certs: &'a Option<LocalCertificates>,
    /// RFC 3339, when the deploy began.
    pub started_at: &'a str,
}

/// What the release's record says of the deploy that brought it, beyond the release.
pub struct Notes {
    /// The backup taken before it, or why none was.
    pub backup: Option<String>,
    pub bytes_shipped: u64,
}

/// Writes `releases/<version>/` (step 7) and checks every file is there.
pub fn write_release(
    inputs: &ReleaseInputs,
    session: &Session,
    layout: &Layout,
    images: &[Image],
    running: &[crate::release::stack::ContainerState],
    notes: Notes,
) -> Result<DeploymentState> {
    let ReleaseInputs { project, config, version, secrets, certs, started_at } = *inputs;
    let dir = layout.release_dir(version);
    let secret_names: Vec<String> = secrets.iter().map(|(name, _)| name.clone()).collect();
    let mut rendered = render(RenderInput {
        config,
        paths: &session.paths,
        engine: session.runtime.linux_engine(),
        version,
        images,
        secrets: &secret_names,
        start_interval: session.knows_start_interval(),
    });
    let mut files =
        vec![release::COMPOSE_FILE.to_string(), release::ENV_FILE.to_string(), release::STATE_FILE.to_string()];
    // What the containers are started with: a release is "unchanged" (nothing
    // restarted on a redeploy) only when all of it is.
    let mut hasher = Sha256::new();
    let secret_files: Vec<(String, Vec<u8>, u32)> =
        secrets.iter().map(|(name, bytes)| (name.clone(), bytes.clone(), 0o600)).collect();
    let secrets_dir = content_dir(session, "secrets", &secret_files, &mut files)?;
    // The certificates are the host's: installed where the frontend mounts them (the
    // env file's CERT_PATH), and a running frontend that keeps its container reloads
    // them.
    if let Some(certs) = certs {
        let installed = crate::release::certs::install(session, certs)?;
        if installed.changed && !session.dry_run {
            session.log.info(format!(
                "certificate {} (expires {}) installed in {}",
                certs.summary.serial,
                certs.summary.expiry_date(),
                installed.dir
            ));
            crate::release::certs::reload_frontends(session, running)?;
        }
        for name in [CHAIN_FILE, KEY_FILE] {
            files.push(format!("{}/{name}", installed.dir));
        }
    }
    for (key, value) in rendered.env.vars.iter_mut() {
        match key.as_str() {
            "SECRETS_PATH" => *value = secrets_dir.clone().unwrap_or_default(),
            "SERVER_NAMES" if certs.is_some() && config.http.server_names.is_empty() => {
                let name = default_server_name(session);
                session.log.warn(format!(
                    "`[http] server_names` is not set: plain HTTP redirects to https://{name}/ (the target's \
                     address). Set it to the names your site is reached by."
                ));
                *value = name;
            }
            _ => {}
        }
    }
    let compose_yaml = rendered.compose_yaml();
    let env = rendered.env.render();
    session.upload(compose_yaml.as_bytes(), &format!("{dir}/{}", release::COMPOSE_FILE), 0o644)?;
    session.upload(env.as_bytes(), &format!("{dir}/{}", release::ENV_FILE), 0o600)?;
    hasher.update(compose_yaml.as_bytes());
    hasher.update(env.as_bytes());
    hasher.update(std::fs::read(&project.config_file).unwrap_or_default());
    for (name, bytes, _) in &secret_files {
        hasher.update(name.as_bytes());
        hasher.update(bytes);
    }
    if let Some(certs) = certs {
        for (name, bytes) in [(CHAIN_FILE, &certs.chain), (KEY_FILE, &certs.key)] {
            hasher.update(name.as_bytes());
            hasher.update(bytes);
        }
    }
    if let Some(secrets_dir) = secrets_dir.as_deref().filter(|_| session.is_root()) {
        session.run(Effect::Change, &secrets_access_cmd(secrets_dir))?;
    }
    if (certs.is_some() || !secrets.is_empty()) && !session.is_root() {
        session.log.warn(format!(
            "{} logs in as {}, not root: the secrets and the TLS key stay owned by that user, and the containers \
             (uids 1001 and 101) may not read them",
            session.name, session.user
        ));
    }
    if session.os == TargetOs::Linux {
        rollout::ensure_data_dir(session, images)?;
    }

    let state = DeploymentState {
        version: version.to_string(),
        timestamp: crate::support::log::now_rfc3339(),
        target_host: session.name.clone(),
        deployed_by: release::who_am_i(),
        images: images.to_vec(),
        configuration_hash: crate::support::digest::finish(hasher),
        status: ReleaseStatus::Pending,
        health_checks: Vec::new(),
        replaced: None,
        backup: notes.backup,
        started: Some(started_at.to_string()),
        bytes_shipped: Some(notes.bytes_shipped),
    };
    rollout::write_state(session, layout, &state)?;

    // Property 22: everything present before anything starts.
    let mut check = String::from("cd \"$1\" || exit 1; missing=; for f in");
    for file in &files {
        let _ = write!(check, " {}", crate::support::command::quote(file));
    }
    check.push_str("; do [ -s \"$f\" ] || missing=\"$missing $f\"; done; [ -z \"$missing\" ] || { echo \"missing:$missing\"; exit 1; }");
    session
        .run(Effect::Read, &Cmd::new("sh").args(["-c", check.as_str(), "check-release"]).arg(&dir))
        .with_context(|| format!("the release {dir} on {} is incomplete; nothing was started", session.name))
        .or_else(|err| if session.dry_run { Ok(String::new()) } else { Err(err) })?;
    if !session.dry_run {
        session.log.info(format!("release {version} written to {dir} ({} files)", files.len()));
    }
    Ok(state)
}

/// Files the backend reads (the secrets), kept once per content in
/// `<config>/<kind>-<digest>` on the target: releases with the same files name the
/// same directory, so compose keeps the container that mounts them when another
/// service changes, and a rollback finds its own files. Adds the paths to `files` (to
/// be checked present before anything starts). `None` when there are no files.
fn content_dir(
    session: &Session,
    kind: &str,
    content: &[(String, Vec<u8>, u32)],
    files: &mut Vec<String>,
) -> Result<Option<String>> {
    if content.is_empty() {
        return Ok(None);
    }
    let hex =
        crate::support::digest::files_digest(content.iter().map(|(name, bytes, _)| (name.as_str(), bytes.as_slice())));
    let dir = format!("{}/{kind}-{hex}", session.paths.config);
    for (name, bytes, mode) in content {
        session.upload(bytes, &format!("{dir}/{name}"), *mode)?;
        files.push(format!("{dir}/{name}"));
    }
    Ok(Some(dir))
}

/// Lets the backend's user (uid 1001) own the secrets, which stay 0600. Changing
/// owners needs root.
pub fn secrets_access_cmd(secrets_dir: &str) -> Cmd {
    Cmd::new("chown").args(["-R", "1001:1001", secrets_dir])
}

/// Where HTTP redirects when `[http] server_names` is unset: the address the target
/// was reached at, when that is a host name nginx can match.
fn default_server_name(session: &Session) -> String {
    match &session.transport {
        crate::host::transport::Transport::Ssh(ssh) if crate::model::config::is_server_name(&ssh.target.host) => {
            ssh.target.host.clone()
        }
        _ => crate::model::compose::DEFAULT_SERVER_NAME.to_string(),
    }
}
