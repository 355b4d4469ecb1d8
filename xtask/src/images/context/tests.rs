use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::support::project::Project;

/// A directory of its own under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(purpose: &str) -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cultivate-context-{}-{purpose}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `relative` (creating its directories) with `content` and `mode`.
    fn file(&self, relative: &str, content: &[u8], mode: u32) -> &Scratch {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn text(&self, relative: &str, content: &str) -> &Scratch {
        self.file(relative, content.as_bytes(), 0o644)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn archive(dir: &Path, dockerfile: &str) -> (Vec<u8>, ContextSummary) {
    let mut bytes = Vec::new();
    let summary = write_context(dir, dockerfile, &mut bytes).unwrap_or_else(|e| panic!("{e:#}"));
    (bytes, summary)
}

/// An entry as read back from an archive.
#[derive(Debug, PartialEq, Eq)]
struct Archived {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    link: Option<String>,
    content: Vec<u8>,
}

/// Reads an archive back, checking every header carries nothing of the machine.
fn unpack(bytes: &[u8]) -> Vec<Archived> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert_eq!((header.uid().unwrap(), header.gid().unwrap(), header.mtime().unwrap()), (0, 0, 0), "{path}");
        assert_eq!(header.username_bytes().unwrap_or_default(), b"", "{path}");
        assert_eq!(header.groupname_bytes().unwrap_or_default(), b"", "{path}");
        let kind = header.entry_type();
        let mode = header.mode().unwrap();
        let link = entry.link_name_bytes().map(|link| String::from_utf8(link.into_owned()).unwrap());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        entries.push(Archived { path, kind, mode, link, content });
    }
    entries
}

fn archived_paths(bytes: &[u8]) -> Vec<String> {
    unpack(bytes).into_iter().map(|entry| entry.path).collect()
}

/// What `context_entries` lets through, directories with a trailing `/`.
fn listed(dir: &Path, dockerfile: &str) -> Vec<String> {
    context_entries(dir, dockerfile)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .map(|entry| {
            let path = slash_path(&entry.path);
            if entry.kind == EntryKind::Directory { format!("{path}/") } else { path }
        })
        .collect()
}

/// Copies a tree of files and directories (what the service contexts hold).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Sets the modification time of everything under `dir` (files and directories).
fn touch_all(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            touch_all(&entry.path(), when);
        }
        File::open(entry.path()).unwrap().set_modified(when).unwrap();
    }
}

fn is_secret_looking(path: &str) -> bool {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap();
    name == ".env"
        || name.starts_with(".env.")
        || [".pem", ".key", ".crt", ".p12"].iter().any(|suffix| name.ends_with(suffix))
        || path.split('/').any(|part| part == "secrets")
}

/// The sources of a Dockerfile's `COPY` lines from the build context.
fn copy_sources(dockerfile: &str) -> Vec<String> {
    let mut sources = Vec::new();
    for line in dockerfile.lines().filter(|line| line.starts_with("COPY ") && !line.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).filter(|word| !word.starts_with("--")).collect();
        sources.extend(words[..words.len() - 1].iter().map(|word| word.to_string()));
    }
    sources
}

// ---- what goes into the archive ----

#[test]
fn the_dockerfile_and_dockerignore_are_sent_even_when_ignored() {
    let tree = Scratch::new("always");
    tree.text(".dockerignore", "Dockerfile\n.dockerignore\n*.md\nsub\n")
        .text("Dockerfile", "FROM scratch\n")
        .text("README.md", "")
        .text("kept.txt", "")
        .text("sub/Dockerfile", "FROM scratch\n")
        .text("sub/other", "");
    assert_eq!(listed(tree.path(), "Dockerfile"), [".dockerignore", "Dockerfile", "kept.txt"]);
    // The excluded directory on the way to the Dockerfile is no entry of its own.
    assert_eq!(listed(tree.path(), "./sub//Dockerfile"), [".dockerignore", "kept.txt", "sub/Dockerfile"]);
}

