//! A real browser for the tests: headless Chromium loads a loopback page, runs its
//! scripts (fetches included) and hands back the DOM they left.
//!
//! `--virtual-time-budget` makes Chromium fast-forward timers while it is idle and hold
//! virtual time while a fetch is pending, so the DOM is dumped once the page's own
//! requests have finished, not after a guessed sleep. Each load gets a new, empty
//! profile that is removed afterwards, and a hard time limit after which Chromium is
//! killed. A machine without Chromium fails the test with the fix, never skips it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::support::command::{Cmd, TimedOutput, is_not_found};

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium is killed when one page load takes longer than this.
pub const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Virtual milliseconds the page may run (timers fast-forward, fetches are waited for).
pub const VIRTUAL_TIME_BUDGET_MS: u32 = 5_000;

/// Page loads [`rendered_dom_containing`] tries before it gives up.
pub const ATTEMPTS: usize = 3;

const NOT_INSTALLED: &str =
    "Chromium is not installed: run `apt-get install -y chromium` or `cargo xtask verify --install`";

/// Whether `url` is plain HTTP(S) to this machine: `localhost`, `127.0.0.0/8` or `[::1]`,
/// with an optional port and no user information.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return false,
                },
            },
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|port| !port.is_empty() && port.parse::<u16>().is_ok());
    let host_ok = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && host_ok
}

/// The command that loads `url` headless with the profile `user_data_dir` and prints
/// the DOM once the page has settled.
pub fn chromium_command(url: &str, user_data_dir: &Path) -> Cmd {
    Cmd::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", user_data_dir.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .arg("--dump-dom")
        .arg(url)
}

/// Loads `url` (loopback only) in headless Chromium and returns the DOM as serialized
/// after the page's scripts ran.
pub fn rendered_dom(url: &str) -> Result<String> {
    dump_dom(url, PAGE_LOAD_LIMIT)
}

