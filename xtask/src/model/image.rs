//! One image of a release, the same record wherever it is: built here, shipped, or
//! recorded in the host's history (`release.json`, `deployments.json`).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The service's image name (`database`, `backend-api`, `web-frontend`), or `base`.
    pub service: String,
    /// `name:version`, the reference the compose file names.
    pub reference: String,
    /// The image id in the engine that holds it (the config digest in Docker's classic
    /// store).
    pub id: String,
    /// Layer diff_ids, base first.
    pub layers: Vec<String>,
    /// What identifies the image's config in every image store, where `id` does not
    /// (`host::runtime::ImageDetails::config_fingerprint`). Empty in records written
    /// before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_fingerprint: String,
    /// Its size in this machine's engine, for the disk check before shipping; not
    /// recorded on the host.
    #[serde(skip)]
    pub size_bytes: u64,
}

/// Docker's rule for a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(version: &str) -> Result<()> {
    let mut chars = version.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || version.len() > 128 {
        bail!(
            "version {version:?} is not a valid image tag: use letters, digits, `_`, `.` and `-` \
             (not first), at most 128 characters, e.g. --version 1.4.0"
        );
    }
    Ok(())
}
