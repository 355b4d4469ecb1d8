//! The vocabulary of a target platform, as the configuration and the probe both
//! speak it: its OS, tool versions, and the minimum versions a deploy needs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The operating system of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetOs {
    Linux,
    Macos,
}

impl fmt::Display for TargetOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetOs::Linux => "linux",
            TargetOs::Macos => "macos",
        })
    }
}

/// The engine that runs the stack on a Linux target (macOS targets run Finch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinuxEngine {
    /// Docker with `docker compose` (v2) or `docker-compose` (v1).
    #[default]
    Docker,
    /// Podman, rootful, with `podman-compose`.
    Podman,
}

impl fmt::Display for LinuxEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinuxEngine::Docker => "docker",
            LinuxEngine::Podman => "podman",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub Vec<u32>);

impl Serialize for Version {
    /// As `"20.10.24"`, the way people write versions.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Version {
    /// The first `N(.N)*` in `text`, ignoring a leading `v`.
    pub fn find(text: &str) -> Option<Version> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let digits: String = text[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let parts: Vec<u32> = digits.split('.').filter(|p| !p.is_empty()).map_while(|p| p.parse().ok()).collect();
        (!parts.is_empty()).then_some(Version(parts))
    }

    pub fn parse(text: &str) -> Option<Version> {
        Version::find(text)
    }

    /// Compares with missing parts taken as 0 (`20.10` == `20.10.0`).
    pub fn at_least(&self, minimum: &Version) -> bool {
        let width = self.0.len().max(minimum.0.len());
        let padded = |v: &Version| (0..width).map(|i| v.0.get(i).copied().unwrap_or(0)).collect::<Vec<_>>();
        padded(self) >= padded(minimum)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// The minimum versions a target must have (configurable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Minimums {
    pub docker: Version,
    pub compose_v2: Version,
    pub compose_v1: Version,
    pub finch: Version,
    pub podman: Version,
    pub podman_compose: Version,
}

impl Default for Minimums {
    fn default() -> Self {
        Minimums {
            docker: Version(vec![20, 10]),
            compose_v2: Version(vec![2, 0]),
            compose_v1: Version(vec![1, 27]),
            finch: Version(vec![1, 0]),
            // Podman 5 is what is tested; podman-compose 1.3 is Debian trixie's.
            podman: Version(vec![5, 0]),
            podman_compose: Version(vec![1, 3]),
        }
    }
}