#[test]
fn the_dockerfile_must_be_in_the_context() {
    let tree = Scratch::new("nodockerfile");
    tree.text("a", "");
    let message = format!("{:#}", context_entries(tree.path(), "Dockerfile").unwrap_err());
    assert!(message.contains("no Dockerfile Dockerfile"), "{message}");
    for outside in ["../Dockerfile", "/etc/Dockerfile", ".", "a/../.."] {
        let message = format!("{:#}", context_entries(tree.path(), outside).unwrap_err());
        assert!(message.contains("inside the build context"), "{outside}: {message}");
    }
    let inside = |dockerfile: &str, context: &str| {
        dockerfile_in_context(&BuildSpec {
            dockerfile: dockerfile.into(),
            context: context.into(),
            tags: Vec::new(),
            build_args: Vec::new(),
            labels: Vec::new(),
            no_cache: false,
        })
    };
    assert_eq!(inside("/w/backend-api/Dockerfile.prebuilt", "/w").unwrap(), "backend-api/Dockerfile.prebuilt");
    assert_eq!(inside("/w/database/Dockerfile", "/w/database").unwrap(), "Dockerfile");
    assert!(inside("/elsewhere/Dockerfile", "/w/database").is_err());
    assert!(inside("/w/database", "/w/database").is_err());
}

#[test]
fn headers_carry_nothing_of_this_machine() {
    let tree = Scratch::new("headers");
    tree.file("Dockerfile", b"FROM scratch\n", 0o600)
        .file("bin/run.sh", b"#!/bin/sh\n", 0o700)
        .file("bin/tool", b"\x7fELF", 0o775)
        .file("conf/app.conf", b"x = 1\n", 0o664);
    fs::set_permissions(tree.path().join("conf"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("../conf/app.conf", tree.path().join("bin/app.conf")).unwrap();
    let (bytes, _) = archive(tree.path(), "Dockerfile");
    assert_eq!(bytes[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255], "gzip header: no name, no time, OS unknown");
    let entries = unpack(&bytes);
    let summary: Vec<(&str, tar::EntryType, u32, Option<&str>)> =
        entries.iter().map(|e| (e.path.as_str(), e.kind, e.mode, e.link.as_deref())).collect();
    use tar::EntryType::{Directory, Regular, Symlink};
    assert_eq!(
        summary,
        [
            ("Dockerfile", Regular, 0o644, None),
            ("bin/", Directory, 0o755, None),
            ("bin/app.conf", Symlink, 0o777, Some("../conf/app.conf")),
            ("bin/run.sh", Regular, 0o755, None),
            ("bin/tool", Regular, 0o755, None),
            ("conf/", Directory, 0o755, None),
            ("conf/app.conf", Regular, 0o644, None),
        ]
    );
    assert_eq!(entries[3].content, b"#!/bin/sh\n");
}

#[test]
fn the_summary_adds_up() {
    let tree = Scratch::new("summary");
    tree.text("Dockerfile", "FROM scratch\n").text("a/b.txt", "hello").file("a/c.bin", &[7u8; 5000], 0o755);
    std::os::unix::fs::symlink("b.txt", tree.path().join("a/link")).unwrap();
    let (bytes, summary) = archive(tree.path(), "Dockerfile");
    assert_eq!((summary.files, summary.directories, summary.symlinks), (3, 1, 1));
    assert_eq!(summary.content_bytes, 13 + 5 + 5000);
    assert_eq!(summary.compressed_bytes, bytes.len() as u64);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar_bytes).unwrap();
    assert_eq!(summary.uncompressed_bytes, tar_bytes.len() as u64);
    let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(summary.sha256, sha256);
    assert!(summary.skipped.is_empty());
    let shown = summary.to_string();
    assert!(shown.starts_with("3 files, 1 directories, 1 symlinks") && shown.contains(&sha256), "{shown}");
}

#[test]
fn the_same_tree_gives_the_same_bytes_anywhere_and_anytime() {
    let first = Scratch::new("same-a");
    first.text("Dockerfile", "FROM scratch\n").text("z/last", "z").file("a/run", b"#!/bin/sh\n", 0o755);
    // Created in another order, with other modes, in another place.
    let second = Scratch::new("same-b");
    second.file("a/run", b"#!/bin/sh\n", 0o700).file("z/last", b"z", 0o600).file(
        "Dockerfile",
        b"FROM scratch\n",
        0o664,
    );
    fs::set_permissions(second.path().join("z"), fs::Permissions::from_mode(0o770)).unwrap();
    let (bytes, summary) = archive(first.path(), "Dockerfile");
    assert_eq!(archive(second.path(), "Dockerfile").0, bytes);
    touch_all(second.path(), SystemTime::now() + Duration::from_secs(3600));
    let (again, again_summary) = archive(second.path(), "Dockerfile");
    assert_eq!(again, bytes, "touching files changes nothing");
    assert_eq!(again_summary, summary);
}

#[test]
fn the_service_contexts_are_the_same_from_another_checkout() {
    let project = Project::locate().unwrap();
    for service in ["database", "web-frontend"] {
        let here = project.path(service);
        let elsewhere = Scratch::new(service);
        let copy = elsewhere.path().join("checkout").join(service);
        copy_tree(&here, &copy);
        touch_all(&copy, SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890));
        let (bytes, summary) = archive(&here, "Dockerfile");
        let (copied, copied_summary) = archive(&copy, "Dockerfile");
        assert!(bytes == copied, "{service}: archives differ");
        assert_eq!(summary.sha256, copied_summary.sha256);
    }
}

