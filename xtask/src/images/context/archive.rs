//! The reproducible tar.gz of a context's entries: entries in the order given, times 0,
//! owner root:root without names, modes 0644/0755, a gzip header without time or name,
//! a fixed compression level. Files are streamed, never held in memory, and the writer
//! may be a pipe, read on another thread through [`ContextStream`].

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// The gzip level. Fixed, since the compressed bytes depend on it; 6 is gzip's default,
/// within a few percent of the best on source and binaries at half the time.
pub const COMPRESSION_LEVEL: u32 = 6;

/// What one archive holds and weighs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSummary {
    /// Regular files archived.
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Entries left out because a tar.gz for `docker build` cannot carry them.
    pub skipped: Vec<SkippedEntry>,
    /// The archived files' bytes.
    pub content_bytes: u64,
    /// The tar stream before compression.
    pub uncompressed_bytes: u64,
    /// What was written: the tar.gz.
    pub compressed_bytes: u64,
    /// SHA-256 of the tar.gz, lowercase hex.
    pub sha256: String,
}

impl fmt::Display for ContextSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files, {} directories, {} symlinks; {} bytes of tar, {} bytes gzipped; sha256 {}",
            self.files, self.directories, self.symlinks, self.uncompressed_bytes, self.compressed_bytes, self.sha256
        )?;
        for skipped in &self.skipped {
            write!(f, "; skipped {} ({})", skipped.path.display(), skipped.reason)?;
        }
        Ok(())
    }
}

/// A context entry that is neither file, directory nor symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedEntry {
    /// Relative to the context directory.
    pub path: PathBuf,
    pub reason: &'static str,
}

/// One path of the context that `.dockerignore` lets through, in archive order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    /// Relative to the context directory.
    pub path: PathBuf,
    pub kind: EntryKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// A socket, FIFO or device: not archived, for the reason given.
    Unsupported(&'static str),
}

/// The tar.gz of a context as it is written. Reading it to the end yields an error, not
/// an early end, when writing failed; [`ContextStream::finish`] gives the summary.
#[derive(Debug)]
pub struct ContextStream {
    reader: Option<io::PipeReader>,
    writing: Option<JoinHandle<Result<ContextSummary>>>,
    outcome: Option<Result<ContextSummary>>,
}

impl ContextStream {
    /// [`write_entries`] on a thread, read through a pipe.
    pub(super) fn start(dir: &Path, entries: Vec<ContextEntry>) -> Result<ContextStream> {
        let (reader, writer) = io::pipe().context("creating a pipe for the build context")?;
        let dir = dir.to_path_buf();
        let writing = std::thread::Builder::new()
            .name("build-context".to_string())
            .spawn(move || write_entries(&dir, &entries, writer))
            .context("starting the thread that writes the build context")?;
        Ok(ContextStream { reader: Some(reader), writing: Some(writing), outcome: None })
    }

    /// The summary once everything was read, or why writing failed. Called before the
    /// end, it stops the writer, which then fails with a broken pipe.
    pub fn finish(mut self) -> Result<ContextSummary> {
        self.reader = None;
        self.wait();
        self.outcome.take().unwrap_or_else(|| Err(anyhow!("the build context was never written")))
    }

    fn wait(&mut self) {
        if let Some(writing) = self.writing.take() {
            let outcome =
                writing.join().unwrap_or_else(|_| Err(anyhow!("the thread writing the build context panicked")));
            self.outcome = Some(outcome);
        }
    }
}

impl Read for ContextStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(0);
        };
        let read = reader.read(buf)?;
        if read == 0 && !buf.is_empty() {
            // The writer closed its end: finished, or failed part-way.
            self.wait();
            if let Some(Err(err)) = &self.outcome {
                return Err(io::Error::other(format!("{err:#}")));
            }
        }
        Ok(read)
    }
}

impl Drop for ContextStream {
    fn drop(&mut self) {
        self.reader = None;
        self.wait();
    }
}

/// Archives `entries` of `dir` (from [`super::context_entries`]) as a reproducible tar.gz.
pub(super) fn write_entries(dir: &Path, entries: &[ContextEntry], writer: impl Write) -> Result<ContextSummary> {
    let hashing = Hashing { inner: writer, hasher: Sha256::new(), bytes: 0 };
    let gzip = GzBuilder::new().write(hashing, Compression::new(COMPRESSION_LEVEL));
    let mut archive = tar::Builder::new(Counting { inner: gzip, bytes: 0 });
    let mut summary = ContextSummary {
        files: 0,
        directories: 0,
        symlinks: 0,
        skipped: Vec::new(),
        content_bytes: 0,
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        sha256: String::new(),
    };
    for entry in entries {
        let source = dir.join(&entry.path);
        let appended = match entry.kind {
            EntryKind::Directory => {
                let mut header = header(tar::EntryType::Directory, 0o755, 0);
                let mut name = entry.path.clone().into_os_string();
                name.push("/");
                summary.directories += 1;
                archive.append_data(&mut header, name, io::empty())
            }
            EntryKind::File => {
                let file = File::open(&source).with_context(|| format!("opening {}", source.display()))?;
                let metadata = file.metadata().with_context(|| format!("reading {}", source.display()))?;
                if !metadata.is_file() {
                    bail!(
                        "{} changed into something else than a file while the context was archived",
                        source.display()
                    );
                }
                let mode = if metadata.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                let mut header = header(tar::EntryType::Regular, mode, metadata.len());
                let mut content = ExactLength { inner: file, remaining: metadata.len() };
                summary.files += 1;
                summary.content_bytes += metadata.len();
                archive.append_data(&mut header, &entry.path, &mut content).and_then(|()| {
                    match content.inner.read(&mut [0u8; 1])? {
                        0 => Ok(()),
                        _ => Err(io::Error::other("the file grew while it was being archived")),
                    }
                })
            }
            EntryKind::Symlink => {
                let target =
                    fs::read_link(&source).with_context(|| format!("reading the link {}", source.display()))?;
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                summary.symlinks += 1;
                archive.append_link(&mut header, &entry.path, target)
            }
            EntryKind::Unsupported(reason) => {
                summary.skipped.push(SkippedEntry { path: entry.path.clone(), reason });
                continue;
            }
        };
        appended.with_context(|| format!("archiving {}", source.display()))?;
    }
    let counting = archive.into_inner().context("finishing the tar stream")?;
    summary.uncompressed_bytes = counting.bytes;
    let mut hashing = counting.inner.finish().context("finishing the gzip stream")?;
    hashing.inner.flush().context("flushing the build context archive")?;
    summary.compressed_bytes = hashing.bytes;
    summary.sha256 = crate::support::digest::hex(&hashing.hasher.finalize());
    Ok(summary)
}

/// A header with nothing of this machine in it: no time, root:root without names.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// A file's content exactly as long as its header announced: one that shrinks or grows
/// while it is archived is an error, never a corrupt archive.
struct ExactLength<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let limit = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..limit])?;
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was being archived"));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Counts the bytes written through it (the tar stream).
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes the bytes written through it (the tar.gz).
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
