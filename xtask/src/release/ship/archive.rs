//! Rewrites this machine's `save` stream of one image into the archive every Docker
//! image store loads, leaving out the layers the target holds already.
//!
//! The archive is Docker 25's own `save` format: an OCI image layout (`oci-layout`,
//! `index.json`, content-addressed `blobs/sha256/…`) plus Docker's `manifest.json`.
//! Docker's classic store reads `manifest.json` and takes a layer missing from the
//! archive from its own store; its containerd store imports the OCI layout and skips
//! missing blobs it holds (both tried on Docker 20.10 and 28). The OCI manifest is
//! written here, so its digest is what the containerd store will report as the id.
//!
//! The input may be Docker's legacy format (`<v1 id>/layer.tar`, Docker 24 and older)
//! or the OCI one. A layer's diff_id is learned by hashing it; [`LayerNames`] keeps
//! what was learned, so a layer met again streams straight through (checked as it
//! goes) and only a layer never seen is held back until its digest is known.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where entries of the input wait while their digest is computed.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Entries up to this size are kept in memory until the end (configs, manifests,
    /// small layers).
    pub small: u64,
    /// A held-back layer larger than this waits in a file instead of memory.
    pub in_memory: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { small: 1 << 20, in_memory: 64 << 20 };
}

/// What the target will hold once the archive is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The image config's digest: the image id in Docker's classic store.
    pub config_digest: String,
    /// The OCI manifest's digest: the image id in Docker's containerd store.
    pub manifest_digest: String,
    /// diff_ids of the layers left out.
    pub left_out: BTreeSet<String>,
}

/// Save-stream layer paths and the diff_ids of their content, kept between runs.
/// Docker's legacy format names a layer by a v1 id derived from its chain, so a path
/// seen once always holds the same layer; every use is checked anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerNames {
    pub paths: BTreeMap<String, String>,
}

impl LayerNames {
    pub fn load(file: &Path) -> LayerNames {
        std::fs::read_to_string(file).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
    }

    pub fn save(&self, file: &Path) -> Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // A name of its own: hosts shipped to at once save from several threads.
        let partial = file.with_extension(format!("json.{}-{}.partial", std::process::id(), unique()));
        std::fs::write(&partial, serde_json::to_string(self)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, file).with_context(|| format!("writing {}", file.display()))
    }
}

/// One layer file of the input, once its digest is known.
#[derive(Clone, Debug)]
struct Blob {
    /// `sha256:…` of the bytes as stored (the blob's name in the archive).
    digest: String,
    /// `sha256:…` of the uncompressed tar.
    diff_id: String,
    size: u64,
    gzip: bool,
}

#[derive(Deserialize)]
struct SavedManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigRootFs {
    rootfs: DiffIds,
}

