//! Shipping images to a target without a registry: `save` here → rewritten into an
//! archive every Docker store loads ([`archive`]) → gzip → the session's stream →
//! `gunzip | load` there, with no temporary file on the target, then a check that
//! the target holds the very image built here (Property 20).
//!
//! Only what the target lacks travels, on every Docker store:
//! - an image the target already holds (same layers and config) is not sent at all;
//!   it is only tagged when the tag is missing;
//! - a layer whose whole chain (same diff_ids from the base up) the target holds is
//!   left out of the archive, and so is one an earlier image of the same deploy
//!   brings: each layer crosses the wire at most once per deploy;
//! - Podman's store does the same (its loader reuses a layer it holds by diff_id);
//! - Finch gets whole images: its loader needs every blob.

pub mod archive;
pub mod shared;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::host::runtime::{ImageDetails, RootFs, Runtime, RuntimeKind};
use crate::host::session::{Effect, Session};
use crate::model::image::{Image, names_same_image};
use crate::support::command::Cmd;
use archive::{LayerNames, Limits, Written};

/// How a target's image store takes an archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageStore {
    /// Docker's graph drivers (overlay2 and friends): ids are config digests.
    Classic,
    /// Docker's containerd snapshotter (the default from Docker 29): ids are manifest
    /// digests.
    Containerd,
    /// Podman's containers/storage: ids are config digests; a layer the archive
    /// leaves out is taken from the store by its diff_id.
    Podman,
    /// Finch: whole images only.
    #[default]
    WholeImages,
}

impl ImageStore {
    /// Whether an archive may leave out layers the target holds.
    pub fn takes_partial_archives(self) -> bool {
        self != ImageStore::WholeImages
    }
}

/// The images a target holds, and its image store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub images: Vec<ImageDetails>,
    pub store: ImageStore,
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
        let store = match runtime {
            RuntimeKind::Docker if is_classic_store(store) => ImageStore::Classic,
            RuntimeKind::Docker => ImageStore::Containerd,
            RuntimeKind::Podman => ImageStore::Podman,
            RuntimeKind::Finch => ImageStore::WholeImages,
        };
        Ok(Inventory { images, store })
    }

    pub fn read(session: &Session) -> Result<Inventory> {
        let text = session.run(Effect::Read, &inventory_cmd(session.runtime))?;
        Inventory::parse(&text, session.runtime)
    }

    fn holding(&self, image: &Image) -> Option<&ImageDetails> {
        self.images.iter().find(|held| is_same_image(held, image))
    }

    /// Whether some image here has exactly `chain` as its first layers.
    fn has_chain(&self, chain: &[String]) -> bool {
        self.images.iter().any(|image| image.rootfs.layers.starts_with(chain))
    }
}

/// Property 20 in every store: the same layers, and the same config (by id where the
/// ids are config digests, by the config's fields where the store names images by
/// manifest digest).
pub fn is_same_image(held: &ImageDetails, image: &Image) -> bool {
    held.rootfs.layers == image.layers
        && (held.id == image.id
            || (!image.config_fingerprint.is_empty() && held.config_fingerprint() == image.config_fingerprint))
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
    /// The target holds it; `tag_id` is the target's id for it when its reference is
    /// missing there (ids differ between stores, so the target's own).
    Present { tag_id: Option<String> },
    /// Send it, leaving out the layers whose diff_ids are in `skip`.
    Send { skip: BTreeSet<String> },
}

