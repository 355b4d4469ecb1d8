use proptest::prelude::*;

use super::*;
use crate::command::Cmd;

fn entry(version: &str, status: ReleaseStatus) -> DeploymentState {
    DeploymentState {
        version: version.into(),
        timestamp: "2026-11-23T10:00:00Z".into(),
        target_host: "prod".into(),
        deployed_by: "me@here".into(),
        images: Vec::new(),
        configuration_hash: "abc".into(),
        status,
        health_checks: Vec::new(),
        replaced: None,
    }
}

fn versions(list: &[&str]) -> Vec<String> {
    list.iter().map(|v| v.to_string()).collect()
}

#[test]
fn rollback_goes_to_the_release_that_ran_before_the_current_one() {
    use ReleaseStatus::*;
    let history = History { deployments: vec![entry("v1", Active), entry("v2", Active), entry("v3", Failed)] };
    assert_eq!(history.current().unwrap().version, "v2");
    let existing = versions(&["v1", "v2", "v3"]);
    assert_eq!(history.rollback_target(None, &existing).unwrap().version, "v1");
    assert_eq!(history.rollback_target(Some("v1"), &existing).unwrap().version, "v1");
}

#[test]
fn rollback_errors_list_the_releases_on_the_host() {
    use ReleaseStatus::*;
    let history = History { deployments: vec![entry("v1", Active)] };
    let existing = versions(&["v1"]);
    let none = format!("{:#}", history.rollback_target(None, &existing).unwrap_err());
    assert!(none.contains("no earlier release") && none.contains("v1"), "{none}");
    let unknown = format!("{:#}", history.rollback_target(Some("v9"), &existing).unwrap_err());
    assert!(unknown.contains("\"v9\"") && unknown.contains("releases on the host: v1"), "{unknown}");
    let failed = History { deployments: vec![entry("v1", Active), entry("v2", Failed)] };
    let message = format!("{:#}", failed.rollback_target(Some("v2"), &versions(&["v1", "v2"])).unwrap_err());
    assert!(message.contains("no release \"v2\" that ran"), "{message}");
}

#[test]
fn a_release_whose_directory_is_gone_is_not_a_rollback_target() {
    use ReleaseStatus::*;
    let history = History { deployments: vec![entry("v1", Active), entry("v2", Active), entry("v3", Active)] };
    assert_eq!(history.rollback_target(None, &versions(&["v1", "v3"])).unwrap().version, "v1");
}

#[test]
fn empty_history_text_is_a_new_host_and_garbage_is_an_error() {
    assert_eq!(History::parse("  \n", "/x").unwrap(), History::default());
    let message = format!("{:#}", History::parse("{not json", "/srv/deployments.json").unwrap_err());
    assert!(message.contains("/srv/deployments.json"), "{message}");
}

#[test]
fn history_round_trips_through_json() {
    let mut state = entry("v1", ReleaseStatus::RolledBack);
    state.replaced = Some("v2".into());
    let history = History { deployments: vec![state] };
    let text = history.to_json();
    assert!(text.contains("\"status\": \"rolled_back\""), "{text}");
    assert_eq!(History::parse(&text, "x").unwrap(), history);
}

#[test]
fn locks_are_stale_only_when_old_and_not_known_alive() {
    let mut lock = LockHolder::new("deploy", "v1");
    // Ours and alive, however old.
    lock.since = "2000-01-01T00:00:00Z".into();
    assert!(!lock.is_stale(60));
    // A dead process on this machine, but the lock is fresh.
    let mut dead = LockHolder::new("deploy", "v1");
    dead.pid = 4_000_000;
    assert!(!dead.is_stale(60));
    dead.since = "2000-01-01T00:00:00Z".into();
    assert!(dead.is_stale(60));
    // Another machine: judged by age.
    let mut remote = LockHolder::new("deploy", "v1");
    remote.origin = "elsewhere".into();
    assert!(!remote.is_stale(60));
    remote.since = "2000-01-01T00:00:00Z".into();
    assert!(remote.is_stale(60));
}

fn sh(cmd: &Cmd, input: &str) -> i32 {
    use std::io::Write;
    let mut child = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn the_lock_is_taken_once_released_by_its_holder_only_and_retired_atomically() {
    let dir = std::env::temp_dir().join(format!("cultivate-lock-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("sub/deploy.lock").to_string_lossy().into_owned();
    let ours = LockHolder::new("deploy", "v1");
    assert_eq!(sh(&take_lock_cmd(&path), &ours.to_json()), 0);
    assert_eq!(sh(&take_lock_cmd(&path), "other"), 3, "a held lock is refused");
    let mut other = ours.clone();
    other.pid += 1;
    assert_eq!(sh(&release_lock_cmd(&path, &other), ""), 0);
    assert!(std::path::Path::new(&path).exists(), "someone else's release leaves the lock");
    assert_eq!(sh(&release_lock_cmd(&path, &ours), ""), 0);
    assert!(!std::path::Path::new(&path).exists());

    assert_eq!(sh(&take_lock_cmd(&path), &ours.to_json()), 0);
    assert_eq!(sh(&retire_lock_cmd(&path, ours.pid), ""), 0);
    assert_ne!(sh(&retire_lock_cmd(&path, ours.pid), ""), 0, "only one taker retires a stale lock");
    assert_eq!(sh(&take_lock_cmd(&path), &ours.to_json()), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn current_is_repointed_atomically() {
    let dir = std::env::temp_dir().join(format!("cultivate-current-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("releases/v1")).unwrap();
    std::fs::create_dir_all(dir.join("releases/v2")).unwrap();
    let base = dir.to_string_lossy().into_owned();
    let layout = Layout { base: base.clone(), releases: format!("{base}/releases") };
    for version in ["v1", "v2", "v1"] {
        assert_eq!(sh(&point_current_cmd(&layout, version), ""), 0);
        let target = std::fs::read_link(layout.current()).unwrap();
        assert_eq!(target.to_string_lossy(), layout.release_dir(version));
    }
    let listed = Cmd::new(&list_releases_cmd(&layout).program).args(list_releases_cmd(&layout).args).output().unwrap();
    assert_eq!(listed, "v1\nv2");
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // Property 28: previous deployment preservation. Pruning never removes the current
    // release, the release a rollback would go to, or a protected (new) release.
    #[test]
    fn property_28_pruning_keeps_current_and_rollback_target(
        statuses in prop::collection::vec(0u8..3, 1..12),
        keep in 2usize..5,
    ) {
        let deployments: Vec<DeploymentState> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let status = [ReleaseStatus::Active, ReleaseStatus::Failed, ReleaseStatus::RolledBack][*s as usize];
                entry(&format!("v{}", i % 5), status)
            })
            .collect();
        let history = History { deployments };
        let mut existing: Vec<String> = history.deployments.iter().map(|d| d.version.clone()).collect();
        existing.sort();
        existing.dedup();
        let prunable = history.prunable(&existing, keep, &["v4"]);
        prop_assert!(!prunable.contains(&"v4".to_string()));
        if let Some(current) = history.current() {
            prop_assert!(!prunable.contains(&current.version));
        }
        if let Ok(target) = history.rollback_target(None, &existing) {
            prop_assert!(!prunable.contains(&target.version), "{} pruned", target.version);
        }
    }
}
