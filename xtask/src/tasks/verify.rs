//! `cargo xtask verify`: the pre-merge check. Formatting, clippy, the images, then
//! every test, including the ones that run the images in real containers. Without a
//! reachable container engine it fails and says how to get one: never a silent skip.

use anyhow::{Context, Result};

use crate::host::install;
use crate::images::{self, BuildOptions};
use crate::model::config::Config;
use crate::support::project::Project;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// On Debian/Ubuntu, install and start Docker (with debootstrap, the OpenSSH
    /// client and, for the browser tests, Chromium) when missing.
    #[arg(long)]
    pub install: bool,
}

pub fn run(project: &Project, args: &VerifyArgs) -> Result<()> {
    let cargo = |args: &[&str]| crate::support::cargo::cargo(args).dir(&project.root);

    section("cargo fmt --check");
    cargo(&["fmt", "--all", "--check"]).run_inherited().context("formatting differs: run `cargo fmt --all`")?;

    section("cargo clippy");
    cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])
        .run_inherited()
        .context("clippy found problems")?;

    section("container engine");
    let (runtime, engine) =
        install::ensure_local_engine(args.install).context("the container tests need a running container engine")?;
    eprintln!("{} engine {engine}", runtime.kind);
    if args.install {
        install::install_missing_tools(install::TEST_TOOLS)?;
    }

    section("cargo xtask images");
    let config = Config::load(&project.config_file)?;
    let manifest = images::build(project, &config, &runtime, &engine, &BuildOptions::default())?;

    section("cargo test");
    let manifest_path = images::latest_manifest_path(project);
    cargo(&["test", "--workspace", "--locked"])
        .env("CULTIVATE_IMAGES_MANIFEST", manifest_path.to_string_lossy())
        .run_inherited()
        .context("tests failed")?;

    eprintln!("\nverify: everything passed for images {}", manifest.version);
    Ok(())
}

fn section(title: &str) {
    eprintln!("\n==> {title}");
}
