//! The base image. Normally it is present or pullable; on a machine that reaches no
//! registry, a Debian base is built offline from the mirror this machine's apt already
//! uses (debootstrap + import), tagged `cultivate-base:<suite>` and reused afterwards.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::progress::Step;
use crate::host::runtime::Runtime;
use crate::support::command::{Cmd, TimedOutput};
use crate::support::project::Project;

/// How long a pull may take before we give up on the registry.
const PULL_LIMIT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// What the settings asked for, e.g. `debian:bookworm-slim`.
    pub requested: String,
    /// What the Dockerfiles build FROM: the requested image or its offline stand-in.
    pub reference: String,
    pub origin: BaseOrigin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseOrigin {
    /// The requested image was already in the image store.
    Present,
    /// The requested image was pulled from its registry.
    Pulled,
    /// Built offline by this run.
    Bootstrapped,
    /// Built offline by an earlier run and reused.
    BootstrapCached,
}

pub fn ensure(project: &Project, runtime: &Runtime, requested: &str) -> Result<BaseImage> {
    let step = Step::start(format!("base image {requested}"));
    let found =
        |reference: &str, origin| BaseImage { requested: requested.into(), reference: reference.into(), origin };

    if runtime.inspect_image(requested)?.is_some() {
        step.finish("present");
        return Ok(found(requested, BaseOrigin::Present));
    }
    let pull = runtime.pull_cmd(requested);
    let pull_failure = match pull.capture_with_timeout(PULL_LIMIT)? {
        TimedOutput::Finished(output) if output.status.success() => {
            step.finish("pulled");
            return Ok(found(requested, BaseOrigin::Pulled));
        }
        TimedOutput::Finished(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
        TimedOutput::TimedOut => format!("no answer within {PULL_LIMIT:?}"),
    };

    let Some(suite) = debian_suite(requested) else {
        bail!(
            "base image {requested} is not here and cannot be pulled ({pull_failure}).\n\
             Only Debian bases (debian:<suite> or debian:<suite>-slim) can be built offline. \
             Load it with `docker load`, or set `[images] base` in deploy/deploy.toml."
        );
    };
    let stand_in = format!("cultivate-base:{suite}");
    if runtime.inspect_image(&stand_in)?.is_some() {
        step.finish(&format!("cannot be pulled; reusing offline build {stand_in}"));
        return Ok(found(&stand_in, BaseOrigin::BootstrapCached));
    }
    drop(step);
    crate::support::log::say(format!(
        "  {requested} cannot be pulled ({pull_failure}); building {stand_in} from the Debian mirror"
    ));
    bootstrap(project, runtime, &suite, &stand_in)?;
    Ok(found(&stand_in, BaseOrigin::Bootstrapped))
}

/// `debian:bookworm-slim` → `bookworm`; anything that is not a Debian image → None.
pub fn debian_suite(reference: &str) -> Option<String> {
    let reference = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let reference = reference.strip_prefix("library/").unwrap_or(reference);
    let tag = reference.strip_prefix("debian:")?;
    let suite = tag.strip_suffix("-slim").unwrap_or(tag);
    let is_codename = !suite.is_empty() && suite.chars().all(|c| c.is_ascii_lowercase());
    is_codename.then(|| suite.to_string())
}

/// The Debian mirror from apt's sources: the deb822 file first, then sources.list.
/// Security archives are skipped; they do not carry the main suites.
pub fn debian_mirror(deb822: Option<&str>, sources_list: Option<&str>) -> Option<String> {
    let from_deb822 = deb822.into_iter().flat_map(str::lines).filter_map(|line| {
        let uris = line.trim().strip_prefix("URIs:")?;
        uris.split_whitespace().next().map(str::to_string)
    });
    let from_list = sources_list.into_iter().flat_map(str::lines).filter_map(|line| {
        let mut words = line.trim().strip_prefix("deb ")?.split_whitespace();
        let mut word = words.next()?;
        if word.starts_with('[') {
            // Options such as `[arch=amd64 signed-by=…]` may span several words.
            while !word.ends_with(']') {
                word = words.next()?;
            }
            word = words.next()?;
        }
        Some(word.to_string())
    });
    from_deb822.chain(from_list).find(|uri| !uri.contains("security"))
}

fn read_apt_mirror() -> Result<String> {
    let deb822 = fs::read_to_string("/etc/apt/sources.list.d/debian.sources").ok();
    let list = fs::read_to_string("/etc/apt/sources.list").ok();
    debian_mirror(deb822.as_deref(), list.as_deref()).context(
        "building the base image offline needs a Debian mirror, but none is configured in \
         /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list",
    )
}

fn bootstrap(project: &Project, runtime: &Runtime, suite: &str, stand_in: &str) -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(
            "building a base image offline needs a Linux build machine with debootstrap; make the base image available to your runtime instead"
        );
    }
    if which::which("debootstrap").is_err() {
        bail!(
            "the base image must be built offline, but debootstrap is missing: install it with `sudo apt-get install debootstrap`"
        );
    }
    if !crate::host::install::is_root()? {
        bail!(
            "building the base image offline runs debootstrap, which needs root: run `cargo xtask images` as root once (later runs reuse {stand_in})"
        );
    }
    let mirror = read_apt_mirror()?;
    let scratch = project.state_dir().join("base").join(format!("rootfs-{suite}"));
    let log = project.state_dir().join("logs").join("images").join("base.log");
    remove_tree(&scratch)?;
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let step = Step::start(format!("base image {stand_in}: debootstrap {suite} from {mirror}"));
    debootstrap_cmd(suite, &scratch, &mirror).run_logged(&log).context("debootstrap failed")?;
    prune_rootfs(&scratch)?;
    step.finish("root filesystem ready");

    let step = Step::start(format!("base image {stand_in}: importing"));
    let tar = Cmd::new("tar").args(["--numeric-owner", "-C"]).arg(scratch.to_string_lossy()).args(["-c", "."]);
    let import = runtime.import_cmd(
        stand_in,
        &[
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "CMD [\"/bin/bash\"]".to_string(),
        ],
    );
    let output = tar
        .to_expression()
        .pipe(import.to_expression())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .with_context(|| format!("running `{tar} | {import}`"))?;
    if !output.status.success() {
        bail!("`{tar} | {import}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    remove_tree(&scratch)?;
    step.finish("imported");
    Ok(())
}

pub fn debootstrap_cmd(suite: &str, target: &Path, mirror: &str) -> Cmd {
    Cmd::new("debootstrap").args(["--variant=minbase", suite]).arg(target.to_string_lossy()).arg(mirror)
}

/// apt and dpkg settings the official `debian:*-slim` images carry, so images built
/// FROM the offline stand-in come out the same size: no package cache left behind,
/// no docs, man pages or translations installed.
pub const SLIM_SETTINGS: [(&str, &str); 3] = [
    (
        "etc/apt/apt.conf.d/docker-clean",
        "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n",
    ),
    ("etc/apt/apt.conf.d/docker-no-languages", "Acquire::Languages \"none\";\n"),
    (
        "etc/dpkg/dpkg.cfg.d/docker-slim",
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\n\
         path-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n",
    ),
];

/// Drops what a slim image leaves out (downloaded packages, package lists, docs) and
/// writes the slim image's apt and dpkg settings.
fn prune_rootfs(rootfs: &Path) -> Result<()> {
    for (relative, content) in SLIM_SETTINGS {
        let path = rootfs.join(relative);
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    // (directory, names kept in it)
    let prune: [(&str, &[&str]); 6] = [
        ("var/cache/apt/archives", &["partial", "lock"]),
        ("var/lib/apt/lists", &["partial", "lock"]),
        ("usr/share/man", &[]),
        ("usr/share/info", &[]),
        ("usr/share/locale", &["locale.alias"]),
        ("usr/share/doc", &[]),
    ];
    for (dir, keep) in prune {
        let Ok(entries) = fs::read_dir(rootfs.join(dir)) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.file_name().is_some_and(|name| keep.iter().any(|k| name == *k)) {
                continue;
            }
            let copyright = path.join("copyright");
            let result = if dir == "usr/share/doc" && copyright.is_file() {
                // Licences stay, as in the slim images.
                keep_only(&path, &copyright)
            } else if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.with_context(|| format!("pruning {}", path.display()))?;
        }
    }
    Ok(())
}

fn keep_only(dir: &Path, kept: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path != kept {
            if path.is_dir() { fs::remove_dir_all(&path)? } else { fs::remove_file(&path)? }
        }
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_references_give_their_suite() {
        assert_eq!(debian_suite("debian:bookworm-slim").as_deref(), Some("bookworm"));
        assert_eq!(debian_suite("debian:trixie").as_deref(), Some("trixie"));
        assert_eq!(debian_suite("docker.io/library/debian:bookworm-slim").as_deref(), Some("bookworm"));
        assert_eq!(debian_suite("debian:12-slim"), None);
        assert_eq!(debian_suite("ubuntu:24.04"), None);
        assert_eq!(debian_suite("registry.example/debian:bookworm"), None);
    }

    #[test]
    fn mirror_comes_from_deb822_sources_first() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(debian_mirror(Some(deb822), None).as_deref(), Some("http://mirror.example/debian"));
    }

    #[test]
    fn mirror_comes_from_sources_list_with_options() {
        let list = "# comment\ndeb http://security.example/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(debian_mirror(None, Some(list)).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(debian_mirror(None, Some("")), None);
    }

    #[test]
    fn debootstrap_builds_a_minimal_root() {
        let cmd = debootstrap_cmd("bookworm", Path::new("/tmp/root fs"), "http://mirror.example/debian");
        assert_eq!(
            cmd.to_string(),
            "debootstrap '--variant=minbase' bookworm '/tmp/root fs' http://mirror.example/debian"
        );
    }
}
