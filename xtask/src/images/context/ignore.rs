//! `.dockerignore`, read and matched with the Docker CLI's own rules: patterns anchored
//! at the context root, `**`, `!` exceptions, the last matching line wins, excluded
//! directories entered only when an exception names something inside.

use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The file Docker reads the ignore rules from, at the root of the context.
pub const DOCKERIGNORE: &str = ".dockerignore";

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
    /// [`super::context_entries`] also keeps the Dockerfile and `.dockerignore`.
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
    pub(super) fn evaluate(&self, path: &str, parent: &[bool]) -> (bool, Vec<bool>) {
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
    pub(super) fn reincludes_below(&self, dir: &str) -> bool {
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
pub(super) fn clean(path: &str) -> String {
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

#[cfg(test)]
mod tests;
