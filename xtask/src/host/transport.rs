//! The transport seam: where a command runs. `Local` runs it on this machine; `Ssh`
//! runs it on a target through the system OpenSSH client, so the user's ~/.ssh/config,
//! agent and known_hosts apply. Commands stay values ([`Cmd`]) until run here, and the
//! local command line that carries a remote one is itself a value (`carrier`), so
//! tests can assert it and `--dry-run` can print it.
//!
//! One multiplexed SSH connection serves a whole run: ControlMaster with its socket in
//! a private directory with a short path (a Unix socket path holds at most 103 bytes on
//! macOS) and a short ControlPersist.
//!
//! Keys are OpenSSH's business: ~/.ssh/config, the agent and `identity_file` all apply,
//! and nothing is refused in advance. When a login fails, `ssh -G` tells which keys ssh
//! would have offered, so a machine with none at all is told how to make one.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::model::ssh_target::SshTarget;
use crate::support::command::Cmd;

/// Where commands run.
#[derive(Debug)]
pub enum Transport {
    Local,
    Ssh(Ssh),
    /// Answered by a test's script: no process is started.
    Scripted(crate::host::scripted::Scripted),
}

impl Transport {
    /// The local command line that runs `remote` through this transport.
    pub fn carrier(&self, remote: &Cmd) -> Cmd {
        match self {
            Transport::Local | Transport::Scripted(_) => remote.clone(),
            Transport::Ssh(ssh) => ssh.carrier(&remote.to_string()),
        }
    }

