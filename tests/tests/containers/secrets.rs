//! Property 27: secret exclusion from images. Secret-looking files are planted in every
//! build context (`.env`, `.env.*`, `secrets/`, keys and certificates), the images are
//! rebuilt the way `cargo xtask images` builds them, and every byte of every layer and
//! config of the saved images is searched for the planted values.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cultivate_tests::{manifest, project, require_engine};
use memchr::memmem::Finder;
use xtask::images::Service;
use xtask::tasks::images::ImagesArgs;

/// A file planted for the test, removed again when the test ends.
struct Planted {
    path: PathBuf,
    created_dir: Option<PathBuf>,
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = &self.created_dir {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Writes `content` to `path` unless a file is there already (a developer's real
/// `.env`): then its content is searched for as well, untouched.
fn plant(path: &Path, content: &str, needles: &mut Vec<String>) -> Option<Planted> {
    if let Ok(existing) = fs::read_to_string(path) {
        needles.extend(
            existing
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| v.len() >= 8),
        );
        return None;
    }
    let dir = path.parent().unwrap();
    let created_dir = (!dir.exists()).then(|| dir.to_path_buf());
    fs::create_dir_all(dir).unwrap();
    fs::write(path, content).unwrap();
    Some(Planted { path: path.to_path_buf(), created_dir })
}

#[test]
fn property_27_no_secret_from_env_or_secrets_files_in_any_layer() {
    require_engine();
    let manifest = manifest();
    let project = project();
    let run = format!("{}-{}", std::process::id(), xtask::support::log::now_rfc3339().replace([':', '-', '+'], ""));

    let mut needles = Vec::new();
    let mut planted = Vec::new();
    for context in [".", "database", "web-frontend", "backend-api"] {
        let dir = project.path(context);
        for (file, kind) in [
            (".env", "env"),
            (".env.production", "envprod"),
            ("secrets/api_token", "secretfile"),
            ("certs/privkey.pem", "pem"),
            ("server.key", "key"),
        ] {
            let value = format!("CANARY{kind}{}{run}", context.replace(['.', '-'], ""));
            let content = if file.starts_with(".env") { format!("API_TOKEN={value}\n") } else { format!("{value}\n") };
            needles.push(value);
            planted.extend(plant(&dir.join(file), &content, &mut needles));
        }
    }
    assert!(planted.len() >= 4, "could not plant test secrets");

    // Rebuild under the same version so the tags under test stay where they are.
    let args = ImagesArgs { version: Some(manifest.version.clone()), ..ImagesArgs::default() };
    let rebuilt = xtask::tasks::images::run(&project, &args).expect("rebuilding the images with secrets planted");
    drop(planted);
    // Files outside every build context change no layer: each image comes back from the
    // cache identical to the one under test (this is also `images` reusing its cache).
    for record in &rebuilt.images {
        let before = manifest.image(record.service).unwrap();
        assert_eq!(
            record.id, before.id,
            "{}: rebuilding with secret files planted changed the image. Either a planted file reached the build \
             context, or the images under test are older than the source (run `cargo xtask images`)",
            record.reference
        );
    }

    let references: Vec<String> = Service::ALL.iter().map(|s| rebuilt.image(*s).unwrap().reference.clone()).collect();
    let finders: Vec<Finder> = needles.iter().map(|n| Finder::new(n.as_bytes()).into_owned()).collect();
    let mut save = std::process::Command::new("docker")
        .arg("save")
        .args(&references)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker save");
    let mut archive = tar::Archive::new(save.stdout.take().unwrap());
    let mut scanned_bytes = 0u64;
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        scan_blob(&name, bytes, &finders, &needles, &mut found, &mut scanned_bytes);
    }
    assert!(save.wait().unwrap().success(), "docker save failed");
    assert!(scanned_bytes > 10_000_000, "scanned only {scanned_bytes} bytes: the save stream was not read");
    assert!(found.is_empty(), "secrets found in images {references:?}:\n{}", found.join("\n"));
}

/// Searches one blob of the save stream; a layer (tar, maybe gzipped) is opened and
/// each file in it is searched and its path checked.
fn scan_blob(
    name: &str,
    bytes: Vec<u8>,
    finders: &[Finder],
    needles: &[String],
    found: &mut Vec<String>,
    scanned: &mut u64,
) {
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap();
        plain
    } else {
        bytes
    };
    let is_tar = bytes.len() > 262 && &bytes[257..262] == b"ustar";
    if !is_tar {
        search(name, &bytes, finders, needles, found);
        *scanned += bytes.len() as u64;
        return;
    }
    let mut layer = tar::Archive::new(&bytes[..]);
    for file in layer.entries().unwrap() {
        let mut file = file.unwrap();
        let path = file.path().unwrap().display().to_string();
        let base = path.rsplit('/').next().unwrap_or("");
        let app_path = path.starts_with("usr/share/cultivate")
            || path.starts_with("etc/cultivate")
            || path.starts_with("usr/local/");
        if base == ".env"
            || base.starts_with(".env.")
            || (app_path && (path.contains("secrets/") || base.ends_with(".key")))
        {
            found.push(format!("{name}: file {path}"));
        }
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        *scanned += content.len() as u64;
        search(&format!("{name}:{path}"), &content, finders, needles, found);
    }
}

fn search(location: &str, bytes: &[u8], finders: &[Finder], needles: &[String], found: &mut Vec<String>) {
    for (finder, needle) in finders.iter().zip(needles) {
        if finder.find(bytes).is_some() {
            found.push(format!("{location}: contains {needle}"));
        }
    }
}