#[test]
fn symlinks_are_archived_as_links_and_never_followed() {
    let outside = Scratch::new("outside");
    outside.text("secret.txt", "do not ship");
    let tree = Scratch::new("links");
    tree.text("Dockerfile", "FROM scratch\n").text("a.txt", "a");
    std::os::unix::fs::symlink(outside.path(), tree.path().join("escape")).unwrap();
    std::os::unix::fs::symlink("a.txt", tree.path().join("b.txt")).unwrap();
    let (bytes, summary) = archive(tree.path(), "Dockerfile");
    assert_eq!(summary.symlinks, 2);
    let entries = unpack(&bytes);
    assert!(entries.iter().all(|entry| entry.content != b"do not ship"));
    let escape = entries.iter().find(|entry| entry.path == "escape").unwrap();
    assert_eq!(
        (escape.kind, escape.link.as_deref()),
        (tar::EntryType::Symlink, Some(outside.path().to_str().unwrap()))
    );
}

#[test]
fn sockets_and_fifos_are_skipped_with_a_reason() {
    let tree = Scratch::new("special");
    tree.text("Dockerfile", "FROM scratch\n");
    let _listener = std::os::unix::net::UnixListener::bind(tree.path().join("agent.sock")).unwrap();
    let status = std::process::Command::new("mkfifo").arg(tree.path().join("pipe")).status().unwrap();
    assert!(status.success());
    let (bytes, summary) = archive(tree.path(), "Dockerfile");
    assert_eq!(archived_paths(&bytes), ["Dockerfile"]);
    let skipped: Vec<(String, &str)> =
        summary.skipped.iter().map(|s| (slash_path(&s.path), s.reason.split_whitespace().nth(1).unwrap())).collect();
    assert_eq!(skipped, [("agent.sock".to_string(), "socket"), ("pipe".to_string(), "FIFO:")]);
    assert!(summary.to_string().contains("skipped pipe (a FIFO"), "{summary}");
}

