//! The container runtime seam: Docker, Finch or Podman. Each operation is a pure
//! function returning a [`Cmd`]; the few that must run to answer a question (is the
//! engine up, what is this image) run those commands here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::model::image::Image;
use crate::support::command::{Cmd, TimedOutput};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Docker,
    Finch,
    Podman,
}

impl RuntimeKind {
    /// Preference order when the user names none: Docker, then Finch, then Podman.
    pub const PREFERENCE: [RuntimeKind; 3] = [RuntimeKind::Docker, RuntimeKind::Finch, RuntimeKind::Podman];

    pub fn program(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Finch => "finch",
            RuntimeKind::Podman => "podman",
        }
    }

    /// The engine a compose file is rendered for (Finch's macOS paths are the OS's).
    pub fn linux_engine(self) -> crate::model::platform::LinuxEngine {
        match self {
            RuntimeKind::Podman => crate::model::platform::LinuxEngine::Podman,
            RuntimeKind::Docker | RuntimeKind::Finch => crate::model::platform::LinuxEngine::Docker,
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

pub const INSTALL_HINT: &str = "Install a container runtime:\n  \
     Debian/Ubuntu: sudo apt-get install docker.io docker-compose, then start the engine \
     (sudo systemctl start docker, or without systemd: sudo dockerd &)\n  \
     macOS: brew install --cask finch && finch vm init\n  \
     Fedora/RHEL: sudo dnf install podman";

/// A container runtime found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub kind: RuntimeKind,
    pub program: PathBuf,
}

impl Runtime {
    /// Picks the runtime: the one asked for, else the first of [`RuntimeKind::PREFERENCE`]
    /// that `find` locates. `find` is `which::which` in real use.
    pub fn detect(wanted: Option<RuntimeKind>, find: impl Fn(&str) -> Option<PathBuf>) -> Result<Runtime> {
        if let Some(kind) = wanted {
            return match find(kind.program()) {
                Some(program) => Ok(Runtime { kind, program }),
                None => bail!("--runtime {kind} was asked for, but `{kind}` is not on PATH.\n{INSTALL_HINT}"),
            };
        }
        RuntimeKind::PREFERENCE
            .into_iter()
            .find_map(|kind| find(kind.program()).map(|program| Runtime { kind, program }))
            .with_context(|| {
                format!("no container runtime found on PATH (looked for docker, finch, podman).\n{INSTALL_HINT}")
            })
    }

    /// Detects the runtime on this machine's PATH.
    pub fn detect_local(wanted: Option<RuntimeKind>) -> Result<Runtime> {
        Runtime::detect(wanted, |name| which::which(name).ok())
    }

    fn cmd(&self) -> Cmd {
        Cmd::new(self.program.to_string_lossy())
    }

    pub fn info_cmd(&self) -> Cmd {
        let format = match self.kind {
            RuntimeKind::Podman => "{{.Version.Version}}",
            RuntimeKind::Docker | RuntimeKind::Finch => "{{.ServerVersion}}",
        };
        self.cmd().args(["info", "--format", format])
    }

    pub fn inspect_image_cmd(&self, reference: &str) -> Cmd {
        self.cmd().args(["image", "inspect", "--format", "{{json .}}", reference])
    }

    /// `save` of one image as a tar stream on stdout.
    pub fn save_cmd(&self, reference: &str) -> Cmd {
        self.cmd().args(["save", reference])
    }

    pub fn tag_cmd(&self, id: &str, reference: &str) -> Cmd {
        self.cmd().args(["tag", id, reference])
    }

    /// Names the image `id` also `reference` in this machine's engine.
    pub fn tag(&self, id: &str, reference: &str) -> Result<()> {
        self.tag_cmd(id, reference)
            .output()
            .map(|_| ())
            .with_context(|| format!("tagging {id} as {reference} on this machine"))
    }

    pub fn pull_cmd(&self, reference: &str) -> Cmd {
        self.cmd().args(["pull", reference])
    }

    pub fn remove_image_cmd(&self, reference: &str) -> Cmd {
        self.cmd().args(["image", "rm", reference])
    }

    /// `import -` reading a root filesystem tarball on stdin.
    pub fn import_cmd(&self, reference: &str, changes: &[String]) -> Cmd {
        let mut cmd = self.cmd().arg("import");
        for change in changes {
            cmd = cmd.arg("--change").arg(change.as_str());
        }
        cmd.args(["-", reference])
    }

    pub fn build_cmd(&self, spec: &BuildSpec) -> Cmd {
        let mut cmd = self.cmd().arg("build").arg("--file").arg(spec.dockerfile.to_string_lossy());
        for tag in &spec.tags {
            cmd = cmd.arg("--tag").arg(tag.as_str());
        }
        for (key, value) in &spec.build_args {
            cmd = cmd.arg("--build-arg").arg(format!("{key}={value}"));
        }
        for (key, value) in &spec.labels {
            cmd = cmd.arg("--label").arg(format!("{key}={value}"));
        }
        if spec.no_cache {
            cmd = cmd.arg("--no-cache");
        }
        cmd.arg(spec.context.to_string_lossy())
    }

    /// Checks that the engine answers, returning its version.
    pub fn ensure_engine(&self) -> Result<String> {
        let info = self.info_cmd();
        match info.capture_with_timeout(Duration::from_secs(30))? {
            TimedOutput::Finished(output) if output.status.success() => {
                Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
            }
            TimedOutput::Finished(output) => bail!(
                "`{}` is installed but its engine does not answer: {}\n{}",
                self.kind,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.start_hint()
            ),
            TimedOutput::TimedOut => bail!("`{info}` did not answer within 30 s.\n{}", self.start_hint()),
        }
    }

    fn start_hint(&self) -> &'static str {
        match self.kind {
            RuntimeKind::Docker => {
                "Start the Docker engine: `sudo systemctl start docker`, or on a machine without systemd \
                 `sudo dockerd >/var/log/dockerd.log 2>&1 &` (`bash .ci/run` does this for you)."
            }
            RuntimeKind::Finch => "Start Finch's VM: `finch vm start` (or `finch vm init` the first time).",
            RuntimeKind::Podman => "Check `podman info`; on macOS start the machine with `podman machine start`.",
        }
    }

    /// What the engine knows of an image, or `None` when it has no such image.
    pub fn inspect_image(&self, reference: &str) -> Result<Option<ImageDetails>> {
        let output = self.inspect_image_cmd(reference).capture()?;
        if !output.status.success() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let details = serde_json::from_str(text.trim())
            .with_context(|| format!("cannot read `{}` output", self.inspect_image_cmd(reference)))?;
        Ok(Some(details))
    }
}

