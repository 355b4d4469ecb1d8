//! The operator's log of a deploy, rollback or other host task: every line carries an
//! RFC 3339 timestamp and a level (Property 32). Lines go to stderr as they happen and
//! are kept, so the whole log can be written on the host afterwards (Property 34).
//! Debug lines (each command and its output) reach stderr only with `--verbose`
//! (Property 35) but are always kept for the host's copy.

use std::fmt;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        })
    }
}

/// The lines of the task's log, where [`say`] and [`warn`] also write: one logger,
/// whatever layer speaks (the image build, the engine bootstrap, the probe).
static CURRENT: Mutex<Option<Lines>> = Mutex::new(None);

thread_local! {
    /// A host's log, when this thread works on one host of several: what is said on
    /// the thread belongs to that host's log, not to the task's.
    static HOST_CURRENT: std::cell::RefCell<Option<Lines>> = const { std::cell::RefCell::new(None) };
}

type Lines = Arc<Mutex<Vec<String>>>;

#[derive(Debug, Default)]
pub struct Log {
    verbose: bool,
    lines: Lines,
    /// One host of several: its name marks each line on stderr, and its progress
    /// line (when stderr is a terminal) shows the latest step.
    host: Option<HostLine>,
}

#[derive(Debug)]
struct HostLine {
    name: String,
    bar: indicatif::ProgressBar,
}

impl Log {
    /// The task's log; lines said anywhere in the process from now on are kept in it.
    pub fn new(verbose: bool) -> Log {
        let lines = Lines::default();
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&lines));
        Log { verbose, lines, host: None }
    }

    /// The log of one host among several worked on at once, kept apart (it is written
    /// on that host): lines said on this thread from now on are kept in it. On a
    /// terminal, `progress` gets the host's one progress line; elsewhere each line
    /// goes to stderr marked with the host's name.
    pub fn for_host(verbose: bool, name: &str, progress: &indicatif::MultiProgress) -> Log {
        let lines = Lines::default();
        HOST_CURRENT.with(|current| *current.borrow_mut() = Some(Arc::clone(&lines)));
        let bar = progress.add(indicatif::ProgressBar::new_spinner());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>16} {spinner} {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Log { verbose, lines, host: Some(HostLine { name: name.to_string(), bar }) }
    }

    /// Whether this is one host's log among several (progress bars of its own would
    /// fight the others').
    pub fn is_one_of_several(&self) -> bool {
        self.host.is_some()
    }

    /// Ends the host's progress line with `message`.
    pub fn finish(&self, message: &str) {
        if let Some(host) = &self.host {
            host.bar.finish_with_message(message.to_string());
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn debug(&self, message: impl AsRef<str>) {
        self.write(Level::Debug, message.as_ref());
    }

    pub fn info(&self, message: impl AsRef<str>) {
        self.write(Level::Info, message.as_ref());
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        self.write(Level::Warn, message.as_ref());
    }

    pub fn error(&self, message: impl AsRef<str>) {
        self.write(Level::Error, message.as_ref());
    }

    /// One entry; a multi-line message becomes one timestamped line per line.
    pub fn write(&self, level: Level, message: &str) {
        let stamp = now_rfc3339();
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for text in message.trim_end().lines() {
            let line = format_line(&stamp, level, text);
            if level > Level::Debug || self.verbose {
                self.echo(level, &stamp, text, &line);
            }
            lines.push(line);
        }
    }

    fn echo(&self, level: Level, stamp: &str, text: &str, line: &str) {
        match &self.host {
            None => eprintln!("{line}"),
            Some(host) if host.bar.is_hidden() => {
                eprintln!("{}", format_line(stamp, level, &format!("{} | {text}", host.name)))
            }
            Some(host) if level == Level::Info => host.bar.set_message(text.to_string()),
            Some(host) => host.bar.println(format_line(stamp, level, &format!("{} | {text}", host.name))),
        }
    }

    /// Everything logged so far, one line each.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().map(|line| format!("{line}\n")).collect()
    }
}