#[derive(Deserialize)]
struct DiffIds {
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
struct OciManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
struct OciIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct DockerManifest<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: [&'a str; 1],
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Reads the `save` stream of the single image `reference` from `input` and writes
/// the archive to `output`, without the layers whose diff_ids are in `skip`.
/// `names` is consulted and extended; `spool_dir` takes layers too big for memory
/// (by `limits`) while their digest is computed.
/// The most a save stream may hold after its end-of-archive block (the second block and
/// a record's padding come to 10 KiB).
const TRAILING_LIMIT: u64 = 1 << 20;

pub fn rewrite(
    input: impl Read,
    output: impl Write,
    reference: &str,
    skip: &BTreeSet<String>,
    names: &mut LayerNames,
    spool_dir: &Path,
    limits: Limits,
) -> Result<Written> {
    let mut archive = tar::Archive::new(input);
    let mut out = tar::Builder::new(output);
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut emitted: BTreeSet<String> = BTreeSet::new();
    let mut left_out = BTreeSet::new();

    for entry in archive.entries().context("reading the save stream")? {
        let mut entry = entry.context("reading the save stream")?;
        let path = entry.path().context("a save stream entry's path")?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            // Docker's legacy format links a layer saved twice to its first copy.
            if let Some(target) = entry.link_name().context("a save stream link")? {
                let resolved = normalize(&Path::new(&path).parent().unwrap_or(Path::new("")).join(target));
                links.insert(path, resolved);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.header().size().context("a save stream entry's size")?;
        if let Some(diff_id) = names.paths.get(&path).cloned() {
            // A layer met before: its name is known, so it streams (or is skipped)
            // without being held back; its content is still checked.
            let digest = stored_name(&path, &diff_id);
            let blob = Blob { gzip: digest != diff_id, digest, diff_id: diff_id.clone(), size };
            if skip.contains(&diff_id) || emitted.contains(&blob.digest) {
                io::copy(&mut entry, &mut io::sink()).with_context(|| format!("reading {path}"))?;
                if skip.contains(&diff_id) {
                    left_out.insert(diff_id);
                }
            } else {
                let mut checked = Checked { inner: &mut entry, hasher: Sha256::new() };
                let mut header = blob_header(size);
                out.append_data(&mut header, blob_path(&blob.digest), &mut checked)
                    .with_context(|| format!("sending layer {diff_id}"))?;
                let actual = crate::support::digest::finish(checked.hasher);
                if actual != blob.digest {
                    names.paths.remove(&path);
                    bail!(
                        "the save stream's {path} is not the layer {diff_id} it held before (sha256 {actual}); \
                         the record of layer names was reset, deploy again"
                    );
                }
                emitted.insert(blob.digest.clone());
            }
            blobs.insert(path, blob);
            continue;
        }
        if size <= limits.small || !may_be_layer(&path) {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).with_context(|| format!("reading {path} from the save stream"))?;
            small.insert(path, data);
            continue;
        }
        // A large file never seen: hold it until its digests are known.
        let (spool, blob) =
            Spool::take(&mut entry, size, spool_dir, limits.in_memory).with_context(|| format!("reading {path}"))?;
        names.paths.insert(path.clone(), blob.diff_id.clone());
        if skip.contains(&blob.diff_id) {
            left_out.insert(blob.diff_id.clone());
        } else if emitted.insert(blob.digest.clone()) {
            let mut header = blob_header(size);
            out.append_data(&mut header, blob_path(&blob.digest), spool.reader()?)
                .with_context(|| format!("sending layer {}", blob.diff_id))?;
        }
        spool.remove();
        blobs.insert(path, blob);
    }
    // Read on to the stream's end: the tar reader stops at the first end-of-archive
    // block, and a `save` still writing what follows (the second block, a record's
    // padding) dies of a broken pipe once this end is dropped. Bounded: nothing else
    // follows in a save stream.
    let trailing = io::copy(&mut archive.into_inner().take(TRAILING_LIMIT + 1), &mut io::sink())
        .context("reading the end of the save stream")?;
    if trailing > TRAILING_LIMIT {
        bail!("the save stream of {reference} goes on past the end of its archive: more than {TRAILING_LIMIT} bytes");
    }

    let manifest_bytes = small.get("manifest.json").context("the save stream has no manifest.json")?;
    let saved: Vec<SavedManifest> =
        serde_json::from_slice(manifest_bytes).context("cannot read the save stream's manifest.json")?;
    let [saved] = <[SavedManifest; 1]>::try_from(saved)
        .map_err(|all| anyhow::anyhow!("the save stream holds {} images, expected 1", all.len()))?;
    let config = small.get(&saved.config).with_context(|| format!("the save stream lacks {}", saved.config))?;
    let config_digest = crate::support::digest::sha256(config);
    let expected: ConfigRootFs = serde_json::from_slice(config).context("cannot read the image config")?;

    let mut layers = Vec::new();
    for (index, path) in saved.layers.iter().enumerate() {
        let path = links.get(path).unwrap_or(path);
        let blob = match blobs.get(path) {
            Some(blob) => blob.clone(),
            None => {
                let data = small.get(path).with_context(|| format!("the save stream lacks layer {path}"))?;
                let blob = small_blob(data)?;
                names.paths.insert(path.clone(), blob.diff_id.clone());
                if skip.contains(&blob.diff_id) {
                    left_out.insert(blob.diff_id.clone());
                } else if emitted.insert(blob.digest.clone()) {
                    let mut header = blob_header(blob.size);
                    out.append_data(&mut header, blob_path(&blob.digest), &data[..])
                        .with_context(|| format!("sending layer {}", blob.diff_id))?;
                }
                blob
            }
        };
        if expected.rootfs.diff_ids.get(index) != Some(&blob.diff_id) {
            bail!(
                "the save stream of {reference} is corrupt: layer {index} ({path}) is {}, the config says {}",
                blob.diff_id,
                expected.rootfs.diff_ids.get(index).map(String::as_str).unwrap_or("nothing")
            );
        }
        layers.push(blob);
    }
    if layers.len() != expected.rootfs.diff_ids.len() {
        bail!(
            "the save stream of {reference} has {} layers, its config {}",
            layers.len(),
            expected.rootfs.diff_ids.len()
        );
    }

    let manifest = OciManifest {
        schema_version: 2,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json",
            digest: config_digest.clone(),
            size: config.len() as u64,
            annotations: None,
        },
        layers: layers
            .iter()
            .map(|blob| Descriptor {
                media_type: if blob.gzip {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    "application/vnd.oci.image.layer.v1.tar"
                },
                digest: blob.digest.clone(),
                size: blob.size,
                annotations: None,
            })
            .collect(),
    };
    let manifest_json = serde_json::to_vec(&manifest)?;
    let manifest_digest = crate::support::digest::sha256(&manifest_json);
    let tag = reference.rsplit_once(':').map(|(_, tag)| tag).filter(|tag| !tag.contains('/')).unwrap_or("latest");
    let index = OciIndex {
        schema_version: 2,
        media_type: "application/vnd.oci.image.index.v1+json",
        manifests: vec![Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json",
            digest: manifest_digest.clone(),
            size: manifest_json.len() as u64,
            annotations: Some(BTreeMap::from([
                ("io.containerd.image.name", crate::model::image::full_name(reference)),
                ("org.opencontainers.image.ref.name", tag.to_string()),
            ])),
        }],
    };
    let docker_manifest = [DockerManifest {
        config: blob_path(&config_digest),
        repo_tags: [reference],
        layers: layers.iter().map(|blob| blob_path(&blob.digest)).collect(),
    }];
    let files: [(String, Vec<u8>); 5] = [
        (blob_path(&config_digest), config.clone()),
        (blob_path(&manifest_digest), manifest_json),
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".into(), serde_json::to_vec(&index)?),
        ("manifest.json".into(), serde_json::to_vec(&docker_manifest)?),
    ];
    for (path, data) in files {
        let mut header = blob_header(data.len() as u64);
        out.append_data(&mut header, &path, &data[..]).with_context(|| format!("sending {path}"))?;
    }
    out.into_inner().context("finishing the archive")?.flush().context("flushing the archive")?;
    Ok(Written { config_digest, manifest_digest, left_out })
}

