//! Shipping images to a target without a registry: `save` here → gzip → the session's
//! stream → `gunzip | load` there, with no temporary file on either side, then a check
//! that the target holds the very image built here (Property 20).
//!
//! Only what the target lacks travels:
//! - an image the target already holds (same id and layers) is not sent at all; it is
//!   only tagged when the tag is missing;
//! - with a classic image store (overlay2 and friends), layer files the target already
//!   holds (same chain of diff_ids from the base up) are left out of the `save` stream:
//!   such stores load a tarball whose present layers are missing (HOST-SETUP §6).
//!   containerd-backed stores (Finch, Docker's containerd store) get whole images.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::host::runtime::{ImageDetails, Runtime, RuntimeKind};
use crate::host::session::{Effect, Session};
use crate::model::image::Image;
use crate::support::command::Cmd;

/// The images a target holds, and whether its store takes partial `save` streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub images: Vec<ImageDetails>,
    pub classic_store: bool,
}

/// Prints the target's images as one `inspect` JSON array, then `==store` and the
/// storage driver with its status.
pub fn inventory_cmd(runtime: RuntimeKind) -> Cmd {
    let script = "ids=$(\"$1\" image ls -q --no-trunc 2>/dev/null | sort -u); \
                  if [ -z \"$ids\" ]; then echo '[]'; else \"$1\" image inspect $ids; fi; \
                  echo '==store'; \"$1\" info --format '{{.Driver}} {{json .DriverStatus}}' 2>/dev/null; exit 0";
    Cmd::new("sh").args(["-c", script, "inventory", runtime.program()])
}

impl Inventory {
    pub fn parse(text: &str, runtime: RuntimeKind) -> Result<Inventory> {
        let (images, store) = text.split_once("==store").unwrap_or((text, ""));
        let images: Vec<ImageDetails> =
            serde_json::from_str(images.trim()).context("cannot read the target's `image inspect` output")?;
        Ok(Inventory { images, classic_store: runtime == RuntimeKind::Docker && is_classic_store(store) })
    }

    pub fn read(session: &Session) -> Result<Inventory> {
        let text = session.run(Effect::Read, &inventory_cmd(session.runtime))?;
        Inventory::parse(&text, session.runtime)
    }

    fn holding(&self, id: &str, layers: &[String]) -> Option<&ImageDetails> {
        self.images.iter().find(|image| image.id == id && image.rootfs.layers == layers)
    }

    /// Whether some image here has exactly `chain` as its first layers.
    fn has_chain(&self, chain: &[String]) -> bool {
        self.images.iter().any(|image| image.rootfs.layers.starts_with(chain))
    }
}

/// Docker's classic stores name a graph driver; the containerd snapshotter says so in
/// the driver status.
pub fn is_classic_store(info: &str) -> bool {
    let info = info.trim();
    let driver = info.split_whitespace().next().unwrap_or("");
    !driver.is_empty() && !info.contains("io.containerd.snapshotter") && driver != "overlayfs" && driver != "stargz"
}

/// What to do with one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The target holds it; `tag` when its reference is missing there.
    Present { tag: bool },
    /// Send it, leaving out the layers whose diff_ids are in `skip`.
    Send { skip: BTreeSet<String> },
}

/// The plan for `image` against what the target holds.
pub fn plan(image: &Image, inventory: &Inventory) -> Plan {
    if let Some(held) = inventory.holding(&image.id, &image.layers) {
        let tagged = held.repo_tags.as_ref().is_some_and(|tags| tags.contains(&image.reference));
        return Plan::Present { tag: !tagged };
    }
    if !inventory.classic_store {
        return Plan::Send { skip: BTreeSet::new() };
    }
    // A layer can be left out when the whole chain up to it is there; a diff_id that
    // also sits where the chain is not (rare: the same layer twice) must travel.
    let present: Vec<bool> = (0..image.layers.len()).map(|i| inventory.has_chain(&image.layers[..=i])).collect();
    let skip = image
        .layers
        .iter()
        .filter(|layer| image.layers.iter().zip(&present).filter(|(l, _)| l == layer).all(|(_, p)| *p))
        .cloned()
        .collect();
    Plan::Send { skip }
}