    /// Runs `remote`, capturing its output whatever its exit status.
    pub fn capture(&self, remote: &Cmd) -> Result<Output> {
        match self {
            Transport::Scripted(script) => Ok(script.run(remote, &[])),
            _ => self.carrier(remote).capture(),
        }
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
        if let Transport::Scripted(_) = self
            && output.status.code() == Some(255)
        {
            bail!("the connection to {self} was lost: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        if let Transport::Ssh(ssh) = self
            && let Some(failure) = SshFailure::classify(output)
        {
            let mut message =
                format!("{}: {}", failure.message(&ssh.destination()), String::from_utf8_lossy(&output.stderr).trim());
            if failure == SshFailure::AuthenticationFailed
                && let KeyOffer::Nothing { tried } = ssh.key_offer()
            {
                message.push('\n');
                message.push_str(&no_key_message(&tried));
            }
            bail!("{message}");
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
        if let Transport::Scripted(script) = self {
            let mut given = Vec::new();
            if let Some(input) = input {
                input.read_to_end(&mut given).with_context(|| format!("sending input to `{remote}` on {self}"))?;
            }
            let answered = script.run(remote, &given);
            self.check(remote, &answered)?;
            output.write_all(&answered.stdout)?;
            return Ok(answered.stdout.len() as u64);
        }
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
            Transport::Scripted(_) => f.write_str("the scripted host"),
        }
    }
}

/// The remote command that stores its standard input at `path` with `mode`.
pub fn upload_cmd(path: &str, mode: u32) -> Cmd {
    // The temporary file is created fresh (`set -C`: never one that is there already,
    // nor through a symlink) and removed if the upload fails, so a failed upload
    // leaves nothing behind and removes nothing it did not create.
    let script = "set -e; umask 077; dir=$(dirname \"$1\"); mkdir -p \"$dir\"; \
                  tmp=\"$1.upload.$$\"; (set -C; : > \"$tmp\"); trap 'rm -f -- \"$tmp\"' EXIT; \
                  cat >> \"$tmp\"; chmod \"$2\" \"$tmp\"; mv -f \"$tmp\" \"$1\"; trap - EXIT";
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
    /// Private directory (0700, short path) holding the ControlMaster socket.
    control_dir: PathBuf,
}

impl Ssh {
    /// A connection to `target`; the control socket lives in a new private directory
    /// with a short path (see [`control_base`]).
    pub fn new(target: SshTarget) -> Result<Ssh> {
        Ssh::new_in(target, &std::env::temp_dir())
    }

    /// As [`Ssh::new`], with `temp_dir` standing for the temporary directory.
    fn new_in(target: SshTarget, temp_dir: &Path) -> Result<Ssh> {
        let control_dir = private_control_dir(temp_dir)?;
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

    /// What ssh would offer to log in with (`ssh -G` with this connection's options):
    /// [`KeyOffer::Something`] whenever that cannot be told.
    pub fn key_offer(&self) -> KeyOffer {
        let settings = Cmd::new("ssh").arg("-G").args(self.options()).arg("--").arg(self.target.host.as_str());
        let text = match settings.capture_with_timeout(Duration::from_secs(10)) {
            Ok(crate::support::command::TimedOutput::Finished(output)) if output.status.success() => {
                String::from_utf8_lossy(&output.stdout).into_owned()
            }
            _ => return KeyOffer::Something,
        };
        key_offer(&text, std::env::home_dir().as_deref(), &agent_has_keys)
    }

    /// Ends the shared connection (`ssh -O exit`), if one was made.
    pub fn close(&self) {
        if !self.multiplex || std::fs::read_dir(&self.control_dir).is_ok_and(|mut entries| entries.next().is_none()) {
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

/// The longest Unix socket path, with its terminating NUL (`sun_path`: 104 bytes on
/// macOS and the BSDs, 108 on Linux).
pub const SOCKET_PATH_LIMIT: usize = 104;
/// What `%C` becomes: a SHA-1 in hex.
const CONTROL_NAME_LEN: usize = 40;
/// While it sets the master up, ssh binds `<ControlPath>.<16 random characters>`, then
/// renames it (OpenSSH mux.c): the longest path it creates.
const MASTER_TEMP_SUFFIX_LEN: usize = 17;
const CONTROL_DIR_PREFIX: &str = "cultivate-";
/// Random characters after the prefix.
const CONTROL_DIR_RANDOM_LEN: usize = 8;

/// The longest socket path ssh creates for `ControlPath=<dir>/%C`, NUL not counted.
pub fn longest_control_socket(dir: &Path) -> usize {
    dir.as_os_str().len() + 1 + CONTROL_NAME_LEN + MASTER_TEMP_SUFFIX_LEN
}

/// Where the control directory goes: the temporary directory when its socket paths fit
/// the limit, else `/tmp` (macOS's TMPDIR, /var/folders/…/T/, is too long).
pub fn control_base(temp_dir: &Path) -> PathBuf {
    let name = "x".repeat(CONTROL_DIR_PREFIX.len() + CONTROL_DIR_RANDOM_LEN);
    if temp_dir.is_absolute() && longest_control_socket(&temp_dir.join(name)) < SOCKET_PATH_LIMIT {
        temp_dir.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

/// A new directory only this user can enter, under [`control_base`], with a short
/// random name. mkdir(2) creates it with mode 0700 or fails on anything already there
/// (a directory or a symlink someone else made): nothing existing is ever used.
/// `Drop for Ssh` removes it.
fn private_control_dir(temp_dir: &Path) -> Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    let base = control_base(temp_dir);
    for attempt in 0..100u32 {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u32(attempt);
        let random = format!("{:016x}", hasher.finish());
        let dir = base.join(format!("{CONTROL_DIR_PREFIX}{}", &random[..CONTROL_DIR_RANDOM_LEN]));
        match create_private_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a private directory under {}", base.display())
}

/// mkdir(2) with mode 0700: fails if `dir` exists in any form, symlinks included.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// What ssh would offer to log in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOffer {
    /// An identity file that exists, an agent holding keys, or something that cannot be
    /// told from here (a PKCS#11 provider, a path with tokens).
    Something,
    /// Nothing at all: `tried` are the identity files ssh looks for, none of which exists.
    Nothing { tried: Vec<String> },
}

/// [`KeyOffer`] from `ssh -G` output (`settings`). `home` expands `~` and `%d`;
/// `agent_has_keys` is asked about the agent's socket (`None`: `$SSH_AUTH_SOCK`).
pub fn key_offer(settings: &str, home: Option<&Path>, agent_has_keys: &dyn Fn(Option<&str>) -> bool) -> KeyOffer {
    let mut tried = Vec::new();
    let mut agent: Option<Option<&str>> = Some(None);
    for line in settings.lines() {
        let Some((key, value)) = line.trim().split_once(' ') else { continue };
        let value = value.trim();
        match key.to_ascii_lowercase().as_str() {
            "identityfile" => match expand_identity(value, home) {
                Some(path) if !path.exists() => tried.push(value.to_string()),
                _ => return KeyOffer::Something,
            },
            "identityagent" => {
                agent = match value {
                    "none" => None,
                    "SSH_AUTH_SOCK" => Some(None),
                    path => Some(Some(path)),
                }
            }
            "pkcs11provider" if value != "none" => return KeyOffer::Something,
            _ => {}
        }
    }
    match agent {
        Some(socket) if agent_has_keys(socket) => KeyOffer::Something,
        _ => KeyOffer::Nothing { tried },
    }
}

/// An identity file's path as ssh reads it: `~` and `%d` are the home, `%%` is `%`;
/// `None` when it cannot be told here (other tokens, `${VAR}`, `~user`).
fn expand_identity(value: &str, home: Option<&Path>) -> Option<PathBuf> {
    let home = home.map(|home| home.display().to_string());
    let text = match value.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", home.as_deref()?),
        Some(_) => return None,
        None => value.to_string(),
    };
    if text.contains("${") {
        return None;
    }
    let mut path = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%') {
            (_, false) => path.push(c),
            (_, true) => match chars.next() {
                Some('%') => path.push('%'),
                Some('d') => path.push_str(home.as_deref()?),
                _ => return None,
            },
        }
    }
    Some(PathBuf::from(path))
}

/// Whether the agent at `socket` (`None`: `$SSH_AUTH_SOCK`) holds a key (`ssh-add -l`).
fn agent_has_keys(socket: Option<&str>) -> bool {
    let cmd = Cmd::new("ssh-add").arg("-l");
    let cmd = match socket {
        Some(socket) => cmd.env("SSH_AUTH_SOCK", socket),
        None if std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty()) => return false,
        None => cmd,
    };
    matches!(cmd.capture_with_timeout(Duration::from_secs(5)), Ok(crate::support::command::TimedOutput::Finished(o)) if o.status.success())
}

/// The explanation of a login that failed for want of any key, with the fixes.
pub fn no_key_message(tried: &[String]) -> String {
    let files = if tried.is_empty() { "no identity file".to_string() } else { tried.join(", ") };
    format!(
        "no SSH key to offer: ssh looked for {files} (none exists) and no ssh-agent holds a key. \
         Create a key with `ssh-keygen -t ed25519` and add its .pub to the user's ~/.ssh/authorized_keys on the host, \
         load an existing one with `ssh-add`, or name one with `identity_file` in [hosts.NAME] of deploy/deploy.toml \
         (or `IdentityFile` in ~/.ssh/config)"
    )
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
