//! Where to reach a target over SSH, as written in deploy.toml or on the command line:
//! `[user@]host[:port]`, validated before ssh ever sees it.

use std::fmt;

use anyhow::{Result, bail};

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