/// Carries out `plan` for `image`: tags it when the target holds it under another
/// name, or sends it (learning the save stream's layer files first when layers are
/// left out). Either way the target's image is verified.
pub fn deliver(session: &Session, local: &Runtime, image: &Image, plan: &Plan, cache_dir: &Path) -> Result<Shipped> {
    match plan {
        Plan::Present { tag } => {
            if *tag {
                session.run(Effect::Change, &tag_cmd(session.runtime, &image.id, &image.reference))?;
            }
            verify(session, image, None)?;
            Ok(Shipped::default())
        }
        Plan::Send { skip } => {
            let layer_paths = if skip.is_empty() { BTreeMap::new() } else { layer_paths(local, image, cache_dir)? };
            send(session, local, image, skip, &layer_paths)
        }
    }
}

/// The bytes a plan will send, roughly: the image's size less the skipped layers'
/// share, for the progress bar and the disk check.
pub fn estimated_bytes(image: &Image, plan: &Plan) -> u64 {
    match plan {
        Plan::Present { .. } => 0,
        Plan::Send { skip } if image.layers.is_empty() => image.size_bytes.saturating_sub(skip.len() as u64),
        Plan::Send { skip } => {
            let kept = image.layers.len() - image.layers.iter().filter(|l| skip.contains(*l)).count();
            image.size_bytes * kept as u64 / image.layers.len() as u64
        }
    }
}

/// `gunzip | load` on the target.
pub fn load_cmd(runtime: RuntimeKind) -> Cmd {
    Cmd::new("sh").args(["-c", "gunzip -c | \"$1\" load", "load", runtime.program()])
}

pub fn tag_cmd(runtime: RuntimeKind, id: &str, reference: &str) -> Cmd {
    Cmd::new(runtime.program()).args(["tag", id, reference])
}

/// What one transfer did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shipped {
    /// Bytes read from `save` (uncompressed).
    pub saved_bytes: u64,
    /// Bytes that went over the wire (compressed).
    pub sent_bytes: u64,
    pub skipped_layers: usize,
    pub seconds: f64,
}

/// Streams `image` to the target with the layers in `skip` left out, then verifies it.
/// `layer_paths` maps the save stream's layer file paths to diff_ids (needed only to
/// skip layers in Docker's legacy `save` format).
pub fn send(
    session: &Session,
    local: &Runtime,
    image: &Image,
    skip: &BTreeSet<String>,
    layer_paths: &BTreeMap<String, String>,
) -> Result<Shipped> {
    let started = Instant::now();
    let save_cmd = local.save_cmd(&image.reference);
    if session.dry_run {
        println!(
            "[{}] would run: {save_cmd} | gzip | {}",
            session.name,
            session.transport.carrier(&load_cmd(session.runtime))
        );
        return Ok(Shipped::default());
    }
    let dropped: BTreeSet<String> = layer_paths
        .iter()
        .filter(|(_, diff_id)| skip.contains(*diff_id))
        .map(|(path, _)| path.clone())
        .chain(skip.iter().map(|diff_id| format!("blobs/sha256/{}", diff_id.trim_start_matches("sha256:"))))
        .collect();

    let bar = progress_bar(&image.service, estimated_bytes(image, &Plan::Send { skip: skip.clone() }));
    let saved = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut save = save_cmd.spawn_piped(false)?;
    let save_out = save.stdout.take().context("save stdout")?;
    let mut save_err = save.stderr.take().context("save stderr")?;
    let (mut reader, writer) = std::io::pipe().context("creating a pipe")?;

    let (filtered, remote, save_errors) = std::thread::scope(|scope| {
        let counter = Arc::clone(&saved);
        let wire = Arc::clone(&sent);
        let bar_ref = &bar;
        let drop_ref = &dropped;
        let filter = scope.spawn(move || {
            let input = Counting { inner: save_out, count: counter, bar: Some(bar_ref) };
            let output = GzEncoder::new(Counting { inner: writer, count: wire, bar: None }, Compression::fast());
            filter_save_stream(input, output, drop_ref)
        });
        let errors = scope.spawn(move || {
            let mut text = String::new();
            let _ = save_err.read_to_string(&mut text);
            text
        });
        let mut output = Vec::new();
        let remote = session.stream(&load_cmd(session.runtime), Some(&mut reader), &mut output).map(|_| output);
        drop(reader);
        (filter.join(), remote, errors.join())
    });
    bar.finish_and_clear();
    let status = save.wait().with_context(|| format!("waiting for `{save_cmd}`"))?;
    let save_errors = save_errors.unwrap_or_default();
    let saved_bytes = saved.load(Ordering::Relaxed);
    let sent_bytes = sent.load(Ordering::Relaxed);

    // The error of whichever side failed: the target (then this machine's save, which
    // dies of a broken pipe, is only a note), this machine's save, or the filter.
    let save_note = || {
        if status.success() { String::new() } else { format!("; `{save_cmd}` here: {status} {}", save_errors.trim()) }
    };
    let output = match remote {
        Ok(output) => output,
        Err(err) => {
            return Err(err.context(format!(
                "loading {} on {} failed after {sent_bytes} bytes were sent{}",
                image.reference,
                session.transport,
                save_note()
            )));
        }
    };
    if !status.success() {
        bail!("`{save_cmd}` failed on this machine ({status}): {}", save_errors.trim());
    }
    let loaded = match filtered {
        Ok(Ok(config_digest)) => config_digest,
        Ok(Err(err)) => return Err(err.context(format!("streaming {} to {}", image.reference, session.transport))),
        Err(_) => bail!("the thread streaming {} panicked", image.reference),
    };
    session.log.debug(String::from_utf8_lossy(&output));
    verify(session, image, loaded.as_deref())?;
    Ok(Shipped { saved_bytes, sent_bytes, skipped_layers: skip.len(), seconds: started.elapsed().as_secs_f64() })
}