/// A line from a layer that holds no [`Log`] (the image build, the engine bootstrap):
/// timestamped and levelled like every other line, and kept in the task's log when
/// a task has one, so the host's copy has it too.
pub fn say(message: impl AsRef<str>) {
    say_at(Level::Info, message.as_ref());
}

/// A warning from a layer that holds no [`Log`]; see [`say`].
pub fn warn(message: impl AsRef<str>) {
    say_at(Level::Warn, message.as_ref());
}

fn say_at(level: Level, message: &str) {
    let stamp = now_rfc3339();
    let current = HOST_CURRENT
        .with(|current| current.borrow().clone())
        .or_else(|| CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone());
    for text in message.trim_matches('\n').lines() {
        let line = format_line(&stamp, level, text);
        eprintln!("{line}");
        if let Some(lines) = &current {
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
}

pub fn format_line(stamp: &str, level: Level, text: &str) -> String {
    format!("{stamp} {level:<5} {text}")
}

/// Whether a line starts with an RFC 3339 timestamp and a level.
pub fn is_log_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let stamped = words.next().is_some_and(|stamp| {
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok()
    });
    stamped && words.next().is_some_and(|level| ["DEBUG", "INFO", "WARN", "ERROR"].contains(&level))
}

/// Now, as RFC 3339 in UTC: every log line and record carries it.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lines_said_outside_the_task_reach_its_log() {
        // Other tests open logs of their own at the same time, and the newest takes
        // the said lines: a few bounded tries.
        let kept = (0..5).any(|attempt| {
            let log = Log::new(false);
            let marker = format!("said from the image build, try {attempt}");
            say(&marker);
            warn("a warning from the probe");
            let text = log.text();
            text.contains(&marker) && text.lines().all(is_log_line)
        });
        assert!(kept, "lines said outside the task never reached its log");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        // Property 32: timestamped deployment logs. Whatever a message holds, every
        // line it becomes starts with a timestamp and a level.
        #[test]
        fn property_32_every_line_is_timestamped(messages in prop::collection::vec(".{0,80}", 1..6), verbose: bool) {
            let log = Log::new(verbose);
            for (i, message) in messages.iter().enumerate() {
                log.write([Level::Debug, Level::Info, Level::Warn, Level::Error][i % 4], message);
            }
            for line in log.text().lines() {
                prop_assert!(is_log_line(line), "{line:?}");
            }
        }
    }

    /// Issue 14: hosts worked on at once each keep their own log (written on that
    /// host): what is said on a host's thread is in its log only.
    #[test]
    fn lines_said_on_a_hosts_thread_reach_that_hosts_log_only() {
        let progress = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        let texts: Vec<String> = std::thread::scope(|scope| {
            let hosts: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|name| {
                    let progress = &progress;
                    scope.spawn(move || {
                        let log = Log::for_host(false, name, progress);
                        log.info(format!("deploying to {name}"));
                        say(format!("said on {name}'s thread"));
                        log.finish("done");
                        log.text()
                    })
                })
                .collect();
            hosts.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (text, (own, other)) in texts.iter().zip([("a", "b"), ("b", "a")]) {
            assert!(
                text.contains(&format!("deploying to {own}")) && text.contains(&format!("said on {own}'s")),
                "{text}"
            );
            assert!(!text.contains(&format!("said on {other}'s")) && !text.contains(&format!("to {other}")), "{text}");
            assert!(text.lines().all(is_log_line), "{text}");
        }
    }

    #[test]
    fn lines_without_a_timestamp_are_told_apart() {
        assert!(is_log_line("2026-11-23T10:00:00.5Z INFO  deploying"));
        assert!(!is_log_line("deploying"));
        assert!(!is_log_line("2026-11-23T10:00:00Z nonsense"));
    }
}
