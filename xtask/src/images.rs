//! `cargo xtask images`: builds the base image (offline when no registry answers), then
//! database → backend-api → web-frontend, tags them `cultivate-<service>:<version>` and
//! `:latest`, and writes a JSON manifest of what it built.

mod backend;
mod base;
mod manifest;
mod progress;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use backend::{BackendBuild, BackendPath, glibc_required_by, parse_glibc_version};
pub use base::{BaseImage, BaseOrigin, debian_mirror, debian_suite};
pub use manifest::{ImageRecord, Manifest};

use crate::bootstrap;
use crate::config::Config;
use crate::project::{Project, host_name};
use crate::runtime::{BuildSpec, Runtime, RuntimeKind};
use progress::Step;

#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Version tag for the images (default: git short sha, `-dirty` with uncommitted changes).
    #[arg(long)]
    pub version: Option<String>,
    /// Container runtime to build with (default: docker, else finch, else podman).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeKind>,
    /// Build only this service (repeatable); the others keep their current images.
    #[arg(long, value_enum)]
    pub only: Vec<Service>,
    /// How the backend binary gets into its image: `multi-stage` compiles inside the
    /// builder image; `host-binary` copies a binary cargo built on this (Linux) machine;
    /// `auto` takes multi-stage when the builder image can be had.
    #[arg(long, value_enum, default_value_t = BackendBuild::Auto)]
    pub backend_build: BackendBuild,
    /// Build every layer afresh (for measuring a clean build).
    #[arg(long)]
    pub no_cache: bool,
    /// Base image to build FROM (default: `[images] base` in deploy/deploy.toml).
    #[arg(long)]
    pub base_image: Option<String>,
    /// On Debian/Ubuntu, install and start Docker (and debootstrap) when missing.
    #[arg(long)]
    pub install: bool,
}

impl Default for ImagesArgs {
    fn default() -> Self {
        ImagesArgs {
            version: None,
            runtime: None,
            only: Vec::new(),
            backend_build: BackendBuild::Auto,
            no_cache: false,
            base_image: None,
            install: false,
        }
    }
}