/// Layers are `<v1 id>/layer.tar` (legacy) or blobs (OCI); the rest is metadata,
/// always kept for the end.
fn may_be_layer(path: &str) -> bool {
    path.ends_with("/layer.tar") || path.starts_with("blobs/")
}

/// The name a layer gets in the archive: an OCI save's own blob name, else the
/// diff_id (legacy layers are uncompressed tars).
fn stored_name(path: &str, diff_id: &str) -> String {
    match path.strip_prefix("blobs/sha256/") {
        Some(hex) => format!("sha256:{hex}"),
        None => diff_id.to_string(),
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn blob_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn small_blob(data: &[u8]) -> Result<Blob> {
    let digest = crate::support::digest::sha256(data);
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let diff_id = if gzip {
        let mut hasher = Sha256::new();
        io::copy(&mut flate2::read::GzDecoder::new(data), &mut HashWriter(&mut hasher))
            .context("decompressing a layer")?;
        crate::support::digest::finish(hasher)
    } else {
        digest.clone()
    };
    Ok(Blob { digest, diff_id, size: data.len() as u64, gzip })
}

/// A layer held back until its digest is known: in memory, or in a file when large.
enum Spool {
    Memory(Vec<u8>),
    File(PathBuf),
}

impl Spool {
    fn take(entry: &mut impl Read, size: u64, dir: &Path, in_memory: u64) -> Result<(Spool, Blob)> {
        let mut raw = Sha256::new();
        let spool = if size <= in_memory {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data)?;
            raw.update(&data);
            Spool::Memory(data)
        } else {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("layer-{}-{}", std::process::id(), unique()));
            let mut file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let mut checked = Checked { inner: entry, hasher: Sha256::new() };
            io::copy(&mut checked, &mut file)
                .and_then(|_| file.flush())
                .with_context(|| format!("writing {}", path.display()))?;
            raw = checked.hasher;
            Spool::File(path)
        };
        let digest = crate::support::digest::finish(raw);
        let mut head = [0u8; 2];
        let gzip = spool.reader()?.read(&mut head)? == 2 && head == [0x1f, 0x8b];
        let diff_id = if gzip {
            let mut hasher = Sha256::new();
            io::copy(&mut flate2::read::GzDecoder::new(spool.reader()?), &mut HashWriter(&mut hasher))
                .context("decompressing a layer")?;
            crate::support::digest::finish(hasher)
        } else {
            digest.clone()
        };
        Ok((spool, Blob { digest, diff_id, size, gzip }))
    }

    fn reader(&self) -> Result<Box<dyn Read + '_>> {
        Ok(match self {
            Spool::Memory(data) => Box::new(&data[..]),
            Spool::File(path) => {
                Box::new(BufReader::new(File::open(path).with_context(|| format!("reading {}", path.display()))?))
            }
        })
    }

    fn remove(self) {
        if let Spool::File(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `a/../b/layer.tar` → `b/layer.tar`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Passes reads through, hashing them.
struct Checked<'a, R> {
    inner: &'a mut R,
    hasher: Sha256,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