/// One `build`: everything that varies between our images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSpec {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub no_cache: bool,
}

/// The part of `image inspect` we use.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ImageDetails {
    /// The image id: the digest of the image's config in Docker's classic store and in
    /// Podman, the digest of a manifest (or index) in Docker's containerd store.
    #[serde(rename = "Id", deserialize_with = "digest_id")]
    pub id: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "RootFS", default)]
    pub rootfs: RootFs,
    #[serde(rename = "Config", default)]
    pub config: ImageConfig,
    #[serde(rename = "Created", default)]
    pub created: Option<String>,
    #[serde(rename = "Architecture", default)]
    pub architecture: Option<String>,
    #[serde(rename = "Os", default)]
    pub os: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RootFs {
    /// The uncompressed layer digests (diff_ids), which identify an image's content
    /// across image stores where `Id` does not.
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// The image config's fields that say what runs. `null`, missing and empty read alike:
/// engines differ in which they print.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
    #[serde(rename = "Healthcheck", default)]
    pub healthcheck: Option<serde_json::Value>,
}

fn digest_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::deserialize(deserializer).map(|id| crate::model::image::digest_id(&id))
}

impl ImageDetails {
    /// What identifies this image in every store (Property 20 across stores): a digest
    /// of its config's creation time, platform and what runs (command, environment,
    /// user, labels, ports, volumes, health check). Docker's containerd store names an
    /// image by its manifest digest, which differs from the classic store's config
    /// digest for the very same image; these fields do not.
    pub fn config_fingerprint(&self) -> String {
        let config = &self.config;
        let keys = |map: &Option<BTreeMap<String, serde_json::Value>>| -> Vec<String> {
            map.iter().flat_map(|m| m.keys().cloned()).collect()
        };
        let canonical = serde_json::json!({
            "created": self.created.as_deref().unwrap_or(""),
            "architecture": self.architecture.as_deref().unwrap_or(""),
            "os": self.os.as_deref().unwrap_or(""),
            "user": config.user,
            "env": config.env.clone().unwrap_or_default(),
            "cmd": config.cmd.clone().unwrap_or_default(),
            "entrypoint": config.entrypoint.clone().unwrap_or_default(),
            "working_dir": config.working_dir.as_deref().unwrap_or(""),
            "labels": config.labels.clone().unwrap_or_default(),
            "exposed_ports": keys(&config.exposed_ports),
            "volumes": keys(&config.volumes),
            "stop_signal": config.stop_signal.as_deref().unwrap_or(""),
            "healthcheck": config.healthcheck.as_ref().map(|h| h["Test"].clone()).unwrap_or_default(),
        });
        crate::support::digest::sha256(canonical.to_string().as_bytes())
    }