/// Like [`rendered_dom`], but loads the page again (up to [`ATTEMPTS`] times) until the
/// serialized DOM contains `expect`; the error quotes the last DOM.
pub fn rendered_dom_containing(url: &str, expect: &str) -> Result<String> {
    let mut dom = String::new();
    for attempt in 1..=ATTEMPTS {
        dom = rendered_dom(url)?;
        if dom.contains(expect) {
            return Ok(dom);
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    bail!("after {ATTEMPTS} loads of {url} the DOM still does not contain {expect:?}; the last one:\n{dom}")
}

fn dump_dom(url: &str, limit: Duration) -> Result<String> {
    if !is_loopback_url(url) {
        bail!("the test browser loads loopback URLs only (http://127.0.0.1:…, http://localhost:…), not {url:?}");
    }
    if !Path::new(CHROMIUM).exists() {
        bail!("{NOT_INSTALLED} ({CHROMIUM} is missing)");
    }
    let profile = Profile::create()?;
    let cmd = profile.isolate(chromium_command(url, &profile.user_data_dir()));
    let output = match cmd.capture_with_timeout(limit) {
        Ok(TimedOutput::Finished(output)) => output,
        Ok(TimedOutput::TimedOut) => bail!("Chromium did not finish loading {url} within {limit:?} and was killed"),
        Err(e) if is_not_found(&e) => return Err(e.context(NOT_INSTALLED)),
        Err(e) => return Err(e),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || stdout.trim().is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("`{cmd}` failed ({}) without a DOM; the end of its stderr:\n{}", output.status, tail.join("\n"));
    }
    Ok(stdout)
}

/// A new, empty directory for one Chromium run: the profile (`profile/`), and the
/// temp, config and cache directories Chromium would otherwise share with the machine
/// (its singleton socket, its crash database). Removed on drop, after any Chromium
/// process still using it is killed.
struct Profile(PathBuf);

impl Profile {
    fn create() -> Result<Profile> {
        use std::os::unix::fs::DirBuilderExt;
        let root = std::env::temp_dir().join(crate::unique("chromium-profile"));
        // Left behind by a killed process that had this pid: not ours to keep.
        let _ = std::fs::remove_dir_all(&root);
        let profile = Profile(root);
        for dir in [profile.0.clone(), profile.user_data_dir(), profile.0.join("tmp"), profile.0.join("xdg")] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating the Chromium profile {}", dir.display()))?;
        }
        Ok(profile)
    }

    fn user_data_dir(&self) -> PathBuf {
        self.0.join("profile")
    }

    /// Runs `cmd` with this directory's temp, config and cache directories.
    fn isolate(&self, cmd: Cmd) -> Cmd {
        let xdg = self.0.join("xdg");
        cmd.env("TMPDIR", self.0.join("tmp").to_string_lossy())
            .env("XDG_CONFIG_HOME", xdg.to_string_lossy())
            .env("XDG_CACHE_HOME", xdg.to_string_lossy())
    }

    /// Chromium's helper processes (zygotes, renderers, services, the crash handler) are
    /// not killed with the browser and may write here for a moment. Each names a path in
    /// this directory on its command line, which no other process does.
    fn kill_stragglers(&self) {
        let marker = format!("{}/", self.0.display());
        for _ in 0..50 {
            let alive = processes_mentioning(&marker);
            if alive.is_empty() {
                return;
            }
            for pid in alive {
                // SAFETY: kill(2) on a pid read from /proc; at worst it no longer exists.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        self.kill_stragglers();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Live (not zombie) processes whose command line contains `text`. Chromium rewrites
/// its helpers' command lines as one space-separated string, so this is a substring
/// match, not a match of whole arguments.
fn processes_mentioning(text: &str) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
                .unwrap_or(true);
            !zombie && contains_bytes(&cmdline, text.as_bytes())
        })
        .collect()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;

    /// The tests below that start Chromium count the profiles left in the temp dir.
    static CHROMIUM_RUNS: Mutex<()> = Mutex::new(());

    fn leftover_profiles() -> Vec<PathBuf> {
        let prefix = format!("ct-{}-chromium-profile-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(&prefix)))
            .collect()
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080",
            "http://127.0.0.1/",
            "http://127.1.2.3:1/x?y#z",
            "http://localhost:3000/index.html",
            "https://LOCALHOST/",
            "http://[::1]:8080/",
            "http://[::1]",
        ] {
            assert!(is_loopback_url(url), "{url} refused");
        }
        for url in [
            "http://example.com/",
            "http://10.0.0.1:80/",
            "http://127.0.0.1.example.com/",
            "http://127.0.0.1@example.com/",
            "http://user@127.0.0.1/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:/",
            "http://[::2]:80/",
            "http://[::1]x/",
            "file:///etc/passwd",
            "ftp://127.0.0.1/",
            "--headless",
            "http://127.0.0.1:80/ --remote-debugging-port=9",
            "",
        ] {
            assert!(!is_loopback_url(url), "{url} accepted");
        }
    }

    #[test]
    fn other_urls_are_refused_before_chromium_starts() {
        let err = rendered_dom("http://example.com/").unwrap_err();
        assert!(format!("{err:#}").contains("loopback URLs only"), "{err:#}");
    }

    #[test]
    fn the_command_is_headless_with_its_own_profile_and_the_url_last() {
        let cmd = chromium_command("http://127.0.0.1:1/", Path::new("/tmp/profile"));
        assert_eq!(cmd.program, CHROMIUM);
        for flag in ["--headless", "--no-sandbox", "--disable-background-networking", "--dump-dom"] {
            assert!(cmd.args.iter().any(|arg| arg == flag), "{flag} missing from {cmd}");
        }
        assert!(cmd.args.contains(&"--user-data-dir=/tmp/profile".to_string()), "{cmd}");
        assert!(cmd.args.iter().any(|arg| arg.starts_with("--virtual-time-budget=")), "{cmd}");
        assert_eq!(cmd.args.last().map(String::as_str), Some("http://127.0.0.1:1/"));
    }

    /// Serves `/` (a page loading `/page.js`), `/page.js` (fetches `/data` and renders
    /// it with textContent) and `/data`, on a loopback port.
    fn serve_page() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || answer(stream));
            }
        });
        port
    }

    fn answer(mut stream: TcpStream) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let request = String::from_utf8_lossy(&request);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (content_type, body) = match path {
            "/" => (
                "text/html",
                "<!doctype html><html><head><script src=\"/page.js\" defer></script></head><body><p id=\"out\">loading</p></body></html>",
            ),
            "/page.js" => (
                "text/javascript",
                "setTimeout(function () { fetch('/data').then(function (r) { return r.text(); }).then(function (t) { document.getElementById('out').textContent = t; }); }, 1000);",
            ),
            "/data" => ("text/plain", "rendered <i>late</i> & escaped"),
            _ => ("text/plain", ""),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    #[test]
    fn the_dom_is_dumped_after_timers_and_fetches_ran() {
        let _serial = CHROMIUM_RUNS.lock().unwrap_or_else(|e| e.into_inner());
        let port = serve_page();
        let dom = rendered_dom_containing(
            &format!("http://127.0.0.1:{port}/"),
            "<p id=\"out\">rendered &lt;i&gt;late&lt;/i&gt; &amp; escaped</p>",
        )
        .unwrap();
        assert!(!dom.contains("<i>late</i>"), "{dom}");
        assert_eq!(leftover_profiles(), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_page_that_never_answers_is_killed_at_the_limit() {
        let _serial = CHROMIUM_RUNS.lock().unwrap_or_else(|e| e.into_inner());
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let started = Instant::now();
        let err = dump_dom(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).unwrap_err();
        assert!(format!("{err:#}").contains("was killed"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
        assert_eq!(leftover_profiles(), Vec::<PathBuf>::new());
    }
}