/// The plan for `image` against what the target holds.
pub fn plan(image: &Image, inventory: &Inventory) -> Plan {
    if let Some(held) = inventory.holding(image) {
        let tagged = held.repo_tags.iter().flatten().any(|tag| names_same_image(tag, &image.reference));
        return Plan::Present { tag_id: (!tagged).then(|| held.id.clone()) };
    }
    if !inventory.store.takes_partial_archives() {
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

/// The plans for `images`, shipped in this order: each image's layers count as held
/// for the images after it, so a layer they share crosses the wire once.
pub fn plan_all(images: &[Image], inventory: &Inventory) -> Vec<Plan> {
    let mut expected = inventory.clone();
    images
        .iter()
        .map(|image| {
            let plan = plan(image, &expected);
            // Its layers only: it is not on the target yet, so never "held" under an id.
            expected
                .images
                .push(ImageDetails { rootfs: RootFs { layers: image.layers.clone() }, ..ImageDetails::default() });
            plan
        })
        .collect()
}

/// Carries out `plan` for `image`: tags it when the target holds it under another
/// name, or sends it (the archive made once for several hosts, given `archives`).
/// Either way the target's image is verified.
pub fn deliver(
    session: &Session,
    local: &Runtime,
    image: &Image,
    plan: &Plan,
    state_dir: &Path,
    archives: Option<&shared::Archives>,
) -> Result<Shipped> {
    let send = |skip: &BTreeSet<String>| match archives {
        Some(archives) if !session.dry_run => archives.send(session, local, image, skip, state_dir),
        _ => send(session, local, image, skip, state_dir),
    };
    match plan {
        Plan::Present { tag_id } => {
            if let Some(id) = tag_id {
                session.run(Effect::Change, &tag_cmd(session.runtime, id, &image.reference))?;
            }
            verify(session, image, None)?;
            Ok(Shipped::default())
        }
        Plan::Send { skip } => match send(skip) {
            // A store that lacks a left-out layer's content after all (e.g. it holds
            // the layer only as an unpacked snapshot) refuses the load: send it whole.
            Err(err) if !skip.is_empty() && format!("{err:#}").contains("not found") => {
                session.log.warn(format!(
                    "{}: {} refused the archive without its {} held layers ({}); sending the whole image",
                    image.service,
                    session.name,
                    skip.len(),
                    format!("{err:#}").lines().next().unwrap_or("")
                ));
                send(&BTreeSet::new())
            }
            other => other,
        },
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
pub fn send(
    session: &Session,
    local: &Runtime,
    image: &Image,
    skip: &BTreeSet<String>,
    state_dir: &Path,
) -> Result<Shipped> {
    let started = Instant::now();
    let save_cmd = local.save_cmd(&image.reference);
    if session.dry_run {
        println!(
            "[{}] would run: {save_cmd} | (archive without {} held layers) | gzip | {}",
            session.name,
            skip.len(),
            session.transport.carrier(&load_cmd(session.runtime))
        );
        return Ok(Shipped::default());
    }
    let names_file = layer_names_file(state_dir);
    let spool_dir = state_dir.join("images").join("spool");
    let mut names = LayerNames::load(&names_file);

    // Several hosts at once each have one progress line already (their log's).
    let bar = if session.log.is_one_of_several() {
        indicatif::ProgressBar::hidden()
    } else {
        progress_bar(&image.service, image.size_bytes.max(1))
    };
    let saved = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut save = save_cmd.spawn_piped(false)?;
    let save_out = save.stdout.take().context("save stdout")?;
    let mut save_err = save.stderr.take().context("save stderr")?;
    let (mut reader, writer) = std::io::pipe().context("creating a pipe")?;

    let (rewritten, remote, save_errors) = std::thread::scope(|scope| {
        let counter = Arc::clone(&saved);
        let wire = Arc::clone(&sent);
        let bar_ref = &bar;
        let names_ref = &mut names;
        let spool_ref = &spool_dir;
        let rewrite = scope.spawn(move || {
            let input = Counting { inner: save_out, count: counter, bar: Some(bar_ref) };
            let mut output = GzEncoder::new(Counting { inner: writer, count: wire, bar: None }, Compression::fast());
            let written =
                archive::rewrite(input, &mut output, &image.reference, skip, names_ref, spool_ref, Limits::DEFAULT)?;
            output.finish().context("finishing the stream to the target")?.flush().context("flushing the stream")?;
            Ok::<Written, anyhow::Error>(written)
        });
        let errors = scope.spawn(move || {
            let mut text = String::new();
            let _ = save_err.read_to_string(&mut text);
            text
        });
        let mut output = Vec::new();
        let remote = session.stream(&load_cmd(session.runtime), Some(&mut reader), &mut output).map(|_| output);
        drop(reader);
        (rewrite.join(), remote, errors.join())
    });
    bar.finish_and_clear();
    // What was learned about layer names holds whatever happened to the transfer.
    if let Err(err) = names.save(&names_file) {
        session.log.warn(format!("could not keep the layer names: {err:#}"));
    }
    let status = save.wait().with_context(|| format!("waiting for `{save_cmd}`"))?;
    let save_errors = save_errors.unwrap_or_default();
    let saved_bytes = saved.load(Ordering::Relaxed);
    let sent_bytes = sent.load(Ordering::Relaxed);

    // The error of whichever side failed: the target (then this machine's save, which
    // dies of a broken pipe, is only a note), this machine's save, or the rewrite.
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
    let written = match rewritten {
        Ok(Ok(written)) => written,
        Ok(Err(err)) => return Err(err.context(format!("streaming {} to {}", image.reference, session.transport))),
        Err(_) => bail!("the thread streaming {} panicked", image.reference),
    };
    session.log.debug(String::from_utf8_lossy(&output));
    verify(session, image, Some(&written))?;
    Ok(Shipped {
        saved_bytes,
        sent_bytes,
        skipped_layers: written.left_out.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Property 20: the target's image under `image.reference` has the layers and config
/// built here; after a transfer, its id is the config digest (classic store, Podman)
/// or the manifest digest (containerd store) of the archive just sent.
pub fn verify(session: &Session, image: &Image, written: Option<&Written>) -> Result<()> {
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
    let id_matches = written.is_none_or(|w| held.id == w.config_digest || held.id == w.manifest_digest);
    if !is_same_image(&held, image) || !id_matches {
        let expected = written.map(|w| format!("{} or {}", w.config_digest, w.manifest_digest));
        bail!(
            "{} on {} is not the image built here (Property 20): id {} with {} layers there, id {} with {} \
             layers here. Nothing was started; the transfer was corrupted or the target's store changed the \
             image. Deploy again.",
            image.reference,
            session.transport,
            held.id,
            held.rootfs.layers.len(),
            expected.unwrap_or_else(|| image.id.clone()),
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

/// Ships every image of a release the target lacks, in order, after checking the
/// target's disk can take them (before anything is sent or stopped). Returns the
/// release's images and the bytes sent.
pub fn ship_all(
    session: &Session,
    local: &Runtime,
    images: &[Image],
    state_dir: &Path,
    archives: Option<&shared::Archives>,
) -> Result<(Vec<Image>, u64)> {
    let log = session.log;
    let inventory = Inventory::read(session)?;
    let plans = plan_all(images, &inventory);
    let needed: u64 = images.iter().zip(&plans).map(|(i, p)| estimated_bytes(i, p)).sum();
    let margin = 256 * 1024 * 1024;
    if let Some(free) = session.free_disk_bytes
        && needed > 0
        && free < needed + margin
    {
        bail!(
            "{} has {:.1} GB free at {}; the images to ship need about {:.1} GB (plus {:.1} GB margin). Free some \
             space (e.g. `docker image prune`) and deploy again; nothing was changed.",
            session.name,
            free as f64 / 1e9,
            session.paths.base,
            needed as f64 / 1e9,
            margin as f64 / 1e9
        );
    }
    let mut sent = 0;
    for (image, plan) in images.iter().zip(&plans) {
        match plan {
            Plan::Present { .. } => {
                deliver(session, local, image, plan, state_dir, archives)?;
                log.info(format!("{}: {} is on {} already, not sent", image.service, image.reference, session.name));
            }
            Plan::Send { skip } => {
                log.info(format!(
                    "{}: sending {} ({} of {} layers are on {} already)",
                    image.service,
                    image.reference,
                    skip.len(),
                    image.layers.len(),
                    session.name
                ));
                let shipped = deliver(session, local, image, plan, state_dir, archives)?;
                sent += shipped.sent_bytes;
                log.info(format!(
                    "{}: sent {:.1} MB compressed ({:.1} MB saved, {} layers left out) in {:.1} s, {:.1} MB/s; \
                     verified",
                    image.service,
                    shipped.sent_bytes as f64 / 1e6,
                    shipped.saved_bytes as f64 / 1e6,
                    shipped.skipped_layers,
                    shipped.seconds,
                    shipped.sent_bytes as f64 / 1e6 / shipped.seconds.max(0.001)
                ));
            }
        }
    }
    if sent == 0 {
        log.info("no image bytes shipped: the host holds every image");
    }
    Ok((images.to_vec(), sent))
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

/// Where the layer names learned from `save` streams are kept.
pub fn layer_names_file(state_dir: &Path) -> PathBuf {
    state_dir.join("images").join("layer-names.json")
}

#[cfg(test)]
mod tests;
