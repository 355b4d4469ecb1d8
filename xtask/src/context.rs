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

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::host::runtime::BuildSpec;

#[cfg(test)]
mod tests;

/// The gzip level. Fixed, since the compressed bytes depend on it; 6 is gzip's default,
/// within a few percent of the best on source and binaries at half the time.
pub const COMPRESSION_LEVEL: u32 = 6;

/// The file Docker reads the ignore rules from, at the root of the context.
pub const DOCKERIGNORE: &str = ".dockerignore";

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
    let (reader, writer) = io::pipe().context("creating a pipe for the build context")?;
    let dir = dir.to_path_buf();
    let writing = std::thread::Builder::new()
        .name("build-context".to_string())
        .spawn(move || write_entries(&dir, &entries, writer))
        .context("starting the thread that writes the build context")?;
    Ok(ContextStream { reader: Some(reader), writing: Some(writing), outcome: None })
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

/// A `.dockerignore`, read and matched the way the Docker CLI does (moby's
/// `ignorefile` and `patternmatcher`): each line is a path pattern relative to the
/// context root (`*` and `?` stay within one path element, `**` spans any number,
/// `[...]` and `\` as in Go's `filepath.Match`); a pattern matching a directory covers
/// everything below it; `!` makes an exception; the last line that matches decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// The rules of `dir/.dockerignore`; none when there is no such file.
    pub fn read(dir: &Path) -> Result<DockerIgnore> {
        let path = dir.join(DOCKERIGNORE);
        match fs::read(&path) {
            Ok(bytes) => DockerIgnore::parse(&String::from_utf8_lossy(&bytes))
                .with_context(|| format!("reading {}", path.display())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Parses the text of a `.dockerignore`. A `#` in the first column starts a comment;
    /// blank lines are skipped; patterns are trimmed and cleaned (`./a/` is `a`, a
    /// leading `/` is dropped). Malformed patterns are errors, as they are for Docker.
    pub fn parse(text: &str) -> Result<DockerIgnore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ignore = DockerIgnore::default();
        for (number, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, text) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = Pattern::new(text, exception).with_context(|| format!("line {}: {line:?}", number + 1))?;
            ignore.patterns.push(pattern);
        }
        Ok(ignore)
    }

    /// Adds an exception for `path`, as Docker does for the Dockerfile and the
    /// `.dockerignore` itself.
    pub fn keep(&mut self, path: &str) {
        if let Ok(pattern) = Pattern::new(path, true) {
            self.patterns.push(pattern);
        }
    }

    /// Whether the rules leave `path` (slash-separated, relative to the context root)
    /// out, the directories above it taken as directories. Only the rules count here:
    /// [`context_entries`] also keeps the Dockerfile and `.dockerignore`.
    pub fn is_excluded(&self, path: &str) -> bool {
        let mut parent = Vec::new();
        let mut excluded = false;
        let mut end = 0;
        while end < path.len() {
            end = path[end..].find('/').map_or(path.len(), |at| end + at);
            (excluded, parent) = self.evaluate(&path[..end], &parent);
            end += 1;
        }
        excluded
    }

    /// Docker's `MatchesUsingParentResults`: whether `path` is excluded, and for each
    /// pattern whether it matched `path` (its children's `parent`). A pattern that
    /// matched the parent directory matches here too; the others are tried on `path`
    /// itself, skipping those that cannot change the outcome.
    fn evaluate(&self, path: &str, parent: &[bool]) -> (bool, Vec<bool>) {
        let chars: Vec<char> = path.chars().collect();
        let mut excluded = false;
        let mut matched = vec![false; self.patterns.len()];
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.get(index).copied().unwrap_or(false);
            if !hit {
                if pattern.exception != excluded {
                    continue;
                }
                hit = pattern.matches(path, &chars);
            }
            matched[index] = hit;
            if hit {
                excluded = !pattern.exception;
            }
        }
        (excluded, matched)
    }

    /// Whether an exception names something below the excluded directory `dir`, so the
    /// walk must enter it (Docker compares the exception's text as a prefix).
    fn reincludes_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns.iter().any(|pattern| pattern.exception && format!("{}/", pattern.text).starts_with(&dir_slash))
    }
}

/// One compiled line of a `.dockerignore`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exception: bool,
    rule: Rule,
}