#[test]
fn long_names_and_link_targets_survive() {
    let tree = Scratch::new("long");
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let target = format!("../{}", "t".repeat(200));
    tree.text("Dockerfile", "FROM scratch\n").text(&deep, "deep");
    std::os::unix::fs::symlink(&target, tree.path().join("link")).unwrap();
    let entries = unpack(&archive(tree.path(), "Dockerfile").0);
    let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    assert_eq!(paths, ["Dockerfile", &format!("{}/", "d".repeat(120)), &deep, "link"]);
    assert_eq!(entries[2].content, b"deep");
    assert_eq!(entries[3].link.as_deref(), Some(target.as_str()));
}

#[test]
fn streaming_through_a_pipe_gives_the_same_bytes() {
    let tree = Scratch::new("stream");
    // Incompressible and larger than a pipe's buffer, so the writer must wait for us.
    let mut noise = Vec::with_capacity(1 << 20);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while noise.len() < 1 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    tree.text("Dockerfile", "FROM scratch\n").file("noise.bin", &noise, 0o644);
    let (bytes, summary) = archive(tree.path(), "Dockerfile");

    let mut stream = stream_context(tree.path(), "Dockerfile").unwrap();
    let mut streamed = Vec::new();
    stream.read_to_end(&mut streamed).unwrap();
    assert!(streamed == bytes, "the stream differs from the archive written to memory");
    assert_eq!(stream.finish().unwrap(), summary);

    // A plain pipe as the writer, drained by another thread.
    let (mut reader, writer) = io::pipe().unwrap();
    let drained = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    let piped_summary = write_context(tree.path(), "Dockerfile", writer).unwrap();
    assert!(drained.join().unwrap() == bytes);
    assert_eq!(piped_summary, summary);

    // A reader that gives up early stops the writer instead of leaving it blocked.
    let mut stream = stream_context(tree.path(), "Dockerfile").unwrap();
    stream.read_exact(&mut [0u8; 1000]).unwrap();
    let message = format!("{:#}", stream.finish().unwrap_err());
    assert!(message.contains("noise.bin") || message.to_lowercase().contains("pipe"), "{message}");

    // Configuration errors surface before any byte is streamed.
    assert!(stream_context(tree.path(), "Missing.Dockerfile").is_err());
}

// ---- the project's own contexts ----

#[test]
fn the_service_contexts_hold_what_their_dockerfiles_copy() {
    let project = Project::locate().unwrap();
    for service in ["database", "web-frontend"] {
        let dir = project.path(service);
        let paths = listed(&dir, "Dockerfile");
        assert!(paths.contains(&".dockerignore".to_string()) && paths.contains(&"Dockerfile".to_string()));
        for source in copy_sources(&fs::read_to_string(dir.join("Dockerfile")).unwrap()) {
            let on_disk = dir.join(&source);
            assert!(on_disk.exists(), "{service}: COPY {source} names nothing");
            assert!(paths.iter().any(|path| path == &source), "{service}: {source} is not in the context: {paths:?}");
            if on_disk.is_dir() {
                for file in fs::read_dir(&on_disk).unwrap() {
                    let file = format!("{source}{}", file.unwrap().file_name().to_string_lossy());
                    assert!(paths.contains(&file), "{service}: {file} is not in the context");
                }
            }
        }
        for path in &paths {
            assert!(!is_secret_looking(path), "{service}: {path} looks like a secret");
        }
    }
    let frontend = listed(&project.path("web-frontend"), "Dockerfile");
    assert!(!frontend.contains(&"README.md".to_string()), "{frontend:?}");
}