/// Property 20: the target's image under `image.reference` has the layers built here
/// and, where the store's ids are config digests, the same config digest.
pub fn verify(session: &Session, image: &Image, config_digest: Option<&str>) -> Result<()> {
    let cmd = session.runtime_cmd(["image", "inspect", "--format", "{{json .}}", image.reference.as_str()]);
    let (found, stdout, stderr) = session.try_run(Effect::Read, &cmd)?;
    if session.dry_run {
        return Ok(());
    }
    if !found {
        bail!(
            "{} is not on {} after loading it ({}); nothing was started. Deploy again: the transfer may have \
             been cut.",
            image.reference,
            session.transport,
            stderr.trim()
        );
    }
    let held: ImageDetails =
        serde_json::from_str(stdout.trim()).with_context(|| format!("cannot read `{cmd}` on {}", session.transport))?;
    let expected_id = config_digest.unwrap_or(&image.id);
    let ids_comparable = session.runtime == RuntimeKind::Finch || is_classic_store_id(&held.id, expected_id);
    if held.rootfs.layers != image.layers || (ids_comparable && held.id != expected_id) {
        bail!(
            "{} on {} is not the image built here (Property 20): id {} with {} layers there, id {} with {} \
             layers here. Nothing was started; the transfer was corrupted or the target's store changed the \
             image. Deploy again.",
            image.reference,
            session.transport,
            held.id,
            held.rootfs.layers.len(),
            expected_id,
            image.layers.len()
        );
    }
    session.log.debug(format!(
        "verified {} on {}: {} layers, id {}",
        image.reference,
        session.transport,
        image.layers.len(),
        held.id
    ));
    Ok(())
}

/// Both ids are sha256 digests; with Docker's containerd store the target's id is a
/// manifest digest and cannot match a config digest, so only layers are compared.
fn is_classic_store_id(held: &str, expected: &str) -> bool {
    held.starts_with("sha256:") && expected.starts_with("sha256:")
}

