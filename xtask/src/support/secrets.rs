//! Files on this machine that hold secrets: the files under `secrets/` (or the folder
//! CULTIVATE_SECRETS_DIR names) and the TLS private key. Each must be readable by its
//! owner only (0600 or 0400); one readable by others is refused with the command that
//! fixes it, before anything is sent.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::support::project::Project;

/// Names of the files under `secrets/`: each reaches the backend as a file-based secret.
/// Each must be readable by its owner only (0600 or 0400): a secret readable by others
/// on this machine is refused with the command that fixes it.
pub fn secret_names(project: &Project) -> Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;

    let dir = project.secrets_dir()?;
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
                bail!(
                    "{}: a secret's file name may hold only letters, digits, `_`, `-` and `.`: rename it",
                    entry.path().display()
                );
            }
            let mode = entry.metadata()?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} has mode {mode:04o}, readable by others: run `chmod 600 {}`",
                    entry.path().display(),
                    entry.path().display()
                );
            }
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The secrets' names and content, checked as [`secret_names`] does.
pub fn read_secrets(project: &Project) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = project.secrets_dir()?;
    let mut secrets = Vec::new();
    for name in secret_names(project)? {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading the secret {}", path.display()))?;
        secrets.push((name, bytes));
    }
    Ok(secrets)
}

/// A TLS private key readable by others on this machine is refused, like a secret
/// file under `secrets/` (0600 or 0400 only).
pub fn check_private_key_mode(key: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).with_context(|| format!("reading {}", key.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} has mode {:04o}, readable by others: run `chmod 600 {}` (the TLS key is a secret); nothing was changed",
            key.display(),
            mode & 0o777,
            key.display()
        );
    }
    Ok(())
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

    #[test]
    fn a_tls_key_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("cultivate-tls-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("privkey.pem");
        std::fs::write(&key, "key").unwrap();
        for (mode, refused) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true), (0o604, true)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(check_private_key_mode(&key).is_err(), refused, "mode {mode:o}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