/// How a pattern matches, as patternmatcher decides it while compiling.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// Plain text: the whole path.
    Exact,
    /// `text**` where text is plain: the path starts with it.
    Prefix(String),
    /// `**text` where text is plain: the path ends with it (`**/a` also matches `a`).
    Suffix(String),
    /// Anything else: the whole path matches these tokens.
    Glob(Vec<Token>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    AnyChar,
    /// `**` with more pattern after it: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything.
    AnyRest,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    fn new(text: &str, exception: bool) -> Result<Pattern> {
        let mut text = if text.is_empty() { String::new() } else { clean(text) };
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        if exception && (text.is_empty() || text == "/") {
            bail!("`!` needs a pattern after it");
        }
        if text.is_empty() {
            bail!("empty pattern");
        }
        let rule = compile(&text)?;
        Ok(Pattern { text, exception, rule })
    }

    fn matches(&self, path: &str, chars: &[char]) -> bool {
        match &self.rule {
            Rule::Exact => path == self.text,
            Rule::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Rule::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Rule::Glob(tokens) => glob_matches(tokens, chars),
        }
    }
}

/// patternmatcher's `compile`, token for token: which of the rules a pattern needs
/// follows its quirks too (`**` first makes a suffix rule only when nothing after needs
/// more than plain text).
fn compile(text: &str) -> Result<Rule> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Glob,
    }
    let mut detected = Detected::Exact;
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        tokens.push(Token::AnyRest);
                        detected = Detected::Glob;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    detected = Detected::Glob;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                detected = Detected::Glob;
            }
            '?' => {
                tokens.push(Token::AnyChar);
                detected = Detected::Glob;
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    tokens.push(Token::Char(escaped));
                    detected = Detected::Glob;
                }
                None => bail!("a pattern cannot end with `\\`"),
            },
            '[' => {
                tokens.push(char_class(&mut chars)?);
                detected = Detected::Glob;
            }
            other => tokens.push(Token::Char(other)),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Rule::Exact,
        Detected::Prefix => Rule::Prefix(text[..text.len() - 2].to_string()),
        Detected::Suffix => Rule::Suffix(text[2..].to_string()),
        Detected::Glob => Rule::Glob(tokens),
    })
}

/// The rest of a `[...]` class, the `[` already read: `^` negates; `a-z` is a range;
/// `\` escapes. Empty classes and stray `-` or `]` are errors, as in `filepath.Match`.
fn char_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        if chars.peek() == Some(&']') && !ranges.is_empty() {
            chars.next();
            return Ok(Token::Class { negated, ranges });
        }
        let low = class_char(chars)?;
        let high = if chars.next_if_eq(&'-').is_some() { class_char(chars)? } else { low };
        ranges.push((low, high));
    }
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char> {
    match chars.next() {
        None => bail!("unterminated `[` in pattern"),
        Some('-' | ']') => bail!("misplaced `-` or `]` in a `[...]` class"),
        Some('\\') => chars.next().context("a pattern cannot end with `\\`"),
        Some(c) => Ok(c),
    }
}

/// Whether `path` as a whole matches `tokens` (the regular expression Docker builds,
/// matched by backtracking: patterns and paths are short).
fn glob_matches(tokens: &[Token], path: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    let one =
        |accept: &dyn Fn(char) -> bool| path.first().is_some_and(|&c| accept(c)) && glob_matches(rest, &path[1..]);
    match token {
        Token::Char(expected) => one(&|c| c == *expected),
        Token::AnyChar => one(&|c| c != '/'),
        Token::Class { negated, ranges } => {
            one(&|c| ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negated)
        }
        Token::Star => {
            for skip in 0..=path.len() {
                if glob_matches(rest, &path[skip..]) {
                    return true;
                }
                if path.get(skip) == Some(&'/') {
                    break;
                }
            }
            false
        }
        // `(.*/)?`, and `.` stops at a newline as in Go's regexp.
        Token::AnyDirs => {
            glob_matches(rest, path)
                || path
                    .iter()
                    .take_while(|&&c| c != '\n')
                    .enumerate()
                    .any(|(at, &c)| c == '/' && glob_matches(rest, &path[at + 1..]))
        }
        Token::AnyRest => !path.contains(&'\n') && glob_matches(rest, &[]),
    }
}

/// Go's `filepath.Clean` for slash paths: no empty or `.` elements, `..` resolved
/// lexically, no trailing slash; `.` for nothing.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
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

/// Archives `entries` of `dir` (from [`context_entries`]) as a reproducible tar.gz.
fn write_entries(dir: &Path, entries: &[ContextEntry], writer: impl Write) -> Result<ContextSummary> {
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
