//! The transport seam: where a command runs. `Local` runs it on this machine; `Ssh`
//! runs it on a target through the system OpenSSH client, so the user's ~/.ssh/config,
//! agent and known_hosts apply. Commands stay values ([`Cmd`]) until run here, and the
//! local command line that carries a remote one is itself a value (`carrier`), so
//! tests can assert it and `--dry-run` can print it.
//!
//! One multiplexed SSH connection serves a whole run: ControlMaster with its socket in
//! a private temporary directory and a short ControlPersist.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::command::Cmd;

/// Where commands run.
#[derive(Debug)]
pub enum Transport {
    Local,
    Ssh(Ssh),
}

impl Transport {
    /// The local command line that runs `remote` through this transport.
    pub fn carrier(&self, remote: &Cmd) -> Cmd {
        match self {
            Transport::Local => remote.clone(),
            Transport::Ssh(ssh) => ssh.carrier(&remote.to_string()),
        }
    }

    /// Runs `remote`, capturing its output whatever its exit status.
    pub fn capture(&self, remote: &Cmd) -> Result<Output> {
        self.carrier(remote).capture()
    }

    /// Runs `remote`; a non-zero exit is an error with its stderr. Over SSH, a failure
    /// of ssh itself (exit 255) is explained (refused, unreachable, …).
    pub fn output(&self, remote: &Cmd) -> Result<String> {
        let output = self.capture(remote)?;
        self.check(remote, &output)?;
        Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_string())
    }

    /// An error when ssh itself failed (named), or when `remote` exited non-zero.
    fn check(&self, remote: &Cmd, output: &Output) -> Result<()> {
        self.check_reached(output)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("`{remote}` failed on {self} ({}): {}", output.status, stderr.trim());
        }
        Ok(())
    }

    /// An error (named) when ssh itself failed, so the command never ran on the target;
    /// the command's own exit status is left to the caller.
    pub fn check_reached(&self, output: &Output) -> Result<()> {
        if let Transport::Ssh(ssh) = self
            && let Some(failure) = SshFailure::classify(output)
        {
            bail!("{}: {}", failure.message(&ssh.destination()), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }

    /// Runs `remote` with `input` as its standard input (a stream: nothing is held in
    /// memory or written to a temporary file), returning its output.
    pub fn output_with_input(&self, remote: &Cmd, input: &mut (dyn Read + Send)) -> Result<String> {
        let mut output = Vec::new();
        self.stream(remote, Some(input), &mut output)?;
        Ok(String::from_utf8_lossy(&output).trim_end().to_string())
    }

    /// Runs `remote`, streaming `input` (if any) to its stdin and its stdout to
    /// `output` as they flow: for image streams, which never touch a temporary file.
    /// The error names whichever side failed: the input, the transport, or the command.
    pub fn stream(&self, remote: &Cmd, input: Option<&mut (dyn Read + Send)>, output: &mut dyn Write) -> Result<u64> {
        let carrier = self.carrier(remote);
        let mut child = carrier.spawn_piped(input.is_some())?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().context("child stdout")?;
        let mut stderr = child.stderr.take().context("child stderr")?;
        let (sent, received, errors) = std::thread::scope(|scope| {
            let sender = scope.spawn(move || -> std::io::Result<u64> {
                match (input, stdin) {
                    (Some(input), Some(mut stdin)) => std::io::copy(input, &mut stdin),
                    _ => Ok(0),
                }
            });
            let collector = scope.spawn(move || {
                let mut text = Vec::new();
                let _ = stderr.read_to_end(&mut text);
                text
            });
            let received = std::io::copy(&mut stdout, output);
            (sender.join(), received, collector.join())
        });
        let status = child.wait().with_context(|| format!("waiting for `{carrier}`"))?;
        self.check(remote, &Output { status, stdout: Vec::new(), stderr: errors.unwrap_or_default() })?;
        match sent {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err).with_context(|| format!("sending input to `{remote}` on {self}")),
            Err(_) => bail!("the thread sending input to `{remote}` panicked"),
        }
        received.with_context(|| format!("reading the output of `{remote}` on {self}"))
    }

    /// Copies the local file `source` to `path` with `mode`, streamed.
    pub fn upload_file(&self, source: &Path, path: &str, mode: u32) -> Result<()> {
        let mut file = std::fs::File::open(source).with_context(|| format!("opening {}", source.display()))?;
        self.output_with_input(&upload_cmd(path, mode), &mut file)
            .with_context(|| format!("copying {} to {path} on {self}", source.display()))
            .map(drop)
    }

    /// Writes `bytes` to `path` with `mode`, atomically (a temporary file beside it,
    /// then a rename), creating the parent directory.
    pub fn upload(&self, bytes: &[u8], path: &str, mode: u32) -> Result<()> {
        self.output_with_input(&upload_cmd(path, mode), &mut &bytes[..])
            .with_context(|| format!("writing {path} on {self}"))
            .map(drop)
    }

    /// Closes the shared SSH connection, if any.
    pub fn close(&self) {
        if let Transport::Ssh(ssh) = self {
            ssh.close();
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Local => f.write_str("this machine"),
            Transport::Ssh(ssh) => f.write_str(&ssh.destination()),
        }
    }
}

