//! Build contexts as archives, for builds on a remote engine: the context travels over
//! SSH as a tar.gz and `docker build -f <Dockerfile> -` reads it from stdin there.
//!
//! The archive holds what `docker build <dir>` would send: the directory filtered by its
//! `.dockerignore` with the Docker CLI's own rules (patterns anchored at the context
//! root, `**`, `!` exceptions, the last matching line wins, excluded directories entered
//! only when an exception names something inside), plus the Dockerfile and the
//! `.dockerignore`, which Docker always sends. A remote build then sees exactly what a
//! local one would, secrets included in neither.
//!
//! Nothing in it depends on the checkout: entries in path order, times 0, owner
//! root:root without names, modes 0644/0755, a gzip header without time or name, a fixed
//! compression level. The same tree gives the same bytes wherever and whenever it was
//! checked out, so the sha256 names a context and an unchanged one need not travel again.
//! Files are streamed, never held in memory, and the writer may be a pipe.
//!
//! Two parts, tied here: `ignore` reads and matches the `.dockerignore`, `archive` writes
//! the entries as a reproducible tar.gz; the walk between them lists the context's
//! entries in archive order, filtered by the rules.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::host::runtime::BuildSpec;

mod archive;
mod ignore;

use archive::write_entries;
pub use archive::{COMPRESSION_LEVEL, ContextEntry, ContextStream, ContextSummary, EntryKind, SkippedEntry};
use ignore::clean;
pub use ignore::{DOCKERIGNORE, DockerIgnore};

#[cfg(test)]
mod tests;

/// Writes the context `dir` as a tar.gz to `writer`, with `dockerfile` (a path inside
/// `dir`, as `docker build -f` will name it) and `.dockerignore` always included.
/// After an error part-way, `writer` has had a truncated archive, which `docker build`
/// refuses (the gzip trailer is missing): a reader must still learn of the error.
pub fn write_context(dir: &Path, dockerfile: &str, writer: impl Write) -> Result<ContextSummary> {
    let entries = context_entries(dir, dockerfile)?;
    write_entries(dir, &entries, writer)
}

/// The entries of the context `dir` in archive order: a depth-first walk, names sorted
/// bytewise, the order of Docker's own walk. An excluded directory is no entry even when
/// an exception brings in something below it (Docker does the same); the engine creates
/// such parents as it unpacks.
pub fn context_entries(dir: &Path, dockerfile: &str) -> Result<Vec<ContextEntry>> {
    let dockerfile = dockerfile_path(dockerfile)?;
    let mut ignore = DockerIgnore::read(dir)?;
    ignore.keep(DOCKERIGNORE);
    ignore.keep(&dockerfile);
    let mut entries = Vec::new();
    walk(dir, Path::new(""), &ignore, &[], &mut entries)?;
    let has_dockerfile = entries.iter().any(|entry| {
        slash_path(&entry.path) == dockerfile && matches!(entry.kind, EntryKind::File | EntryKind::Symlink)
    });
    if !has_dockerfile {
        bail!("the build context {} has no Dockerfile {dockerfile}", dir.display());
    }
    Ok(entries)
}

/// The Dockerfile's path inside the context of `spec`, slash-separated, for
/// `docker build -f <it> -`: with the context on stdin, the Dockerfile must be in it.
pub fn dockerfile_in_context(spec: &BuildSpec) -> Result<String> {
    let relative = spec.dockerfile.strip_prefix(&spec.context).with_context(|| {
        format!(
            "the Dockerfile {} is outside the build context {}, so an archive of the context cannot carry it",
            spec.dockerfile.display(),
            spec.context.display()
        )
    })?;
    dockerfile_path(&slash_path(relative))
}

/// `write_context` on a thread, read through a pipe: the shape `Transport::stream` wants
/// for a remote command's stdin. The entries are listed before this returns, so a bad
/// `.dockerignore` or a missing Dockerfile fails here rather than mid-stream.
pub fn stream_context(dir: &Path, dockerfile: &str) -> Result<ContextStream> {
    let entries = context_entries(dir, dockerfile)?;
    ContextStream::start(dir, entries)
}

/// A Dockerfile path as `-f` names it inside the context: relative, clean, inside.
fn dockerfile_path(dockerfile: &str) -> Result<String> {
    let cleaned = clean(dockerfile);
    if cleaned.starts_with('/') || cleaned == "." || cleaned == ".." || cleaned.starts_with("../") {
        bail!(
            "the Dockerfile {dockerfile:?} must be a path inside the build context, such as `Dockerfile` or `backend-api/Dockerfile`"
        );
    }
    Ok(cleaned)
}

/// A relative path as the patterns see it: `/`-separated (names that are not UTF-8 are
/// matched with replacement characters, and archived as they are).
fn slash_path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn walk(
    root: &Path,
    relative: &Path,
    ignore: &DockerIgnore,
    parent: &[bool],
    entries: &mut Vec<ContextEntry>,
) -> Result<()> {
    let dir = root.join(relative);
    let mut names = fs::read_dir(&dir)
        .and_then(|listing| {
            listing.map(|entry| entry.map(|entry| entry.file_name())).collect::<io::Result<Vec<OsString>>>()
        })
        .with_context(|| format!("listing {}", dir.display()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = relative.join(&name);
        let full_path = root.join(&path);
        let file_type =
            fs::symlink_metadata(&full_path).with_context(|| format!("reading {}", full_path.display()))?.file_type();
        let slashed = slash_path(&path);
        let (excluded, matched) = ignore.evaluate(&slashed, parent);
        if excluded {
            if file_type.is_dir() && ignore.reincludes_below(&slashed) {
                walk(root, &path, ignore, &matched, entries)?;
            }
            continue;
        }
        let kind = if file_type.is_dir() {
            EntryKind::Directory
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_socket() {
            EntryKind::Unsupported("a socket (Docker leaves sockets out too)")
        } else if file_type.is_fifo() {
            EntryKind::Unsupported("a FIFO: reading it would wait for a writer")
        } else {
            EntryKind::Unsupported("a device node; list it in .dockerignore")
        };
        entries.push(ContextEntry { path: path.clone(), kind });
        if kind == EntryKind::Directory {
            walk(root, &path, ignore, &matched, entries)?;
        }
    }
    Ok(())
}
