//! The TLS certificates on a host. They belong to the host, not to a release: a
//! renewal reaches the running frontend without a new release, and a rollback keeps
//! today's certificate (an older one may have expired).
//!
//! Layout under `<config>/certs/`, the directory mounted read-only into the frontend
//! at `/etc/nginx/certs`:
//!
//! ```text
//! <digest>/fullchain.pem, <digest>/privkey.pem   one directory per content (key 0600, uid 101)
//! current -> <digest>                            switched by one rename
//! fullchain.pem -> current/fullchain.pem         what nginx opens
//! privkey.pem -> current/privkey.pem
//! ```
//!
//! The links are relative and inside the mounted directory, so they resolve in the
//! container, and the chain and key always change together: nginx never sees a new
//! certificate with the old key.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::host::session::{Effect, Session};
use crate::model::certificate::{CHAIN_FILE, KEY_FILE, LocalCertificates};
use crate::model::paths::DeploymentPaths;
use crate::release::stack::ContainerState;
use crate::support::command::Cmd;

/// The frontend's nginx configuration, as its entrypoint renders it
/// (web-frontend/entrypoint.sh): `nginx -s` needs it to find the master's pid.
pub const FRONTEND_NGINX_CONF: &str = "/tmp/nginx/conf/nginx.conf";

/// What installing a pair did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The directory the frontend mounts.
    pub dir: String,
    /// The content's directory name under it.
    pub digest: String,
    /// Whether `current` moved (else the host had this pair already).
    pub changed: bool,
    /// The content that was current before, when it moved.
    pub previous: Option<String>,
}

/// The content's name: the first 16 hex digits of the sha256 of both files.
pub fn content_digest(certs: &LocalCertificates) -> String {
    let mut digest = Sha256::new();
    for (name, bytes) in [(CHAIN_FILE, &certs.chain), (KEY_FILE, &certs.key)] {
        digest.update(name.as_bytes());
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    }
    crate::support::digest::hex(&digest.finalize())[..16].to_string()
}

/// Puts the pair on the host (each file written atomically) and makes it current.
pub fn install(session: &Session, certs: &LocalCertificates) -> Result<Installed> {
    let dir = session.paths.certs();
    let digest = content_digest(certs);
    session.upload(&certs.chain, &format!("{dir}/{digest}/{CHAIN_FILE}"), 0o644)?;
    session.upload(&certs.key, &format!("{dir}/{digest}/{KEY_FILE}"), 0o600)?;
    let out = session
        .run(Effect::Change, &switch_cmd(&dir, &digest, session.is_root()))
        .with_context(|| format!("installing the certificates in {dir} on {}", session.name))?;
    let out = out.trim();
    let previous = out.strip_prefix("changed").map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
    Ok(Installed { dir, digest, changed: session.dry_run || out != "same", previous })
}

/// Makes `<dir>/<digest>` the current pair: owners and modes (nginx, uid 101, owns the
/// key; only root can give it), the two links nginx opens, then `current` by a rename
/// (`mv -T`; BSD `mv` has no `-T`, and there `ln -sfn` replaces it). Removes the
/// content directories but the new and the previous one. Prints `same` when the pair
/// was current already, else `changed` and the content current before.
pub fn switch_cmd(dir: &str, digest: &str, as_root: bool) -> Cmd {
    let script = "set -e; cd \"$1\"; d=\"$2\"; \
        [ -s \"$d/fullchain.pem\" ] && [ -s \"$d/privkey.pem\" ] || { echo \"$1/$d is incomplete\" >&2; exit 1; }; \
        chmod 755 . \"$d\"; chmod 644 \"$d/fullchain.pem\"; chmod 600 \"$d/privkey.pem\"; \
        [ \"$3\" != root ] || chown 101:101 \"$d/privkey.pem\"; \
        for f in fullchain.pem privkey.pem; do [ -L \"$f\" ] || { rm -f \"$f\"; ln -s \"current/$f\" \"$f\"; }; done; \
        old=$(readlink current 2>/dev/null || true); \
        if [ \"$old\" = \"$d\" ]; then echo same; exit 0; fi; \
        rm -f .current.new; ln -s \"$d\" .current.new; \
        mv -T .current.new current 2>/dev/null || { rm -f .current.new; ln -sfn \"$d\" current; }; \
        for c in *; do \
          case \"$c\" in \"$d\"|\"$old\"|current|fullchain.pem|privkey.pem) continue;; esac; \
          case \"$c\" in *[!0-9a-f]*) continue;; esac; \
          [ ${#c} -eq 16 ] && [ -d \"$c\" ] && rm -rf \"$c\"; \
        done; \
        echo \"changed $old\"";
    Cmd::new("sh").args(["-c", script, "certs-install", dir, digest, if as_root { "root" } else { "user" }])
}

