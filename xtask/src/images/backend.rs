//! How the backend binary gets into its image. The multi-stage Dockerfile compiles it
//! inside a Rust builder image (the normal path, and the only one from macOS). Where no
//! builder image can be had, a Linux build machine compiles it with its own cargo and
//! the image copies that binary in, after checking the base image's glibc is new enough.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::base::BaseImage;
use super::progress::Step;
use crate::host::runtime::Runtime;
use crate::model::config::Config;
use crate::support::cargo::{JSON_MESSAGES, built_executable, cargo};
use crate::support::command::{Cmd, TimedOutput};
use crate::support::project::Project;

/// What the user asked for (`--backend-build`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendBuild {
    Auto,
    MultiStage,
    HostBinary,
}

/// The path actually taken, recorded in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendPath {
    MultiStage,
    HostBinary,
}

impl BackendPath {
    pub fn dockerfile(self) -> &'static str {
        match self {
            BackendPath::MultiStage => "backend-api/Dockerfile",
            BackendPath::HostBinary => "backend-api/Dockerfile.prebuilt",
        }
    }
}

impl fmt::Display for BackendPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendPath::MultiStage => "multi-stage build in the builder image",
            BackendPath::HostBinary => "binary built on this machine by cargo",
        })
    }
}

/// The host binary the prebuilt Dockerfile copies (relative to the workspace root).
pub const HOST_BINARY: &str = "target/release/backend-api";

/// Chooses the build path. `builder_available` is asked only when it matters.
pub fn choose_path(
    requested: BackendBuild,
    host_is_linux: bool,
    builder_available: impl FnOnce() -> Result<(), String>,
) -> Result<BackendPath> {
    let host_binary = || {
        if host_is_linux {
            Ok(BackendPath::HostBinary)
        } else {
            bail!(
                "--backend-build host-binary needs a Linux build machine (the binary runs in a Linux image); use the multi-stage build"
            )
        }
    };
    match requested {
        BackendBuild::HostBinary => host_binary(),
        BackendBuild::MultiStage => match builder_available() {
            Ok(()) => Ok(BackendPath::MultiStage),
            Err(why) => bail!("--backend-build multi-stage needs the builder image, which cannot be had: {why}"),
        },
        BackendBuild::Auto => match builder_available() {
            Ok(()) => Ok(BackendPath::MultiStage),
            Err(why) if host_is_linux => {
                crate::support::log::say(format!(
                    "  builder image unavailable ({why}); compiling backend-api on this machine instead"
                ));
                Ok(BackendPath::HostBinary)
            }
            Err(why) => bail!(
                "the backend's builder image cannot be had ({why}), and a host-built binary only works from Linux. \
                 Make the builder image available (`[images] builder` in deploy/deploy.toml) and run again."
            ),
        },
    }
}

/// Decides the path and, for the host-binary path, builds and checks the binary.
pub fn prepare(
    project: &Project,
    runtime: &Runtime,
    config: &Config,
    requested: BackendBuild,
    base: &BaseImage,
) -> Result<BackendPath> {
    let builder = &config.images.builder;
    let path = choose_path(requested, cfg!(target_os = "linux"), || builder_available(runtime, builder))?;
    crate::support::log::say(format!("  backend-api: {path}"));
    if path == BackendPath::HostBinary {
        let step = Step::start("backend-api: cargo build --release".to_string());
        let log = project.state_dir().join("logs").join("images").join("backend-api-cargo.log");
        let messages =
            cargo_build_cmd(project).stdout_logging_stderr(&log).context("compiling backend-api on this machine")?;
        let built = built_executable(&messages, "backend-api")
            .with_context(|| format!("cargo built backend-api but named no executable; its log: {}", log.display()))?;
        place_host_binary(&built, &project.path(HOST_BINARY))?;
        step.finish(&format!("compiled {}", built.display()));
        check_glibc(project, runtime, base)?;
    }
    Ok(path)
}

/// `cargo build` of the backend, wherever CARGO_TARGET_DIR, `build.target-dir` or
/// `build.target` put it: cargo names the executable in its JSON messages on stdout
/// (its diagnostics, rendered, go to the log).
pub fn cargo_build_cmd(project: &Project) -> Cmd {
    cargo(&["build", "--release", "--locked", "--package", "backend-api", JSON_MESSAGES]).dir(&project.root)
}

/// Puts the binary cargo built where the prebuilt Dockerfile copies it from (the build
/// context is the workspace), when it is not there already. Written beside and renamed,
/// so an interrupted copy never leaves half a binary to package.
fn place_host_binary(built: &Path, destination: &Path) -> Result<()> {
    let bytes = std::fs::read(built).with_context(|| format!("reading {}", built.display()))?;
    // Also the case when cargo built it there: the same file.
    if std::fs::read(destination).is_ok_and(|held| held == bytes) {
        return Ok(());
    }
    let parent = destination.parent().context("the host binary's path has no folder")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = destination.with_extension("partial");
    std::fs::copy(built, &partial).with_context(|| format!("copying {} to {}", built.display(), partial.display()))?;
    std::fs::rename(&partial, destination)
        .with_context(|| format!("renaming {} to {}", partial.display(), destination.display()))
}