/// Copies a `save` tar stream to `output` without the entries in `drop`, returning the
/// image's config digest when the stream names it (manifest.json).
fn filter_save_stream(
    input: impl Read,
    output: GzEncoder<impl Write>,
    drop: &BTreeSet<String>,
) -> Result<Option<String>> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    for entry in archive.entries().context("reading the save stream")? {
        let mut entry = entry.context("reading the save stream")?;
        let path = entry.path().context("a save stream entry's path")?.to_string_lossy().into_owned();
        if drop.contains(&path) {
            // Read past it: the layer is on the target already.
            std::io::copy(&mut entry, &mut std::io::sink()).context("reading the save stream")?;
            continue;
        }
        let header = entry.header().clone();
        if entry.header().entry_type().is_file() && header.size().unwrap_or(u64::MAX) < 1 << 22 {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).with_context(|| format!("reading {path} from the save stream"))?;
            digests.insert(path.clone(), crate::support::digest::sha256(&data));
            if path == "manifest.json" {
                manifest = Some(data.clone());
            }
            builder.append(&header, &data[..]).context("writing to the target")?;
        } else {
            builder.append(&header, &mut entry).context("writing to the target")?;
        }
    }
    let output = builder.into_inner().context("finishing the stream to the target")?;
    output.finish().context("finishing the stream to the target")?.flush().context("flushing the stream")?;
    Ok(manifest.and_then(|m| config_digest(&m, &digests)))
}

#[derive(Deserialize)]
struct SavedManifest {
    #[serde(rename = "Config")]
    config: String,
}

/// The config file's digest, by the path manifest.json gives for it.
fn config_digest(manifest: &[u8], digests: &BTreeMap<String, String>) -> Option<String> {
    let entries: Vec<SavedManifest> = serde_json::from_slice(manifest).ok()?;
    let [entry] = entries.as_slice() else { return None };
    digests.get(&entry.config).cloned()
}

/// For Docker's legacy `save` format (`<v1 id>/layer.tar`), which layer file holds
/// which diff_id: one pass over the stream hashing each layer, cached per image id
/// under `cache_dir`. (The OCI format names layers by digest: nothing to learn.)
pub fn layer_paths(local: &Runtime, image: &Image, cache_dir: &Path) -> Result<BTreeMap<String, String>> {
    let cache = cache_dir.join(format!("{}.json", image.id.trim_start_matches("sha256:")));
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Ok(map) = serde_json::from_str(&text)
    {
        return Ok(map);
    }
    let save_cmd = local.save_cmd(&image.reference);
    let mut save = save_cmd.spawn_piped(false)?;
    let stdout = save.stdout.take().context("save stdout")?;
    let mut archive = tar::Archive::new(stdout);
    let mut map = BTreeMap::new();
    let mut links = BTreeMap::new();
    for entry in archive.entries().context("reading the save stream")? {
        let mut entry = entry.context("reading the save stream")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if !path.ends_with("/layer.tar") {
            std::io::copy(&mut entry, &mut std::io::sink())?;
            continue;
        }
        if entry.header().entry_type().is_symlink() {
            // Docker links a layer saved twice to its first copy.
            if let Some(target) = entry.link_name()? {
                let resolved = normalize(&Path::new(&path).parent().unwrap_or(Path::new("")).join(target));
                links.insert(path, resolved);
            }
            continue;
        }
        let mut hasher = Sha256::new();
        std::io::copy(&mut entry, &mut HashWriter(&mut hasher)).context("hashing a layer")?;
        map.insert(path, crate::support::digest::finish(hasher));
    }
    let output = save.wait_with_output().context("waiting for save")?;
    if !output.status.success() {
        bail!("`{save_cmd}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    for (link, target) in links {
        if let Some(diff_id) = map.get(&target).cloned() {
            map.insert(link, diff_id);
        }
    }
    std::fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    std::fs::write(&cache, serde_json::to_string(&map)?).with_context(|| format!("writing {}", cache.display()))?;
    Ok(map)
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

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts bytes passing through (and moves the progress bar).
struct Counting<'a, T> {
    inner: T,
    count: Arc<AtomicU64>,
    bar: Option<&'a indicatif::ProgressBar>,
}

impl<T: Read> Read for Counting<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(bar) = self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

impl<T: Write> Write for Counting<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn progress_bar(label: &str, total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total.max(1));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// Where `layer_paths` caches its maps.
pub fn layer_cache_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("images").join("layer-paths")
}

#[cfg(test)]
mod tests;
