//! `cargo xtask images`: finds (or with `--install` installs) the engine, then builds
//! and tags the three images and writes their manifest (`build::images`).

use anyhow::Result;

use crate::host::runtime::{Runtime, RuntimeKind};
use crate::images::{self, BackendBuild, BuildOptions, Manifest, Service};
use crate::model::config::Config;
use crate::support::project::Project;

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

impl ImagesArgs {
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            version: self.version.clone(),
            only: self.only.clone(),
            backend_build: self.backend_build,
            no_cache: self.no_cache,
            base_image: self.base_image.clone(),
        }
    }
}

pub fn run(project: &Project, args: &ImagesArgs) -> Result<Manifest> {
    let config = Config::load(&project.config_file)?;
    let (runtime, engine_version) = match args.runtime {
        Some(kind) if !args.install => {
            let runtime = Runtime::detect_local(Some(kind))?;
            let version = runtime.ensure_engine()?;
            (runtime, version)
        }
        _ => crate::host::install::ensure_local_engine(args.install)?,
    };
    images::build(project, &config, &runtime, &engine_version, &args.options())
}
