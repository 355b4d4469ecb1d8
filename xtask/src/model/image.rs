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

impl Image {
    /// The same image by content, whichever store holds it and whatever it is named:
    /// the same service, layers and config. (Ids differ between stores; records
    /// without a config fingerprint cannot be compared and never match.)
    pub fn same_content(&self, other: &Image) -> bool {
        self.service == other.service
            && self.layers == other.layers
            && !self.config_fingerprint.is_empty()
            && self.config_fingerprint == other.config_fingerprint
    }
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

/// `name:tag` as the containerd store names it: `docker.io/library/name:tag` for an
/// official-style name, `docker.io/…` for a path without a registry host.
pub fn full_name(reference: &str) -> String {
    let first = reference.split('/').next().unwrap_or("");
    let has_host = reference.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    }
}

/// Whether an engine's name for an image is `reference`: engines add the default
/// registry (`docker.io/library/`, the containerd store and Podman) or `localhost/`
/// (Podman, for images loaded without a registry) to a short name.
pub fn names_same_image(listed: &str, reference: &str) -> bool {
    let short = |name: &str| -> String {
        let name = name.strip_prefix("localhost/").unwrap_or(name);
        let name = name.strip_prefix("docker.io/").unwrap_or(name);
        name.strip_prefix("library/").unwrap_or(name).to_string()
    };
    listed == reference || short(listed) == short(reference)
}

/// An image id as `sha256:<hex>`: Podman prints ids without the algorithm.
pub fn digest_id(id: &str) -> String {
    let is_bare_hex = id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit());
    if is_bare_hex { format!("sha256:{id}") } else { id.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_names_for_a_reference_are_recognised() {
        for listed in [
            "cultivate-web-frontend:v1",
            "docker.io/library/cultivate-web-frontend:v1",
            "localhost/cultivate-web-frontend:v1",
        ] {
            assert!(names_same_image(listed, "cultivate-web-frontend:v1"), "{listed}");
        }
        assert!(names_same_image("docker.io/acme/web:v1", "acme/web:v1"));
        assert!(!names_same_image("cultivate-web-frontend:v2", "cultivate-web-frontend:v1"));
        assert!(!names_same_image("registry.example/cultivate-web-frontend:v1", "cultivate-web-frontend:v1"));
        assert_eq!(full_name("cultivate-web-frontend:v1"), "docker.io/library/cultivate-web-frontend:v1");
        assert_eq!(full_name("acme/web:v1"), "docker.io/acme/web:v1");
        assert_eq!(full_name("registry.example:5000/acme/web:v1"), "registry.example:5000/acme/web:v1");
        assert_eq!(full_name("localhost/web:v1"), "localhost/web:v1");
    }

    #[test]
    fn podman_ids_get_their_algorithm() {
        let hex = "984e120fd48e88ea4608f6ae739f19b92daec8523df532eea3b1f3c567a961bb";
        assert_eq!(digest_id(hex), format!("sha256:{hex}"));
        assert_eq!(digest_id(&format!("sha256:{hex}")), format!("sha256:{hex}"));
        assert_eq!(digest_id("x"), "x");
    }
}
