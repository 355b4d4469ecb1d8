//! The deploy lock against a scripted host that keeps the lock file: what a killed
//! holder or a killed taker leaves behind is taken over, a live holder never.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::host::probe::ComposeCommand;
use crate::host::scripted::{Reply, Scripted};
use crate::host::transport::Transport;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::{TargetOs, Version};
use crate::support::command::Cmd;
use crate::support::log::Log;

const LOCK: &str = "/opt/cultivate/deploy.lock";

/// Answers the lock's commands over an in-memory file system.
fn answer(files: &mut BTreeMap<String, Vec<u8>>, cmd: &Cmd, input: &[u8]) -> Reply {
    let arg = |i: usize| cmd.args.get(i).map(String::as_str).unwrap_or_default();
    match (cmd.program.as_str(), arg(2)) {
        ("sh", "take-lock") if files.contains_key(arg(3)) => Reply::fail(3, ""),
        ("sh", "take-lock") => {
            files.insert(arg(3).to_string(), input.to_vec());
            Reply::ok("")
        }
        ("sh", "read") => Reply::ok(String::from_utf8_lossy(files.get(arg(3)).map_or(&[][..], |f| f))),
        ("sh", "retire-lock") => match files.remove(arg(3)) {
            Some(_) => Reply::ok(""),
            None => Reply::fail(1, "mv: cannot stat"),
        },
        ("sh", "release-lock") => {
            files.remove(arg(3));
            Reply::ok("")
        }
        ("test", _) if arg(0) == "-e" => {
            if files.contains_key(arg(1)) {
                Reply::ok("")
            } else {
                Reply::fail(1, "")
            }
        }
        _ => Reply::ok(""),
    }
}

struct Fixture {
    config: Config,
    log: Log,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    script: Scripted,
}

impl Fixture {
    fn with_lock_file(content: &[u8]) -> Fixture {
        let config = Config::parse("[app]\nname = \"cultivate\"\n", "deploy.toml", &|_| None).unwrap();
        let files = Arc::new(Mutex::new(BTreeMap::from([(LOCK.to_string(), content.to_vec())])));
        let shared = Arc::clone(&files);
        let script = Scripted::new(move |cmd, input| answer(&mut shared.lock().unwrap(), cmd, input));
        Fixture { config, log: Log::new(false), files, script }
    }

    fn session(&self) -> Session<'_> {
        Session {
            name: "scripted".into(),
            transport: Transport::Scripted(self.script.clone()),
            log: &self.log,
            dry_run: false,
            os: TargetOs::Linux,
            user: "root".into(),
            uid: "0".into(),
            paths: DeploymentPaths::resolve(TargetOs::Linux, "root", &self.config, None).unwrap(),
            runtime: crate::host::runtime::RuntimeKind::Docker,
            compose: ComposeCommand::DockerV1(Version::parse("1.29.2").unwrap()),
            free_disk_bytes: None,
        }
    }

    /// Takes the lock; on success returns what the lock file held while it was ours.
    fn take(&self) -> Result<String> {
        let session = self.session();
        let lock = Lock::take(&session, &self.config, "deploy", "v2")?;
        let held = String::from_utf8_lossy(&self.files.lock().unwrap()[LOCK]).into_owned();
        drop(lock);
        assert!(!self.files.lock().unwrap().contains_key(LOCK), "the lock was not released");
        Ok(held)
    }
}

#[test]
fn a_dead_holder_on_this_machine_is_taken_over_at_once() {
    let mut dead = LockHolder::new("deploy", "v1");
    dead.pid = 4_000_000;
    let fixture = Fixture::with_lock_file(dead.to_json().as_bytes());
    let held = fixture.take().unwrap();
    assert!(held.contains(&format!("\"pid\":{}", std::process::id())), "{held}");
    assert!(fixture.script.lines().iter().any(|l| l.contains("retire-lock")));
}

#[test]
fn a_live_holder_is_never_taken_over() {
    let mut alive = LockHolder::new("deploy", "v1");
    alive.since = "2000-01-01T00:00:00Z".into();
    let fixture = Fixture::with_lock_file(alive.to_json().as_bytes());
    let message = format!("{:#}", fixture.take().unwrap_err());
    assert!(message.contains("is locked") && message.contains(&format!("pid {}", alive.pid)), "{message}");
    assert_eq!(fixture.files.lock().unwrap()[LOCK], alive.to_json().into_bytes());
}

/// A taker killed between creating the file and writing its record leaves it empty or
/// half-written; that used to refuse every deploy until removed by hand.
#[test]
fn an_empty_or_half_written_lock_file_is_taken_over_after_a_grace() {
    let half = LockHolder::new("deploy", "v1").to_json();
    for content in [&b""[..], &half.as_bytes()[..half.len() / 2]] {
        let fixture = Fixture::with_lock_file(content);
        let held = fixture.take().unwrap();
        assert!(held.contains(&format!("\"pid\":{}", std::process::id())), "{held}");
        let lines = fixture.script.lines();
        // Read twice (before and after the grace), then retired.
        assert_eq!(lines.iter().filter(|l| l.contains("read")).count(), 2, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("retire-lock")), "{lines:?}");
    }
}