fn builder_available(runtime: &Runtime, builder: &str) -> Result<(), String> {
    match runtime.inspect_image(builder) {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(err) => return Err(format!("{err:#}")),
    }
    match runtime.pull_cmd(builder).capture_with_timeout(Duration::from_secs(900)) {
        Ok(TimedOutput::Finished(output)) if output.status.success() => Ok(()),
        Ok(TimedOutput::Finished(output)) => {
            Err(format!("{builder}: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
        Ok(TimedOutput::TimedOut) => Err(format!("pulling {builder} did not finish in 15 minutes")),
        Err(err) => Err(format!("{err:#}")),
    }
}

fn check_glibc(project: &Project, runtime: &Runtime, base: &BaseImage) -> Result<()> {
    let binary_path = project.path(HOST_BINARY);
    let binary = std::fs::read(&binary_path).with_context(|| format!("reading {}", binary_path.display()))?;
    let Some(needed) = glibc_required_by(&binary) else {
        return Ok(()); // statically linked or not glibc: nothing to check
    };
    let getconf = Cmd::new(runtime.program.to_string_lossy())
        .args(["run", "--rm", "--entrypoint", "getconf"])
        .arg(base.reference.as_str())
        .arg("GNU_LIBC_VERSION");
    let answer = getconf.output().with_context(|| format!("asking {} for its glibc version", base.reference))?;
    let available = parse_glibc_version(&answer)
        .with_context(|| format!("`{getconf}` answered {answer:?}, not a glibc version"))?;
    if available < needed {
        bail!(
            "backend-api, built on this machine, needs glibc {}.{} but the base image {} has glibc {}.{}.\n\
             Build on a machine with an older glibc, choose a newer base (`[images] base` in deploy/deploy.toml), \
             or use the multi-stage build (--backend-build multi-stage) with a builder image.",
            needed.0,
            needed.1,
            base.reference,
            available.0,
            available.1
        );
    }
    crate::support::log::say(format!(
        "  glibc: binary needs {}.{}, base image {} has {}.{}",
        needed.0, needed.1, base.reference, available.0, available.1
    ));
    Ok(())
}

/// The newest `GLIBC_x.y` symbol version an ELF binary refers to.
pub fn glibc_required_by(binary: &[u8]) -> Option<(u32, u32)> {
    const MARKER: &[u8] = b"GLIBC_";
    let mut newest = None;
    let mut rest = binary;
    while let Some(at) = rest.windows(MARKER.len()).position(|window| window == MARKER) {
        let tail = &rest[at + MARKER.len()..];
        let end = tail.iter().position(|b| !(b.is_ascii_digit() || *b == b'.')).unwrap_or(tail.len());
        if let Some(version) = std::str::from_utf8(&tail[..end]).ok().and_then(parse_dotted) {
            newest = newest.max(Some(version));
        }
        rest = tail;
    }
    newest
}

/// `glibc 2.36` (getconf GNU_LIBC_VERSION) → (2, 36).
pub fn parse_glibc_version(text: &str) -> Option<(u32, u32)> {
    parse_dotted(text.trim().strip_prefix("glibc ")?.trim())
}

fn parse_dotted(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_glibc_symbol_version_wins() {
        let binary = b"\x7fELF..GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0";
        assert_eq!(glibc_required_by(binary), Some((2, 34)));
        assert_eq!(glibc_required_by(b"static binary"), None);
    }

    #[test]
    fn getconf_answer_is_parsed() {
        assert_eq!(parse_glibc_version("glibc 2.36\n"), Some((2, 36)));
        assert_eq!(parse_glibc_version("musl"), None);
    }

    #[test]
    fn the_build_prints_what_it_built() {
        let line = cargo_build_cmd(&Project { root: "/w".into(), config_file: "/w/d.toml".into() }).to_string();
        assert!(line.contains(JSON_MESSAGES), "{line}");
    }

    #[test]
    fn the_binary_is_placed_where_the_dockerfile_copies_it_from() {
        let dir = std::env::temp_dir().join(format!("cultivate-place-{}", std::process::id()));
        let built = dir.join("elsewhere/release/backend-api");
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        std::fs::write(&built, b"binary v1").unwrap();
        let destination = dir.join("workspace").join(HOST_BINARY);
        place_host_binary(&built, &destination).unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"binary v1");
        std::fs::write(&built, b"binary v2").unwrap();
        place_host_binary(&built, &destination).unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"binary v2");
        // Where cargo built it already: left as it is.
        place_host_binary(&destination, &destination).unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"binary v2");
        assert!(!destination.with_extension("partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auto_prefers_the_builder_image() {
        assert_eq!(choose_path(BackendBuild::Auto, true, || Ok(())).unwrap(), BackendPath::MultiStage);
        assert_eq!(choose_path(BackendBuild::Auto, false, || Ok(())).unwrap(), BackendPath::MultiStage);
    }

    #[test]
    fn auto_falls_back_to_the_host_binary_on_linux_only() {
        let unavailable = || Err("no registry".to_string());
        assert_eq!(choose_path(BackendBuild::Auto, true, unavailable).unwrap(), BackendPath::HostBinary);
        let message = format!("{:#}", choose_path(BackendBuild::Auto, false, unavailable).unwrap_err());
        assert!(message.contains("no registry") && message.contains("builder"), "{message}");
    }

    #[test]
    fn forced_paths_say_why_they_cannot_run() {
        let message = format!("{:#}", choose_path(BackendBuild::HostBinary, false, || Ok(())).unwrap_err());
        assert!(message.contains("Linux"), "{message}");
        let message =
            format!("{:#}", choose_path(BackendBuild::MultiStage, true, || Err("offline".into())).unwrap_err());
        assert!(message.contains("offline"), "{message}");
        let never_asked = || -> Result<(), String> { panic!("builder looked up for host-binary") };
        assert_eq!(choose_path(BackendBuild::HostBinary, true, never_asked).unwrap(), BackendPath::HostBinary);
    }
}
