//! One archive for several hosts. A deploy to several hosts sends most of them the
//! same archive: the same image, with the same layers left out (they hold the same
//! release before it). Made once here, into a local file, and streamed from it to
//! each host, instead of a `save` and a rewrite per host, which compete for this
//! machine's cores and its engine.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::archive::{self, LayerNames, Limits, Written};
use super::{Shipped, layer_names_file, load_cmd, verify};
use crate::host::runtime::Runtime;
use crate::host::session::Session;
use crate::model::image::Image;

/// An image's id and the layers left out of its archive.
type Key = (String, BTreeSet<String>);
/// An archive, once made; its lock is held while it is made.
type Slot = Arc<Mutex<Option<Archive>>>;

/// Archives made during this run, by image and the layers left out; their files are
/// removed when it is dropped.
#[derive(Default)]
pub struct Archives {
    made: Mutex<BTreeMap<Key, Slot>>,
    dir: Mutex<Option<PathBuf>>,
}

#[derive(Clone)]
struct Archive {
    path: PathBuf,
    written: Written,
    /// Bytes of the `save` stream read to make it.
    saved_bytes: u64,
    /// Its size: what each host is sent.
    bytes: u64,
}

impl Archives {
    /// The archive of `image` without `skip`, made on first use (one thread makes it,
    /// the others wait for it), then streamed to `session`'s host and verified there.
    pub fn send(
        &self,
        session: &Session,
        local: &Runtime,
        image: &Image,
        skip: &BTreeSet<String>,
        state_dir: &Path,
    ) -> Result<Shipped> {
        let started = Instant::now();
        let slot = {
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(made.entry((image.id.clone(), skip.clone())).or_default())
        };
        let archive = {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(archive) => {
                    session.log.info(format!("{}: the archive made for another host is sent", image.service));
                    archive.clone()
                }
                // A failure leaves the slot empty: the next host tries again.
                None => slot.insert(self.make(local, image, skip, state_dir)?).clone(),
            }
        };
        let mut file = File::open(&archive.path).with_context(|| format!("opening {}", archive.path.display()))?;
        let mut output = Vec::new();
        session
            .stream(&load_cmd(session.runtime), Some(&mut file), &mut output)
            .with_context(|| format!("loading {} on {} failed", image.reference, session.transport))?;
        session.log.debug(String::from_utf8_lossy(&output));
        verify(session, image, Some(&archive.written))?;
        Ok(Shipped {
            saved_bytes: archive.saved_bytes,
            sent_bytes: archive.bytes,
            skipped_layers: archive.written.left_out.len(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `save` → rewritten without `skip` → gzip → a file of this run's directory.
    fn make(&self, local: &Runtime, image: &Image, skip: &BTreeSet<String>, state_dir: &Path) -> Result<Archive> {
        let dir = {
            let mut dir = self.dir.lock().unwrap_or_else(|e| e.into_inner());
            dir.get_or_insert_with(|| {
                state_dir.join("images").join(format!("archives-{}-{}", std::process::id(), unique()))
            })
            .clone()
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.tar.gz", unique()));
        let names_file = layer_names_file(state_dir);
        let mut names = LayerNames::load(&names_file);
        let save_cmd = local.save_cmd(&image.reference);
        let mut save = save_cmd.spawn_piped(false)?;
        let save_out = save.stdout.take().context("save stdout")?;
        let mut save_err = save.stderr.take().context("save stderr")?;
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = save_err.read_to_string(&mut text);
            text
        });
        let mut counted = super::Counting { inner: save_out, count: Default::default(), bar: None };
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut output = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
        let spool = state_dir.join("images").join("spool");
        let written =
            archive::rewrite(&mut counted, &mut output, &image.reference, skip, &mut names, &spool, Limits::DEFAULT);
        let finished = output.finish().and_then(|mut file| file.flush());
        let saved_bytes = counted.count.load(std::sync::atomic::Ordering::Relaxed);
        // Closed before the wait: a save still writing would never end otherwise.
        drop(counted);
        let status = save.wait().with_context(|| format!("waiting for `{save_cmd}`"))?;
        let save_errors = errors.join().unwrap_or_default();
        if let Err(err) = names.save(&names_file) {
            crate::support::log::warn(format!("could not keep the layer names: {err:#}"));
        }
        if !status.success() {
            bail!("`{save_cmd}` failed on this machine ({status}): {}", save_errors.trim());
        }
        let written = written.with_context(|| format!("rewriting the archive of {}", image.reference))?;
        finished.with_context(|| format!("writing {}", path.display()))?;
        let bytes = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
        Ok(Archive { path, written, saved_bytes, bytes })
    }
}

impl Drop for Archives {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get_mut().ok().and_then(|d| d.take()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
