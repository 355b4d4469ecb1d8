//! Building the images: the base image (offline when no registry answers), then
//! database → backend-api → web-frontend, tagged `cultivate-<service>:<version>` and
//! `:latest`, and a JSON manifest of what was built. The `images` task and `deploy`
//! both call [`build`].

mod backend;
mod base;
pub mod context;
mod manifest;
mod progress;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub use crate::model::service::Service;
pub use backend::{BackendBuild, BackendPath, glibc_required_by, parse_glibc_version};
pub use base::{BaseImage, BaseOrigin, debian_mirror, debian_suite, ensure as ensure_base};
pub use manifest::{ImageRecord, Manifest};

use crate::host::runtime::{BuildSpec, Runtime};
use crate::model::config::Config;
use crate::model::image::validate_tag;
use crate::support::log::now_rfc3339;
use crate::support::project::{Project, host_name};
use progress::Step;

/// What to build: the options of `cargo xtask images`, minus how the engine is
/// found (the caller hands a running one in).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Version tag (default: git short sha, `-dirty` with uncommitted changes).
    pub version: Option<String>,
    /// Only these services (empty: all); the others keep their current images.
    pub only: Vec<Service>,
    pub backend_build: BackendBuild,
    pub no_cache: bool,
    /// Base image to build FROM (default: `[images] base`).
    pub base_image: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            version: None,
            only: Vec::new(),
            backend_build: BackendBuild::Auto,
            no_cache: false,
            base_image: None,
        }
    }
}

/// Builds the images with `runtime` (its engine answering, version `engine`), tags
/// them and writes the manifest, which it returns.
pub fn build(
    project: &Project,
    config: &Config,
    runtime: &Runtime,
    engine: &str,
    options: &BuildOptions,
) -> Result<Manifest> {
    let started = Instant::now();
    let build = BuildInfo::resolve(project, options.version.as_deref())?;
    crate::support::log::say(format!(
        "Building Cultivate images {} with {} (engine {engine})",
        build.version, runtime.kind
    ));

    let requested_base = options.base_image.clone().unwrap_or_else(|| config.images.base.clone());
    let base = base::ensure(project, runtime, &requested_base)?;

    let services: Vec<Service> =
        Service::ALL.into_iter().filter(|service| options.only.is_empty() || options.only.contains(service)).collect();
    let mut records = Vec::new();
    for service in services {
        let record = build_service(project, runtime, config, options, &build, &base, service)?;
        records.push(record);
    }

    let manifest = Manifest::new(&build.version, &build.revision, runtime.kind, &base, records);
    // With --only, the other services keep their current images: carry their records
    // over from this version's manifest, or else from the latest one.
    let versioned = manifest::path(project, &build.version);
    let previous = if versioned.exists() { versioned } else { latest_manifest_path(project) };
    let manifest = manifest.merged_with_previous(&previous);
    let written = manifest.write(project)?;
    crate::support::log::say(format!("\n{}", manifest.summary_table()));
    crate::support::log::say(format!("Total {:.1}s; manifest {}", started.elapsed().as_secs_f64(), written.display()));
    Ok(manifest)
}

/// Version and revision of one run, for the tags and the manifest. Neither goes into
/// an image: an image whose own inputs did not change rebuilds (from the cache) to the
/// same id in every commit, so a deploy keeps its container running.
#[derive(Clone, Debug)]
struct BuildInfo {
    version: String,
    revision: String,
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
        let revision = revision.map_or_else(|_| "unknown".to_string(), |revision| revision.sha);
        Ok(BuildInfo { version, revision })
    }
}

fn build_service(
    project: &Project,
    runtime: &Runtime,
    config: &Config,
    options: &BuildOptions,
    build: &BuildInfo,
    base: &BaseImage,
    service: Service,
) -> Result<ImageRecord> {
    let image = service.image(config).to_string();
    let reference = format!("{image}:{}", build.version);
    // What the tags pointed at before: the same id afterwards means every layer came
    // from the cache and nothing changed.
    let previous_id = match runtime.inspect_image(&reference)? {
        Some(details) => Some(details.id),
        None => runtime.inspect_image(&format!("{image}:latest"))?.map(|details| details.id),
    };
    let log = logs_dir(project).join(format!("{service}.log"));
    let (spec, backend_path) = build_spec(project, runtime, config, options.backend_build, build, base, service)?;
    let spec = BuildSpec { no_cache: options.no_cache, ..spec };

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
    let image = service.image(config).to_string();
    let reference = format!("{image}:{}", build.version);
    let mut build_args = vec![("BASE_IMAGE".to_string(), base.reference.clone())];
    let (dockerfile, context, backend_path) = match service {
        Service::Database | Service::WebFrontend | Service::Edge => {
            let dir = project.path(service.build_dir());
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
            // Only what the image's own inputs decide (see `BuildInfo`).
            ("org.opencontainers.image.title".into(), image.clone()),
            ("org.opencontainers.image.base.name".into(), base.requested.clone()),
        ],
        no_cache: false,
    };
    Ok((spec, backend_path))
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
        assert_eq!(names, ["database", "backend-api", "web-frontend", "edge"]);
    }
}