/// Checks the frontend's configuration with the files now in place, inside `container`.
pub fn test_cmd(session: &Session, container: &str) -> Cmd {
    session.runtime_cmd(["exec", container, "nginx", "-t", "-q", "-c", FRONTEND_NGINX_CONF])
}

/// A graceful reload of the frontend's nginx in `container`: new connections get the
/// new certificate, those open finish on the old one, the listeners stay open.
pub fn reload_cmd(session: &Session, container: &str) -> Cmd {
    session.runtime_cmd(["exec", container, "nginx", "-s", "reload", "-c", FRONTEND_NGINX_CONF])
}

/// Reloads every running frontend of the stack, each checked first. Returns the
/// containers reloaded.
pub fn reload_frontends(session: &Session, containers: &[ContainerState]) -> Result<Vec<String>> {
    let mut reloaded = Vec::new();
    for container in containers.iter().filter(|c| c.service == "frontend" && c.status == "running") {
        let (ok, out, err) = session.try_run(Effect::Change, &test_cmd(session, &container.name))?;
        if !ok {
            bail!(
                "nginx in {} refuses the new certificates: {}",
                container.name,
                if err.is_empty() { out } else { err }
            );
        }
        session
            .run(Effect::Change, &reload_cmd(session, &container.name))
            .with_context(|| format!("reloading nginx in {}", container.name))?;
        reloaded.push(container.name.clone());
    }
    Ok(reloaded)
}

/// Installs the pair and reloads the frontends among `containers` (those running on
/// this host) with it; should one refuse it, the pair before comes back and is
/// reloaded. The frontends reloaded, or `None` when the host had this pair already.
pub fn install_and_reload(
    session: &Session,
    local: &LocalCertificates,
    containers: &[ContainerState],
) -> Result<Option<Vec<String>>> {
    let installed = install(session, local)?;
    if !installed.changed {
        return Ok(None);
    }
    match reload_frontends(session, containers) {
        Ok(reloaded) => Ok(Some(reloaded)),
        Err(err) => {
            // Put the pair before back, so what serves is what served.
            if let Some(previous) = &installed.previous {
                session.run(Effect::Change, &switch_cmd(&installed.dir, previous, session.is_root()))?;
                reload_frontends(session, containers)?;
            }
            Err(err.context(format!("the certificates on {} are unchanged", session.name)))
        }
    }
}

/// What the history records of an installed pair: the certificate, and the frontends
/// reloaded with it.
pub fn installed_detail(local: &LocalCertificates, reloaded: &[String]) -> String {
    let summary = &local.summary;
    format!(
        "installed certificate {} for {} (expires {}); reloaded {}",
        summary.serial,
        summary.names.join(", "),
        summary.expiry_date(),
        if reloaded.is_empty() { "no running frontend".to_string() } else { reloaded.join(", ") }
    )
}

/// Prints the host's current certificate chain (for `status`): empty when there is none.
pub fn read_chain_cmd(paths: &DeploymentPaths) -> Cmd {
    Cmd::new("sh").args(["-c", "cat \"$1/fullchain.pem\" 2>/dev/null || true", "read-certs", &paths.certs()])
}

#[cfg(test)]
mod tests;