    /// The release's record of this image, as `reference` of `service`.
    pub fn to_image(&self, service: &str, reference: &str) -> Image {
        Image {
            service: service.to_string(),
            reference: reference.to_string(),
            id: self.id.clone(),
            layers: self.rootfs.layers.clone(),
            config_fingerprint: self.config_fingerprint(),
            size_bytes: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(names: &'static [&'static str]) -> impl Fn(&str) -> Option<PathBuf> {
        move |name| names.contains(&name).then(|| PathBuf::from(format!("/usr/bin/{name}")))
    }

    #[test]
    fn docker_is_preferred_over_finch_and_podman() {
        let runtime = Runtime::detect(None, found(&["podman", "finch", "docker"])).unwrap();
        assert_eq!(runtime.kind, RuntimeKind::Docker);
        assert_eq!(Runtime::detect(None, found(&["podman", "finch"])).unwrap().kind, RuntimeKind::Finch);
        assert_eq!(Runtime::detect(None, found(&["podman"])).unwrap().kind, RuntimeKind::Podman);
    }

    #[test]
    fn no_runtime_says_how_to_install_one() {
        let message = format!("{:#}", Runtime::detect(None, found(&[])).unwrap_err());
        assert!(message.contains("apt-get install docker.io"), "{message}");
        assert!(message.contains("brew install --cask finch"), "{message}");
    }

    #[test]
    fn a_requested_runtime_must_exist() {
        let message = format!("{:#}", Runtime::detect(Some(RuntimeKind::Finch), found(&["docker"])).unwrap_err());
        assert!(message.contains("--runtime finch"), "{message}");
    }

    #[test]
    fn build_command_carries_tags_args_and_labels() {
        let runtime = Runtime { kind: RuntimeKind::Finch, program: "finch".into() };
        let spec = BuildSpec {
            dockerfile: "database/Dockerfile".into(),
            context: "database".into(),
            tags: vec!["cultivate-database:abc".into(), "cultivate-database:latest".into()],
            build_args: vec![("BASE_IMAGE".into(), "cultivate-base:bookworm".into())],
            labels: vec![("org.opencontainers.image.version".into(), "abc".into())],
            no_cache: false,
        };
        assert_eq!(
            runtime.build_cmd(&spec).to_string(),
            "finch build --file database/Dockerfile --tag cultivate-database:abc --tag cultivate-database:latest \
             --build-arg 'BASE_IMAGE=cultivate-base:bookworm' --label 'org.opencontainers.image.version=abc' database"
        );
    }

    #[test]
    fn inspect_output_is_understood() {
        let json = r#"{"Id":"sha256:ab","Size":42,"RootFS":{"Type":"layers","Layers":["sha256:l1"]},
                       "Config":{"User":"1001:1001","Labels":{"a":"b"}}}"#;
        let details: ImageDetails = serde_json::from_str(json).unwrap();
        assert_eq!(details.id, "sha256:ab");
        assert_eq!(details.rootfs.layers, vec!["sha256:l1"]);
        assert_eq!(details.config.user, "1001:1001");
        let bare: ImageDetails = serde_json::from_str(r#"{"Id":"x","Size":1,"Config":{"Labels":null}}"#).unwrap();
        assert!(bare.config.labels.is_none());
    }
}