#[test]
fn the_root_allow_list_sends_the_backend_build_and_no_secrets() {
    let project = Project::locate().unwrap();
    let tree = Scratch::new("allow-list");
    tree.file(".dockerignore", &fs::read(project.path(".dockerignore")).unwrap(), 0o644);
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        ".cargo/config.toml",
        ".cargo/credentials.toml",
        ".env",
        ".env.production",
        "root.pem",
        ".git/config",
        "backend-api/Cargo.toml",
        "backend-api/Dockerfile",
        "backend-api/Dockerfile.prebuilt",
        "backend-api/build.rs",
        "backend-api/src/main.rs",
        "backend-api/migrations/V1__init.sql",
        "backend-api/.env",
        "backend-api/server.pem",
        "backend-api/target/debug/backend-api",
        "xtask/Cargo.toml",
        "xtask/src/lib.rs",
        "xtask/secrets/token",
        "xtask/keys/deploy.key",
        "tests/Cargo.toml",
        "tests/tls/ca.crt",
        "tests/client.p12",
        "tests/.env.local",
        "deploy/deploy.toml",
        "deploy/secrets/api_token",
        "database/Dockerfile",
        "web-frontend/Dockerfile",
        "target/release/backend-api",
        "target/release/backend-api.d",
        "target/release/deps/backend-api-0123abcd",
        "target/debug/backend-api",
        "target/cultivate/images/latest.json",
    ] {
        tree.text(path, path);
    }
    let expected = [
        ".cargo/config.toml",
        ".dockerignore",
        "Cargo.lock",
        "Cargo.toml",
        "backend-api/",
        "backend-api/Cargo.toml",
        "backend-api/Dockerfile",
        "backend-api/Dockerfile.prebuilt",
        "backend-api/build.rs",
        "backend-api/migrations/",
        "backend-api/migrations/V1__init.sql",
        "backend-api/src/",
        "backend-api/src/main.rs",
        "target/release/backend-api",
        "tests/",
        "tests/Cargo.toml",
        "tests/tls/",
        "xtask/",
        "xtask/Cargo.toml",
        "xtask/keys/",
        "xtask/src/",
        "xtask/src/lib.rs",
    ];
    for dockerfile in ["backend-api/Dockerfile", "backend-api/Dockerfile.prebuilt"] {
        let (bytes, _) = archive(tree.path(), dockerfile);
        assert_eq!(archived_paths(&bytes), expected, "{dockerfile}");
    }
}

#[test]
fn the_workspace_root_context_is_the_allow_list() {
    let project = Project::locate().unwrap();
    let paths = listed(&project.root, "backend-api/Dockerfile.prebuilt");
    let allowed_roots =
        ["Cargo.toml", "Cargo.lock", ".cargo/config.toml", ".dockerignore", "target/release/backend-api"];
    let allowed_trees = ["backend-api/", "xtask/", "tests/"];
    for path in &paths {
        let allowed = allowed_roots.contains(&path.as_str()) || allowed_trees.iter().any(|tree| path.starts_with(tree));
        assert!(allowed, "{path} is outside the allow-list");
        assert!(!is_secret_looking(path), "{path} looks like a secret");
        assert!(!path.split('/').any(|part| part == "target") || path == "target/release/backend-api", "{path}");
    }
    // Every workspace member's manifest, so `cargo build --locked` can load the workspace.
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(project.path("Cargo.toml")).unwrap()).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    let mut needed: BTreeSet<String> = members.iter().map(|m| format!("{}/Cargo.toml", m.as_str().unwrap())).collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "backend-api/Dockerfile", "backend-api/build.rs"].map(String::from));
    for dir in ["backend-api/src", "backend-api/migrations"] {
        for file in fs::read_dir(project.path(dir)).unwrap() {
            needed.insert(format!("{dir}/{}", file.unwrap().file_name().to_string_lossy()));
        }
    }
    if project.path("target/release/backend-api").is_file() {
        needed.insert("target/release/backend-api".to_string());
    }
    for path in needed {
        assert!(paths.contains(&path), "{path} is missing from the backend's context");
    }
}

// ---- any tree ----

