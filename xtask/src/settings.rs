//! The project's settings file, `deploy/deploy.toml`. Only the `[images]` table exists
//! so far; unknown keys are rejected by name so a typo never passes silently.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

pub const SETTINGS_FILE: &str = "deploy/deploy.toml";

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub images: ImageSettings,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSettings {
    /// The image every Cultivate image starts FROM.
    pub base: String,
    /// The Rust image the backend's multi-stage build compiles in.
    pub builder: String,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings { base: "debian:bookworm-slim".into(), builder: "rust:1-bookworm".into() }
    }
}

impl Settings {
    /// Reads the settings file under `root`; a missing file means all defaults.
    pub fn load(root: &Path) -> Result<Settings> {
        let path = root.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Settings::parse(&text).with_context(|| format!("invalid settings in {}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn parse(text: &str) -> Result<Settings> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Settings::parse("").unwrap(), Settings::default());
        assert_eq!(Settings::default().images.base, "debian:bookworm-slim");
    }

    #[test]
    fn base_image_can_be_set() {
        let settings = Settings::parse("[images]\nbase = \"debian:trixie-slim\"\n").unwrap();
        assert_eq!(settings.images.base, "debian:trixie-slim");
        assert_eq!(settings.images.builder, "rust:1-bookworm");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Settings::parse("[images]\nbse = \"x\"\n").unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("bse"), "{message}");
    }

    #[test]
    fn the_shipped_settings_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        Settings::load(root).unwrap();
    }
}