/// The remote command that stores its standard input at `path` with `mode`.
pub fn upload_cmd(path: &str, mode: u32) -> Cmd {
    let script = "set -e; umask 077; dir=$(dirname \"$1\"); mkdir -p \"$dir\"; \
                  tmp=\"$1.upload.$$\"; cat > \"$tmp\"; chmod \"$2\" \"$tmp\"; mv -f \"$tmp\" \"$1\"";
    Cmd::new("sh").args(["-c", script, "upload"]).arg(path).arg(format!("{mode:o}"))
}

/// An SSH destination and the options every connection to it uses.
#[derive(Debug)]
pub struct Ssh {
    pub target: SshTarget,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// One shared connection for the whole run (true), or a new one per command.
    pub multiplex: bool,
    /// Private directory (0700) holding the ControlMaster socket.
    control_dir: PathBuf,
}

/// `[user@]host[:port]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// Parses `[user@]host[:port]` (`[v6]:port` for IPv6). Anything that could reach ssh
    /// as an option or smuggle words — a leading `-`, whitespace, control characters,
    /// shell metacharacters — is refused before ssh runs.
    pub fn parse(text: &str) -> Result<SshTarget> {
        let refuse = |why: &str| -> Result<SshTarget> {
            bail!(
                "host {text:?} is not a valid SSH target: {why}; write [user@]host[:port] or a name from [hosts] in deploy/deploy.toml"
            )
        };
        if text.is_empty() {
            return refuse("it is empty");
        }
        if text.starts_with('-') {
            return refuse("it begins with `-` and would be read as an ssh option");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("it holds whitespace or control characters");
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, text),
        };
        if let Some(user) = user
            && (user.is_empty()
                || user.starts_with('-')
                || !user.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            return refuse("the user name may hold only letters, digits, `.`, `_` and `-`");
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else { return refuse("an unclosed `[`") };
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return refuse("unexpected text after `]`"),
            }
        } else if rest.matches(':').count() == 1 {
            let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
            (host, Some(port))
        } else {
            (rest, None)
        };
        if host.is_empty()
            || host.starts_with('-')
            || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return refuse("the host may hold only letters, digits, `.`, `-` (an IPv6 address in [brackets])");
        }
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return refuse("the port must be a number 1–65535"),
            },
        };
        Ok(SshTarget { user: user.map(str::to_string), host: host.to_string(), port })
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?
        } else {
            f.write_str(&self.host)?
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl Ssh {
    /// A connection to `target`; the control socket lives in a new private directory.
    pub fn new(target: SshTarget) -> Result<Ssh> {
        let control_dir = private_temp_dir("cultivate-ssh")?;
        Ok(Ssh {
            target,
            identity_file: None,
            known_hosts_file: None,
            connect_timeout: Duration::from_secs(10),
            multiplex: true,
            control_dir,
        })
    }

    pub fn destination(&self) -> String {
        self.target.to_string()
    }

    /// The options of every ssh invocation, before the destination.
    pub fn options(&self) -> Vec<String> {
        let mut args = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
            "-o".to_string(),
            "ServerAliveInterval=15".to_string(),
        ];
        if self.multiplex {
            args.extend([
                "-o".to_string(),
                "ControlMaster=auto".to_string(),
                "-o".to_string(),
                format!("ControlPath={}/%C", self.control_dir.display()),
                "-o".to_string(),
                "ControlPersist=60".to_string(),
            ]);
        } else {
            args.extend([
                "-o".to_string(),
                "ControlMaster=no".to_string(),
                "-o".to_string(),
                "ControlPath=none".to_string(),
            ]);
        }
        if let Some(port) = self.target.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        if let Some(user) = &self.target.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(identity) = &self.identity_file {
            args.extend([
                "-i".to_string(),
                identity.display().to_string(),
                "-o".to_string(),
                "IdentitiesOnly=yes".to_string(),
            ]);
        }
        if let Some(known_hosts) = &self.known_hosts_file {
            args.extend(["-o".to_string(), format!("UserKnownHostsFile={}", known_hosts.display())]);
        }
        args
    }

    /// `ssh <options> -- <host> <remote command line>`: the remote line is one word,
    /// already quoted for the remote shell; `--` ends ssh's options.
    pub fn carrier(&self, remote_line: &str) -> Cmd {
        Cmd::new("ssh").args(self.options()).arg("--").arg(self.target.host.as_str()).arg(remote_line)
    }

    /// Ends the shared connection (`ssh -O exit`).
    pub fn close(&self) {
        if !self.multiplex {
            return;
        }
        let _ = Cmd::new("ssh")
            .args(self.options())
            .args(["-O", "exit", "--"])
            .arg(self.target.host.as_str())
            .capture_with_timeout(Duration::from_secs(5));
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

/// A new directory only this user can enter.
fn private_temp_dir(prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!("{prefix}-{}-{nanos}-{attempt}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a private directory under {}", base.display())
}

/// Why ssh itself failed (exit status 255), from what it printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SshFailure {
    Refused,
    Unreachable,
    UnknownHost,
    TimedOut,
    AuthenticationFailed,
    HostKeyChanged,
    HostKeyUnknown,
    Other,
}

impl SshFailure {
    /// `None` when ssh connected (the remote command's own exit status is not ours to explain).
    pub fn classify(output: &Output) -> Option<SshFailure> {
        if output.status.code() != Some(255) {
            return None;
        }
        Some(SshFailure::from_stderr(&String::from_utf8_lossy(&output.stderr)))
    }

    pub fn from_stderr(stderr: &str) -> SshFailure {
        let text = stderr.to_ascii_lowercase();
        if text.contains("remote host identification has changed") {
            SshFailure::HostKeyChanged
        } else if text.contains("host key verification failed") || text.contains("no ed25519 host key is known") {
            SshFailure::HostKeyUnknown
        } else if text.contains("connection refused") {
            SshFailure::Refused
        } else if text.contains("timed out") || text.contains("timeout") {
            SshFailure::TimedOut
        } else if text.contains("could not resolve hostname") || text.contains("name or service not known") {
            SshFailure::UnknownHost
        } else if text.contains("no route to host") || text.contains("network is unreachable") {
            SshFailure::Unreachable
        } else if text.contains("permission denied") || text.contains("too many authentication failures") {
            SshFailure::AuthenticationFailed
        } else {
            SshFailure::Other
        }
    }

    pub fn message(self, destination: &str) -> String {
        match self {
            SshFailure::Refused => {
                format!("cannot connect to {destination}: connection refused (is sshd running, and is the port right?)")
            }
            SshFailure::Unreachable => {
                format!("cannot connect to {destination}: host unreachable (check the address and the network)")
            }
            SshFailure::UnknownHost => {
                format!("cannot connect to {destination}: unknown host (the name does not resolve)")
            }
            SshFailure::TimedOut => {
                format!(
                    "cannot connect to {destination}: timed out (a firewall, or the wrong address; see ConnectTimeout)"
                )
            }
            SshFailure::AuthenticationFailed => format!(
                "cannot log in to {destination}: authentication failed (is your key in the user's ~/.ssh/authorized_keys, \
                 or loaded in ssh-agent?)"
            ),
            SshFailure::HostKeyChanged => format!(
                "refusing {destination}: its host key has changed since you last connected. If the host was reinstalled, \
                 remove the old key with `ssh-keygen -R <host>`; otherwise someone may be intercepting the connection"
            ),
            SshFailure::HostKeyUnknown => format!(
                "refusing {destination}: its host key is not known. Connect once with `ssh` to check and accept it"
            ),
            SshFailure::Other => format!("cannot connect to {destination}: ssh failed"),
        }
    }
}

#[cfg(test)]
mod tests;