/// Small trees: (path, content, executable) with paths from a few names, some of them
/// ones a `.dockerignore` would name.
fn small_tree() -> impl Strategy<Value = Vec<(String, Vec<u8>, bool)>> {
    let name = prop::sample::select(vec!["a", "b", "c.txt", "run.sh", ".env", "key.pem", "target", "secrets", "é"]);
    let path = prop::collection::vec(name, 1..4).prop_map(|parts| parts.join("/"));
    prop::collection::vec((path, prop::collection::vec(any::<u8>(), 0..64), any::<bool>()), 1..12).prop_map(|files| {
        // A path cannot be a file and a directory at once: the first one wins.
        let mut kept: Vec<(String, Vec<u8>, bool)> = Vec::new();
        for (path, content, executable) in files {
            let clashes = kept.iter().any(|(other, _, _)| {
                other == &path || other.starts_with(&format!("{path}/")) || path.starts_with(&format!("{other}/"))
            });
            if !clashes && path != "Dockerfile" {
                kept.push((path, content, executable));
            }
        }
        kept
    })
}

fn dockerignore() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "*.pem",
        "**/*.pem",
        "**/.env",
        "secrets",
        "**/target",
        "!a/target",
        "a/**",
        "!a/b",
        "*",
        "!a",
        "!c.txt",
        "b/*/c.txt",
        "é",
    ]);
    prop::collection::vec(line, 0..5).prop_map(|lines| lines.join("\n"))
}

fn build_tree(dir: &Path, files: &[(String, Vec<u8>, bool)], ignore: &str, modes: &[(u32, u32)]) {
    for (index, (path, content, executable)) in files.iter().enumerate() {
        let (plain, exec) = modes[index % modes.len()];
        let full = dir.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, content).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(if *executable { exec } else { plain })).unwrap();
    }
    fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    fs::write(dir.join(".dockerignore"), ignore).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    // The archive depends on the tree alone: not on the order files were created in,
    // their times, the umask they were created under, or where the tree is.
    #[test]
    fn any_tree_archives_to_the_same_bytes_however_it_was_made(
        (files, order) in small_tree().prop_flat_map(|files| {
            let order: Vec<usize> = (0..files.len()).collect();
            (Just(files), Just(order).prop_shuffle())
        }),
        ignore in dockerignore(),
        seconds in prop::collection::vec(0u64..4_000_000_000, 1..8),
        modes in prop::sample::select(vec![(0o644, 0o755), (0o664, 0o775), (0o600, 0o700), (0o640, 0o750)]),
    ) {
        let first = Scratch::new("prop-a");
        build_tree(first.path(), &files, &ignore, &[(0o644, 0o755)]);
        let second = Scratch::new("prop-b");
        let shuffled: Vec<_> = order.iter().map(|&index| files[index].clone()).collect();
        build_tree(second.path(), &shuffled, &ignore, &[modes]);
        let mut paths: Vec<PathBuf> = shuffled.iter().map(|(path, _, _)| second.path().join(path)).collect();
        paths.extend(paths.clone().iter().filter_map(|path| path.parent().map(Path::to_path_buf)));
        for (index, path) in paths.iter().enumerate() {
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds[index % seconds.len()]);
            File::open(path).unwrap().set_modified(when).unwrap();
        }

        let (bytes, summary) = archive(first.path(), "Dockerfile");
        let (again, again_summary) = archive(second.path(), "Dockerfile");
        prop_assert!(bytes == again, "archives differ for {:?} with {:?}", files, ignore);
        prop_assert_eq!(&summary, &again_summary);

        // Whatever is archived is what the rules let through (plus the two files
        // Docker always sends), and the archive lists it in walk order.
        let rules = DockerIgnore::parse(&ignore).unwrap();
        let archived = archived_paths(&bytes);
        for path in &archived {
            let path = path.trim_end_matches('/');
            prop_assert!(path == "Dockerfile" || path == ".dockerignore" || !rules.is_excluded(path), "{} archived", path);
        }
        let listed = listed(first.path(), "Dockerfile");
        prop_assert_eq!(&archived, &listed);
    }
}
