//! Commands as values. Every process the xtask starts is first built as a [`Cmd`] by a
//! pure function (so tests can assert it and `--dry-run` can print it), then run here.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One command line: program, arguments, extra environment and working directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new(), dir: None }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.dir = Some(dir.into());
        self
    }

    /// The same command as a duct expression, ready to be redirected and run.
    pub fn to_expression(&self) -> duct::Expression {
        let mut expression = duct::cmd(&self.program, &self.args);
        for (key, value) in &self.env {
            expression = expression.env(key, value);
        }
        if let Some(dir) = &self.dir {
            expression = expression.dir(dir);
        }
        expression
    }

    /// Runs the command, capturing its output; a non-zero exit is an error carrying
    /// the command line and what it printed on stderr.
    pub fn output(&self) -> Result<String> {
        let output = self.capture()?;
        if !output.status.success() {
            bail!("`{self}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs the command, capturing stdout and stderr whatever its exit status. Its
    /// stdin is empty: an ssh carrying it would otherwise read the caller's terminal.
    pub fn capture(&self) -> Result<std::process::Output> {
        self.to_expression()
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// True when the command runs and exits 0; its output is discarded.
    pub fn succeeds(&self) -> bool {
        self.to_expression().stdout_null().stderr_null().unchecked().run().is_ok_and(|o| o.status.success())
    }

    /// Like [`Cmd::capture`], but kills the command once `limit` has passed. Its stdin
    /// is empty: a command that waited for input would only run out the clock.
    pub fn capture_with_timeout(&self, limit: Duration) -> Result<TimedOutput> {
        let handle = self
            .to_expression()
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .with_context(|| format!("could not start `{self}`"))?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(output) = handle.try_wait().with_context(|| format!("waiting for `{self}`"))? {
                return Ok(TimedOutput::Finished(output.clone()));
            }
            if Instant::now() >= deadline {
                handle.kill().with_context(|| format!("killing `{self}` after {limit:?}"))?;
                return Ok(TimedOutput::TimedOut);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the command with stdout and stderr going to `log` (created or truncated).
    /// On failure the error names the log and quotes its last lines.
    pub fn run_logged(&self, log: &Path) -> Result<()> {
        let file = create_log(log)?;
        // duct applies the innermost redirection last: stderr joins stdout first,
        // then both go to the file.
        let expression = self.to_expression().stderr_to_stdout().stdout_file(file);
        self.run_to_log(expression, log).map(drop)
    }

    /// Runs the command with stderr written to `log`; its stdout, for the caller to
    /// read (a failure shows the log's tail, as [`Cmd::run_logged`]).
    pub fn stdout_logging_stderr(&self, log: &Path) -> Result<String> {
        let expression = self.to_expression().stderr_file(create_log(log)?).stdout_capture();
        let output = self.run_to_log(expression, log)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `expression` (this command, its output sent to `log`); a failure is an
    /// error with the log's tail.
    fn run_to_log(&self, expression: duct::Expression, log: &Path) -> Result<std::process::Output> {
        let output = expression.unchecked().run().with_context(|| format!("could not start `{self}`"))?;
        if !output.status.success() {
            bail!("`{self}` failed ({}); full log: {}\n{}", output.status, log.display(), tail_of_file(log, 40));
        }
        Ok(output)
    }

    /// Starts the command with stdout and stderr piped to the caller, to be read as
    /// streams (stdin empty when `input` is false, else piped too).
    pub fn spawn_piped(&self, input: bool) -> Result<std::process::Child> {
        use std::process::Stdio;
        std::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.as_deref().unwrap_or(Path::new(".")))
            .stdin(if input { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Runs the command with the terminal as its stdin, stdout and stderr.
    pub fn run_inherited(&self) -> Result<()> {
        let status =
            self.to_expression().unchecked().run().with_context(|| format!("could not start `{self}`"))?.status;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }
}

/// What [`Cmd::capture_with_timeout`] saw.
#[derive(Debug)]
pub enum TimedOutput {
    Finished(std::process::Output),
    TimedOut,
}

impl fmt::Display for Cmd {
    /// The command as one line a POSIX shell would run unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "cd {} && ", quote(&dir.to_string_lossy()))?;
        }
        for (key, value) in &self.env {
            write!(f, "{key}={} ", quote(value))?;
        }
        write!(f, "{}", quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell. Words with a NUL byte cannot be passed to any
/// shell; they are shown escaped (such a command fails when run, not when printed).
pub fn quote(word: &str) -> String {
    match shlex::try_quote(word) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => format!("{word:?}"),
    }
}

/// Creates (or empties) the log file at `log`, with its folder.
fn create_log(log: &Path) -> Result<fs::File> {
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::File::create(log).with_context(|| format!("creating log {}", log.display()))
}

/// The last `lines` lines of a text file, for error messages.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)).is_err() {
        return String::new();
    }
    tail(&text, lines)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether an I/O error means the program is not installed.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_every_word_for_the_shell() {
        let cmd = Cmd::new("docker")
            .args(["build", "--label", "a=b c", "it's"])
            .env("DOCKER_BUILDKIT", "0")
            .dir("/tmp/my dir");
        assert_eq!(cmd.to_string(), "cd '/tmp/my dir' && DOCKER_BUILDKIT=0 docker build --label 'a=b c' \"it's\"");
    }

    #[test]
    fn logged_runs_write_the_log_and_quote_its_tail_on_failure() {
        let dir = std::env::temp_dir().join(format!("cultivate-cmd-log-{}", std::process::id()));
        let log = dir.join("nested/run.log");
        let both = Cmd::new("sh").args(["-c", "echo out; echo err >&2"]);
        both.run_logged(&log).unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "out\nerr\n");
        assert_eq!(both.stdout_logging_stderr(&log).unwrap(), "out\n");
        assert_eq!(fs::read_to_string(&log).unwrap(), "err\n", "the log holds stderr only");
        for failing in [
            Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]).run_logged(&log).unwrap_err(),
            Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]).stdout_logging_stderr(&log).unwrap_err(),
        ] {
            let message = format!("{failing:#}");
            assert!(message.contains("boom") && message.contains(&log.display().to_string()), "{message}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_reports_stderr_of_a_failing_command() {
        let err = Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]).output().unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("boom"), "{message}");
        assert!(message.contains("sh -c"), "{message}");
    }

    #[test]
    fn timeout_kills_a_command_that_hangs() {
        let started = Instant::now();
        let result = Cmd::new("sleep").arg("30").capture_with_timeout(Duration::from_millis(200)).unwrap();
        assert!(matches!(result, TimedOutput::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_is_recognised() {
        let err = Cmd::new("cultivate-no-such-program").output().unwrap_err();
        assert!(is_not_found(&err), "{err:#}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\nd", 2), "c\nd");
        assert_eq!(tail("a", 5), "a");
    }
}
