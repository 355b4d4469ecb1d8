//! The deployment configuration: `deploy/deploy.toml`, overridden by environment
//! variables, validated as a whole before anything runs.
//!
//! Precedence, highest first: environment variables (HTTP_PORT, …), the host's own
//! table (`[hosts.NAME]` paths), the file's tables, the documented defaults.
//! Every problem is reported at once: each missing required key, each value out of
//! range, each unknown key with the closest valid one.
//!
//! The file as written (`raw`), the keys it may hold and the variables that override
//! them (`keys`), the `defaults`, the resolution of the one into the other with every
//! problem found (`checker`, with the value checks of `checks`), and the configuration
//! the tasks use (`resolved`): a key added to the file touches each.

use std::path::Path;

use anyhow::{Context, Result};

pub use crate::support::project::CONFIG_FILE;

mod checker;
mod checks;
pub mod defaults;
mod keys;
mod problems;
mod raw;
mod resolved;

pub use checks::*;
pub use keys::{ENV_OVERRIDES, KNOWN_KEYS, closest_key};
pub use problems::{ConfigError, Problem};
pub use resolved::*;

#[cfg(test)]
mod tests;

impl Config {
    /// Reads the configuration file with this process's environment.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (the deployment configuration)", path.display()))?;
        Ok(Config::parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok())?)
    }

    /// Parses and validates `text`; `env` answers the override variables.
    pub fn parse(text: &str, source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let (raw, mut problems) = keys::read_raw(text)
            .map_err(|problem| ConfigError { source: source.to_string(), problems: vec![problem] })?;
        let config = checker::resolve(raw, env, &mut problems);
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { source: source.to_string(), problems }) }
    }

    /// The cluster named `name`, or an error listing the configured ones.
    pub fn cluster(&self, name: &str) -> Result<&Cluster> {
        self.clusters.get(name).with_context(|| {
            let known: Vec<&str> = self.clusters.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            format!("no cluster `{name}` in {CONFIG_FILE}; configured: {known}")
        })
    }

    /// The host named `name`, or an error listing the configured ones.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.get(name).with_context(|| {
            let known: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
            if known.is_empty() {
                format!("no host `{name}`: {CONFIG_FILE} has no [hosts.NAME] table yet")
            } else {
                format!("no host `{name}` in {CONFIG_FILE}; configured: {}", known.join(", "))
            }
        })
    }
}