/// The three images of the stack, in build order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Database,
    BackendApi,
    WebFrontend,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Database, Service::BackendApi, Service::WebFrontend];

    pub fn name(self) -> &'static str {
        match self {
            Service::Database => "database",
            Service::BackendApi => "backend-api",
            Service::WebFrontend => "web-frontend",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub fn run(project: &Project, args: &ImagesArgs) -> Result<Manifest> {
    let started = Instant::now();
    let config = Config::load(&project.config_file)?;
    let (runtime, engine_version) = match args.runtime {
        Some(kind) if !args.install => {
            let runtime = Runtime::detect_local(Some(kind))?;
            let version = runtime.ensure_engine()?;
            (runtime, version)
        }
        _ => bootstrap::ensure_local_engine(args.install)?,
    };
    let build = BuildInfo::resolve(project, args.version.as_deref())?;
    crate::log::say(format!(
        "Building Cultivate images {} with {} (engine {engine_version})",
        build.version, runtime.kind
    ));

    let requested_base = args.base_image.clone().unwrap_or_else(|| config.images.base.clone());
    let base = base::ensure(project, &runtime, &requested_base)?;

    let services: Vec<Service> =
        Service::ALL.into_iter().filter(|service| args.only.is_empty() || args.only.contains(service)).collect();
    let mut records = Vec::new();
    for service in services {
        let record = build_service(project, &runtime, &config, args, &build, &base, service)?;
        records.push(record);
    }

    let manifest = Manifest::new(&build.version, &build.revision, runtime.kind, &base, records);
    // With --only, the other services keep their current images: carry their records
    // over from this version's manifest, or else from the latest one.
    let versioned = manifest::path(project, &build.version);
    let previous = if versioned.exists() { versioned } else { latest_manifest_path(project) };
    let manifest = manifest.merged_with_previous(&previous);
    let written = manifest.write(project)?;
    crate::log::say(format!("\n{}", manifest.summary_table()));
    crate::log::say(format!("Total {:.1}s; manifest {}", started.elapsed().as_secs_f64(), written.display()));
    Ok(manifest)
}

/// Version, revision and creation time shared by every image of one run.
#[derive(Clone, Debug)]
struct BuildInfo {
    version: String,
    revision: String,
    created: String,
}

impl BuildInfo {
    fn resolve(project: &Project, requested: Option<&str>) -> Result<BuildInfo> {
        let revision = project.revision();
        let version = match (requested, &revision) {
            (Some(version), _) => version.to_string(),
            (None, Ok(revision)) => revision.version(),
            (None, Err(err)) => bail!("{err:#}"),
        };
        validate_tag(&version)?;
        // The commit time rather than now: rebuilding an unchanged tree then gives
        // byte-identical images, which later deploys rely on to ship nothing.
        let (revision, created) = match revision {
            Ok(revision) => (revision.sha, revision.committed_at),
            Err(_) => ("unknown".to_string(), now_rfc3339()),
        };
        Ok(BuildInfo { version, revision, created })
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

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn build_service(
    project: &Project,
    runtime: &Runtime,
    config: &Config,
    args: &ImagesArgs,
    build: &BuildInfo,
    base: &BaseImage,
    service: Service,
) -> Result<ImageRecord> {
    let image = image_name(config, service);
    let reference = format!("{image}:{}", build.version);
    // What the tags pointed at before: the same id afterwards means every layer came
    // from the cache and nothing changed.
    let previous_id = match runtime.inspect_image(&reference)? {
        Some(details) => Some(details.id),
        None => runtime.inspect_image(&format!("{image}:latest"))?.map(|details| details.id),
    };
    let log = logs_dir(project).join(format!("{service}.log"));
    let (spec, backend_path) = build_spec(project, runtime, config, args.backend_build, build, base, service)?;
    let spec = BuildSpec { no_cache: args.no_cache, ..spec };

    let step = Step::start(format!("{service}: building {reference}"));
    let cmd = runtime.build_cmd(&spec);
    cmd.run_logged(&log).with_context(|| format!("building the {service} image"))?;
    let details = runtime
        .inspect_image(&reference)?
        .with_context(|| format!("`{cmd}` succeeded but {reference} is not in the image store"))?;
    let unchanged = previous_id.as_deref() == Some(details.id.as_str());
    let build_seconds = step.elapsed_seconds();
    step.finish(if unchanged { "unchanged (cache)" } else { "built" });

    Ok(ImageRecord {
        service,
        image,
        tag: build.version.clone(),
        reference,
        id: details.id,
        layers: details.rootfs.layers,
        size_bytes: details.size,
        build_seconds,
        unchanged,
        built_at: now_rfc3339(),
        build_host: host_name(),
        backend_build: backend_path,
        log: log.to_string_lossy().into_owned(),
    })
}

/// How one service's image is built: Dockerfile, context, tags, build args and labels.
/// For the backend this also decides (and for the host-binary path, prepares) how its
/// binary gets in.
fn build_spec(
    project: &Project,
    runtime: &Runtime,
    config: &Config,
    backend_build: BackendBuild,
    build: &BuildInfo,
    base: &BaseImage,
    service: Service,
) -> Result<(BuildSpec, Option<BackendPath>)> {
    let image = image_name(config, service);
    let reference = format!("{image}:{}", build.version);
    let mut build_args = vec![("BASE_IMAGE".to_string(), base.reference.clone())];
    let (dockerfile, context, backend_path) = match service {
        Service::Database | Service::WebFrontend => {
            let dir = project.path(service.name());
            (dir.join("Dockerfile"), dir, None)
        }
        Service::BackendApi => {
            let path = backend::prepare(project, runtime, config, backend_build, base)?;
            if path == BackendPath::MultiStage {
                build_args.push(("BUILDER_IMAGE".to_string(), config.images.builder.clone()));
            }
            (project.path(path.dockerfile()), project.root.clone(), Some(path))
        }
    };
    let spec = BuildSpec {
        dockerfile,
        context,
        tags: vec![reference, format!("{image}:latest")],
        build_args,
        labels: vec![
            ("org.opencontainers.image.title".into(), image.clone()),
            ("org.opencontainers.image.version".into(), build.version.clone()),
            ("org.opencontainers.image.revision".into(), build.revision.clone()),
            ("org.opencontainers.image.created".into(), build.created.clone()),
            ("org.opencontainers.image.base.name".into(), base.requested.clone()),
        ],
        no_cache: false,
    };
    Ok((spec, backend_path))
}

fn image_name(config: &Config, service: Service) -> String {
    match service {
        Service::Database => config.images.database.clone(),
        Service::BackendApi => config.images.backend.clone(),
        Service::WebFrontend => config.images.frontend.clone(),
    }
}

/// For `deploy --build-mode remote`: the base image (made available on this machine,
/// to be shipped) and each service's build spec, the backend by the host-binary path
/// (a target has no Rust builder image). Contexts are still local directories.
pub fn remote_build_specs(
    project: &Project,
    runtime: &Runtime,
    config: &Config,
    version: &str,
) -> Result<(BaseImage, Vec<(Service, BuildSpec)>)> {
    let build = BuildInfo::resolve(project, Some(version))?;
    let base = base::ensure(project, runtime, &config.images.base)?;
    let mut specs = Vec::new();
    for service in Service::ALL {
        let (spec, _) = build_spec(project, runtime, config, BackendBuild::HostBinary, &build, &base, service)?;
        specs.push((service, spec));
    }
    Ok((base, specs))
}

fn logs_dir(project: &Project) -> PathBuf {
    project.state_dir().join("logs").join("images")
}

/// Where the manifest of the last `images` run is, for the tests and later tasks.
pub fn latest_manifest_path(project: &Project) -> PathBuf {
    manifest::latest_path(project)
}

/// Reads the manifest of the last `images` run.
pub fn read_latest_manifest(project: &Project) -> Result<Manifest> {
    Manifest::read(&latest_manifest_path(project))
}

/// Reads a manifest from an explicit path.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    Manifest::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_docker_rules() {
        for good in ["abc1234", "abc1234-dirty", "1.4.0", "_x", "v2"] {
            validate_tag(good).unwrap();
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a:b", "é", &"x".repeat(129)] {
            let message = format!("{:#}", validate_tag(bad).unwrap_err());
            assert!(message.contains("--version"), "{message}");
        }
    }

    #[test]
    fn services_build_in_dependency_order() {
        let names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["database", "backend-api", "web-frontend"]);
    }
}
