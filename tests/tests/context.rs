//! A build context archived by `xtask::images::context` is what a remote engine builds from:
//! `docker build -f Dockerfile -` takes the tar.gz on stdin, written straight into the
//! pipe. With the layers `cargo xtask images` left in the cache, the build is quick and
//! gives the very layers of the image built from the directory: the archive carries the
//! same files with the same metadata as the Docker CLI's own context. And the CLI's own
//! filtering of a directory by its `.dockerignore` lets through exactly what ours does.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cultivate_tests::{docker, manifest, project, require_engine};
use xtask::images::Service;

/// A tag removed when the test ends, passed or not.
struct TemporaryTag(String);

impl Drop for TemporaryTag {
    fn drop(&mut self) {
        let _ = docker(["image", "rm", self.0.as_str()]);
    }
}

#[test]
fn docker_builds_the_archived_contexts_from_stdin() {
    require_engine();
    let manifest = manifest();
    for service in [Service::Database, Service::WebFrontend] {
        let tag = TemporaryTag(format!("cultivate-context-test:tmp-{}", std::process::id()));
        let mut child = Command::new("docker")
            .args(["build", "-f", "Dockerfile", "-t", &tag.0, "--build-arg"])
            .arg(format!("BASE_IMAGE={}", manifest.base.reference))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker build");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (archived, output) = std::thread::scope(|scope| {
            let read_all = |stream: &mut dyn Read| {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                text
            };
            let out = scope.spawn(move || read_all(&mut stdout));
            let err = scope.spawn(move || read_all(&mut stderr));
            // The pipe closes when write_context drops its writer: docker sees the end.
            let archived = xtask::images::context::write_context(&project().path(service.name()), "Dockerfile", stdin);
            (archived, out.join().unwrap() + &err.join().unwrap())
        });
        let status = child.wait().unwrap();
        let summary = archived.unwrap_or_else(|e| panic!("{service}: archiving the context: {e:#}\n{output}"));
        assert!(status.success(), "{service}: docker build - failed ({status}):\n{output}");
        assert!(summary.files >= 3, "{service}: {summary}");

        let layers = docker(["image", "inspect", "--format", "{{json .RootFS.Layers}}", tag.0.as_str()]).unwrap();
        let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
        let built = &manifest.image(service).unwrap().layers;
        assert_eq!(
            &layers, built,
            "{service}: the image built from the archive differs from the one built from the directory \
             (a cache miss: the archive's files or their metadata differ from Docker's own context):\n{output}"
        );
    }
}

/// A scratch directory, an image and a container, removed when the test ends.
#[derive(Default)]
struct Leftovers {
    dir: Option<PathBuf>,
    image: Option<String>,
    container: Option<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(container) = &self.container {
            let _ = docker(["rm", "-f", container.as_str()]);
        }
        if let Some(image) = &self.image {
            let _ = docker(["image", "rm", image.as_str()]);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn docker_filters_a_directory_as_the_archive_does() {
    require_engine();
    let mut leftovers = Leftovers::default();
    let dir = std::env::temp_dir().join(format!("cultivate-context-filter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    leftovers.dir = Some(dir.clone());
    let rules = "# an allow-list, with exceptions below excluded directories\n*\n!keep\n!src/\n**/target\n\
                 !target/release/app\n**/*.pem\n!src/**/public.pem\n*/*.log\nsrc/gen/**\n!src/gen/keep.rs\n\
                 /src/b?d.rs\nsrc/[xy].rs\n!Dockerfile\n";
    let files = [
        ".dockerignore",
        "README.md",
        "keep",
        "secret.pem",
        "src/a.rs",
        "src/bad.rs",
        "src/bid.rs",
        "src/x.rs",
        "src/z.rs",
        "src/app.log",
        "src/deep/app.log",
        "src/deep/key.pem",
        "src/deep/public.pem",
        "src/gen/drop.rs",
        "src/gen/keep.rs",
        "src/target/debug/x",
        "target/release/app",
        "target/release/app.d",
        "target/debug/app",
    ];
    for file in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, if file == ".dockerignore" { rules } else { file }).unwrap();
    }
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /context/\n").unwrap();

    let dockerfile = dir.join("Dockerfile");
    let image = docker(["build", "-q", "-f", &dockerfile.to_string_lossy(), &dir.to_string_lossy()]).unwrap();
    leftovers.image = Some(image.lines().last().unwrap_or_default().trim().to_string());
    let container = docker(["create", leftovers.image.as_deref().unwrap(), "/none"]).unwrap();
    leftovers.container = Some(container.clone());
    let exported = Command::new("docker").args(["export", container.as_str()]).output().unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let mut from_docker = BTreeSet::new();
    for entry in tar::Archive::new(&exported.stdout[..]).entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if let Some(inside) = path.strip_prefix("context/")
            && entry.header().entry_type().is_file()
            && inside != "Dockerfile"
        {
            from_docker.insert(inside.to_string());
        }
    }

    let ours: BTreeSet<String> = xtask::images::context::context_entries(&dir, "Dockerfile")
        .unwrap()
        .into_iter()
        .filter(|entry| entry.kind == xtask::images::context::EntryKind::File)
        .map(|entry| entry.path.to_string_lossy().into_owned())
        // Always sent; the engine drops them after reading them when the rules exclude them.
        .filter(|path| path != ".dockerignore" && path != "Dockerfile")
        .collect();
    let expected: BTreeSet<String> = [
        "keep",
        "src/a.rs",
        "src/deep/app.log",
        "src/deep/public.pem",
        "src/gen/keep.rs",
        "src/z.rs",
        "target/release/app",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(from_docker, expected, "what the Docker CLI sent");
    assert_eq!(ours, expected, "what the archive holds");
}
