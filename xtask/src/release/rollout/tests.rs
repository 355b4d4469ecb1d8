//! The deploy lock against a scripted host that keeps the lock file: what a killed
//! holder or a killed taker leaves behind is taken over, a live holder never.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::host::scripted::{Reply, Scripted};
use crate::host::transport::Transport;
use crate::model::paths::DeploymentPaths;
use crate::model::platform::TargetOs;
use crate::model::service::Service;
use crate::release::stack::ContainerState;
use crate::release::state::DeploymentState;
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
        ("sh", "read-lock") => match files.get(arg(3)) {
            Some(text) => Reply::ok(format!("silent 0\n{}", String::from_utf8_lossy(text))),
            None => Reply::ok(""),
        },
        ("sh", "takeover-lock") => {
            let now = files.get(arg(3)).map(|f| String::from_utf8_lossy(f).trim().to_string());
            if now.as_deref() == Some(arg(4)) {
                files.insert(arg(3).to_string(), input.to_vec());
                Reply::ok("taken")
            } else {
                Reply::ok("changed")
            }
        }
        ("sh", "release-lock") => {
            files.remove(arg(3));
            Reply::ok("")
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
        let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &self.config, None).unwrap();
        Session::for_tests("scripted", Transport::Scripted(self.script.clone()), &self.log, paths)
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
    assert!(fixture.script.lines().iter().any(|l| l.contains("takeover-lock")));
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
        assert_eq!(lines.iter().filter(|l| l.contains("read-lock")).count(), 2, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("takeover-lock")), "{lines:?}");
    }
}

/// A lock file that cannot be created at all is an error that says why, not a lock
/// "changing hands" (taking it is retried only while another taker could be at it).
#[test]
fn a_lock_that_cannot_be_created_names_the_cause() {
    let config = Config::parse("[app]\nname = \"cultivate\"\n", "deploy.toml", &|_| None).unwrap();
    let log = Log::new(false);
    let script = Scripted::new(|cmd, _| match cmd.args.get(2).map(String::as_str) {
        Some("take-lock") => Reply::fail(1, "mkdir: cannot create directory '/opt/cultivate': Permission denied"),
        _ => Reply::ok(""),
    });
    let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &config, None).unwrap();
    let session = Session::for_tests("scripted", Transport::Scripted(script), &log, paths);
    let message = format!("{:#}", Lock::take(&session, &config, "deploy", "v2").err().expect("no lock"));
    assert!(message.contains("could not create /opt/cultivate/deploy.lock"), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
}

/// Issue 12: two deploys that find the same stale lock at once must not both take it
/// (a takeover used to `mv` whatever lock was there by then, the winner's included).
/// Real `sh` on this machine's file system, many rounds.
#[test]
fn two_takers_racing_for_a_stale_lock_exactly_one_wins() {
    let dir = std::env::temp_dir().join(format!("cultivate-lock-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("[app]\nname = \"cultivate\"\n[paths]\ndeployment = \"{}\"\n", dir.display());
    let config = Config::parse(&text, "deploy.toml", &|_| None).unwrap();
    let paths = DeploymentPaths::resolve(TargetOs::Linux, "root", &config, None).unwrap();
    let log = Log::new(false);
    let session = || Session::for_tests("local", Transport::Local, &log, paths.clone());
    let lock_path = format!("{}/deploy.lock", paths.base);
    std::fs::create_dir_all(&paths.base).unwrap();
    let mut dead = LockHolder::new("deploy", "v1");
    dead.pid = 4_000_000;
    for round in 0..100 {
        std::fs::write(&lock_path, dead.to_json()).unwrap();
        let start = std::sync::Barrier::new(2);
        let (first, second) = (session(), session());
        let outcomes: Vec<bool> = std::thread::scope(|s| {
            let takers: Vec<_> = [&first, &second]
                .map(|session| {
                    let start = &start;
                    let config = &config;
                    s.spawn(move || {
                        start.wait();
                        // Held until both have tried: dropping releases it.
                        Lock::take(session, config, "deploy", "v2").map(std::mem::forget).is_ok()
                    })
                })
                .into_iter()
                .collect();
            takers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|won| **won).count(), 1, "round {round}: {outcomes:?}");
        let held: LockHolder = serde_json::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
        assert_eq!(held.version, "v2", "round {round}");
        std::fs::remove_file(&lock_path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn container(service: Service, image: &str) -> ContainerState {
    ContainerState {
        name: format!("cultivate-{}-1", service.compose_name()),
        service: service.compose_name().into(),
        image: image.into(),
        status: "running".into(),
        exit_code: 0,
        health: Some("healthy".into()),
        health_output: None,
        host_ports: Vec::new(),
        restart_count: 0,
    }
}

fn release(version: &str) -> DeploymentState {
    DeploymentState {
        version: version.into(),
        timestamp: "2026-12-04T00:00:00Z".into(),
        target_host: "h".into(),
        deployed_by: "t@h".into(),
        images: Service::ALL
            .iter()
            .map(|s| crate::model::image::Image {
                service: s.name().into(),
                reference: format!("cultivate-{}:{version}", s.name()),
                id: "sha256:0".into(),
                layers: Vec::new(),
                config_fingerprint: String::new(),
                size_bytes: 0,
            })
            .collect(),
        configuration_hash: String::new(),
        status: crate::release::state::ReleaseStatus::Active,
        health_checks: Vec::new(),
        replaced: None,
        backup: None,
        started: None,
        bytes_shipped: None,
    }
}

/// Issue 12: a deploy killed while its release started left v2 running while the
/// history named v1, and nothing said so. `drift` is what `status` reports and what
/// `deploy` and `rollback` act on.
#[test]
fn drift_names_each_service_that_runs_something_other_than_the_current_release() {
    let v1 = release("v1");
    let on = |version: &str| -> Vec<ContainerState> {
        Service::ALL.iter().map(|s| container(*s, &format!("cultivate-{}:{version}", s.name()))).collect()
    };
    assert!(drift(Some(&v1), &on("v1")).is_empty());
    assert!(drift(None, &[]).is_empty(), "a new host");
    // Podman lists its images under localhost/.
    let podman: Vec<ContainerState> =
        Service::ALL.iter().map(|s| container(*s, &format!("localhost/cultivate-{}:v1", s.name()))).collect();
    assert!(drift(Some(&v1), &podman).is_empty());

    let mut half = on("v1");
    half[1] = container(Service::ALL[1], &format!("cultivate-{}:v2", Service::ALL[1].name()));
    let found = drift(Some(&v1), &half);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(":v2") && found[0].contains("current release v1"), "{found:?}");
    assert_eq!(drift(Some(&v1), &on("v2")).len(), Service::ALL.len());
    let found = drift(Some(&v1), &on("v1")[..Service::ALL.len() - 1]);
    assert!(found.len() == 1 && found[0].contains("has no container"), "{found:?}");
    let found = drift(None, &on("v2"));
    assert!(found.len() == 1 && found[0].contains("no release is recorded"), "{found:?}");
    // A backend swap cut short: the old backend beside a new one.
    let mut two = on("v1");
    let mut newcomer = container(Service::ALL[1], &format!("cultivate-{}:v2", Service::ALL[1].name()));
    newcomer.name.push_str("-2");
    two.push(newcomer);
    let found = drift(Some(&v1), &two);
    assert!(found.len() == 1 && found[0].contains(":v2") && found[0].contains("-2)"), "{found:?}");
}
