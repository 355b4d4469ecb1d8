use proptest::prelude::*;

use super::*;
use crate::model::image::Image;
use crate::support::command::Cmd;

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
        backup: None,
        started: None,
        bytes_shipped: None,
    }
}

fn versions(list: &[&str]) -> Vec<String> {
    list.iter().map(|v| v.to_string()).collect()
}

#[test]
fn rollback_goes_to_the_release_that_ran_before_the_current_one() {
    use ReleaseStatus::*;
    let history = History {
        deployments: vec![entry("v1", Active), entry("v2", Active), entry("v3", Failed)],
        ..History::default()
    };
    assert_eq!(history.current().unwrap().version, "v2");
    let existing = versions(&["v1", "v2", "v3"]);
    assert_eq!(history.rollback_target(None, &existing).unwrap().version, "v1");
    assert_eq!(history.rollback_target(Some("v1"), &existing).unwrap().version, "v1");
}

#[test]
fn rollback_errors_list_the_releases_on_the_host() {
    use ReleaseStatus::*;
    let history = History { deployments: vec![entry("v1", Active)], ..History::default() };
    let existing = versions(&["v1"]);
    let none = format!("{:#}", history.rollback_target(None, &existing).unwrap_err());
    assert!(none.contains("no earlier release") && none.contains("v1"), "{none}");
    let unknown = format!("{:#}", history.rollback_target(Some("v9"), &existing).unwrap_err());
    assert!(unknown.contains("\"v9\"") && unknown.contains("releases on the host: v1"), "{unknown}");
    let failed = History { deployments: vec![entry("v1", Active), entry("v2", Failed)], ..History::default() };
    let message = format!("{:#}", failed.rollback_target(Some("v2"), &versions(&["v1", "v2"])).unwrap_err());
    assert!(message.contains("no release \"v2\" that ran"), "{message}");
}

#[test]
fn a_release_whose_directory_is_gone_is_not_a_rollback_target() {
    use ReleaseStatus::*;
    let history = History {
        deployments: vec![entry("v1", Active), entry("v2", Active), entry("v3", Active)],
        ..History::default()
    };
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
    let history = History { deployments: vec![state], ..History::default() };
    let text = history.to_json();
    assert!(text.contains("\"status\": \"rolled_back\""), "{text}");
    assert_eq!(History::parse(&text, "x").unwrap(), history);
}

#[test]
fn locks_are_stale_when_their_holder_is_dead_here_or_silent_elsewhere() {
    let mut lock = LockHolder::new("deploy", "v1");
    // Ours and alive, however old or silent.
    lock.since = "2000-01-01T00:00:00Z".into();
    assert!(!lock.is_stale(Some(100_000), 60));
    // A dead process on this machine: stale at once (issue 12: a killed deploy's lock
    // refused every deploy for 30 minutes).
    let mut dead = LockHolder::new("deploy", "v1");
    dead.pid = 4_000_000;
    assert!(dead.is_stale(Some(0), 60));
    // Another machine, with heartbeats: judged by the time since the last beat as
    // the host counts it, however long ago it was taken.
    let mut remote = LockHolder::new("deploy", "v1");
    remote.origin = "elsewhere".into();
    remote.heartbeat_seconds = Some(15);
    remote.since = "2000-01-01T00:00:00Z".into();
    assert!(!remote.is_stale(Some(5), 60));
    assert!(remote.is_stale(Some(61), 60));
    assert!(remote.is_stale(None, 60), "no reading of the file's age: cannot be shown alive");
    // Without heartbeats (an older xtask): judged by its age.
    remote.heartbeat_seconds = None;
    assert!(remote.is_stale(Some(5), 60));
    remote.since = now_rfc3339();
    assert!(!remote.is_stale(Some(500), 60));
    // A lock record from before heartbeats still reads.
    let old = r#"{"who":"a@b","since":"2000-01-01T00:00:00Z","pid":1,"origin":"b","version":"v","operation":"deploy"}"#;
    assert_eq!(serde_json::from_str::<LockHolder>(old).unwrap().heartbeat_seconds, None);
}

#[test]
fn heartbeats_fit_several_times_in_the_timeout() {
    for timeout in [1, 3, 10, 60, 1800] {
        let beat = heartbeat_interval(timeout).as_secs();
        assert!((1..=15).contains(&beat), "{timeout}: {beat}");
        assert!(timeout < 4 || beat * 4 <= u64::from(timeout), "{timeout}: {beat}");
    }
}

fn sh_output(cmd: &Cmd, input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_string()
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
fn the_lock_is_taken_once_released_by_its_holder_only_and_taken_over_by_compare_and_swap() {
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

    // A takeover swaps the record only while the lock holds what was read.
    assert_eq!(sh(&take_lock_cmd(&path), &ours.to_json()), 0);
    let mut next = ours.clone();
    next.version = "v2".into();
    assert_eq!(sh_output(&takeover_lock_cmd(&path, &other.to_json()), &next.to_json()), "changed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ours.to_json());
    assert_eq!(sh_output(&takeover_lock_cmd(&path, &ours.to_json()), &next.to_json()), "taken");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), next.to_json());
    // One takeover at a time; a guard a killed takeover left is not forever.
    std::fs::write(format!("{path}.takeover"), "").unwrap();
    assert_eq!(sh_output(&takeover_lock_cmd(&path, &next.to_json()), ""), "busy");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), next.to_json());
    let old = std::process::Command::new("touch").args(["-d", "2 minutes ago", &format!("{path}.takeover")]).status();
    assert!(old.unwrap().success());
    assert_eq!(sh_output(&takeover_lock_cmd(&path, &next.to_json()), ""), "busy", "removes the old guard");
    assert!(!std::path::Path::new(&format!("{path}.takeover")).exists());
    assert_eq!(sh_output(&takeover_lock_cmd(&path, &next.to_json()), &ours.to_json()), "taken");
    // The heartbeat touches only a lock that is still ours.
    assert_eq!(sh(&renew_lock_cmd(&path, &ours), ""), 0);
    assert_ne!(sh(&renew_lock_cmd(&path, &other), ""), 0);
    let listing = sh_output(&read_lock_cmd(&path), "");
    let (silent, text) = parse_lock_listing(&listing).unwrap();
    assert!(silent.is_some_and(|s| (0..5).contains(&s)), "{listing}");
    assert_eq!(text.trim(), ours.to_json().trim());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(parse_lock_listing(&sh_output(&read_lock_cmd(&path), "")), None);
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

#[test]
fn keep_releases_of_one_still_keeps_the_rollback_target() {
    let history = History {
        deployments: vec![entry("v1", ReleaseStatus::Active), entry("v2", ReleaseStatus::Active)],
        ..History::default()
    };
    let existing = versions(&["v1", "v2"]);
    assert_eq!(history.prunable(&existing, 1, &["v2"]), Vec::<String>::new());
    let history = History {
        deployments: vec![
            entry("v1", ReleaseStatus::Active),
            entry("v2", ReleaseStatus::Active),
            entry("v3", ReleaseStatus::Active),
        ],
        ..History::default()
    };
    assert_eq!(history.prunable(&versions(&["v1", "v2", "v3"]), 1, &["v3"]), versions(&["v1"]));
}

#[test]
fn only_this_tools_log_names_are_prunable() {
    let ours = log_file_name(LoggedTask::Deploy, "2026-12-03T07:42:30.099192071Z", "b5d1c55-dirty");
    assert_eq!(ours, "deploy-2026-12-03T074230.099192071Z-b5d1c55-dirty.log");
    assert!(is_own_log_name(&ours));
    assert!(is_own_log_name(&log_file_name(LoggedTask::Rollback, &crate::support::log::now_rfc3339(), "none")));
    assert!(is_own_log_name("deploy-2026-12-03T074230Z-v1.log"), "a whole second has no fraction");
    // Every task that writes a log writes one pruning knows (issue 13: `certs`,
    // `backup` and `restore` logs were left out and piled up).
    for task in LoggedTask::ALL {
        let name = log_file_name(task, &crate::support::log::now_rfc3339(), "database");
        assert!(is_own_log_name(&name), "{name}");
    }
    for foreign in [
        "dpkg.log",
        "alternatives.log",
        "bootstrap.log",
        "dockerd.log",
        "important.log",
        "deploy.log",
        "deploy-v1.log",
        "deploy-2026-12-03T074230Z-.log",
        "deploy-2026-12-03T074230Z-v1.log.1",
        "deploy-2026-12-03T074230Z-../x.log",
        "deploy-2026-12-03T07:42:30Z-v1.log",
        "upgrade-2026-12-03T074230Z-v1.log",
        "xdeploy-2026-12-03T074230Z-v1.log",
    ] {
        assert!(!is_own_log_name(foreign), "{foreign} counted as ours");
    }
    let listing = "deploy-2026-12-03T074233Z-v3.log\ndpkg.log\nrollback-2026-12-03T074232Z-v2.log\nimportant.log\n\
                   deploy-2026-12-03T074231Z-v1.log\nalternatives.log\n";
    assert_eq!(prunable_logs(listing, 1), ["rollback-2026-12-03T074232Z-v2.log", "deploy-2026-12-03T074231Z-v1.log"]);
    assert_eq!(prunable_logs(listing, 3), Vec::<String>::new());
}

/// Issue 9, item 1: with the log path a shared directory (`/var/log`), pruning
/// removed every `*.log` beyond the newest N. Run for real through `sh`.
#[test]
fn pruning_logs_in_a_shared_directory_removes_only_this_tools_logs() {
    let dir = std::env::temp_dir().join(format!("cultivate-logs-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let foreign = ["dpkg.log", "alternatives.log", "bootstrap.log", "dockerd.log", "important.log"];
    for name in foreign {
        std::fs::write(dir.join(name), "not ours").unwrap();
    }
    let ours: Vec<String> = (1..=4)
        .map(|i| log_file_name(LoggedTask::Deploy, &format!("2026-12-03T07:42:3{i}Z"), &format!("v{i}")))
        .collect();
    for (i, name) in ours.iter().enumerate() {
        std::fs::write(dir.join(name), "ours").unwrap();
        // Distinct modification times, oldest first.
        let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + i as u64);
        std::fs::File::options().write(true).open(dir.join(name)).unwrap().set_modified(when).unwrap();
    }
    let dir_text = dir.to_string_lossy().into_owned();
    let listing = Cmd::new(&list_logs_cmd(&dir_text).program).args(list_logs_cmd(&dir_text).args).output().unwrap();
    let old = prunable_logs(&listing, 2);
    assert_eq!(old, [ours[1].clone(), ours[0].clone()]);
    // A hostile name handed to the remove command is dropped, not run.
    let mut names = old.clone();
    names.push("../important.log".into());
    names.push("important.log".into());
    assert_eq!(sh(&remove_logs_cmd(&dir_text, &names), ""), 0);
    for name in foreign {
        assert!(dir.join(name).exists(), "{name} was deleted");
    }
    assert!(!dir.join(&ours[0]).exists() && !dir.join(&ours[1]).exists());
    assert!(dir.join(&ours[2]).exists() && dir.join(&ours[3]).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 9, item 1 (its siblings): removing releases touches only directories this
/// tool wrote under `releases/`.
#[test]
fn removing_releases_leaves_what_the_tool_did_not_write() {
    let dir = std::env::temp_dir().join(format!("cultivate-releases-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = dir.to_string_lossy().into_owned();
    let layout = Layout { base: base.clone(), releases: format!("{base}/releases") };
    for version in ["v1", "v2", "notes"] {
        std::fs::create_dir_all(dir.join("releases").join(version)).unwrap();
    }
    std::fs::write(dir.join("releases/v1/release.json"), "{}").unwrap();
    std::fs::write(dir.join("releases/v2/release.json"), "{}").unwrap();
    std::fs::create_dir_all(dir.join("keep")).unwrap();
    std::fs::write(dir.join("keep/release.json"), "{}").unwrap();
    std::os::unix::fs::symlink(dir.join("keep"), dir.join("releases/link")).unwrap();
    let cmd = remove_releases_cmd(&layout, &versions(&["v1", "notes", "link", "..", "../keep"]));
    assert!(!cmd.args.iter().any(|a| a.contains("..")), "{cmd}");
    assert_eq!(sh(&cmd, ""), 0);
    assert!(!dir.join("releases/v1").exists(), "a release was not removed");
    assert!(dir.join("releases/v2").exists());
    assert!(dir.join("releases/notes").exists(), "a directory without release.json was removed");
    assert!(dir.join("keep/release.json").exists(), "a symlinked directory was followed");
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // Property 28: previous deployment preservation. Pruning never removes the current
    // release, the release a rollback would go to, or a protected (new) release, for
    // every `keep` from 1 (at 1, the rollback target used to go).
    #[test]
    fn property_28_pruning_keeps_current_and_rollback_target(
        statuses in prop::collection::vec(0u8..3, 1..12),
        keep in 1usize..6,
    ) {
        let deployments: Vec<DeploymentState> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let status = [ReleaseStatus::Active, ReleaseStatus::Failed, ReleaseStatus::RolledBack][*s as usize];
                entry(&format!("v{}", i % 5), status)
            })
            .collect();
        let history = History { deployments, ..History::default() };
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

fn image(service: &str, version: &str, layers: &[&str], config: &str) -> Image {
    Image {
        service: service.into(),
        reference: format!("cultivate-{service}:{version}"),
        id: format!("sha256:{config}"),
        layers: layers.iter().map(|l| l.to_string()).collect(),
        config_fingerprint: config.into(),
        size_bytes: 0,
    }
}

/// Issue 12: every image got the new version's tag, so compose recreated all three
/// containers, the database included, on any deploy. An image unchanged since the
/// current release keeps that release's name.
#[test]
fn images_unchanged_since_the_current_release_keep_its_names() {
    let mut current = entry("v1", ReleaseStatus::Active);
    current.images = vec![
        image("database", "v0", &["base", "pg"], "db"),
        image("backend-api", "v1", &["base", "api1"], "api1"),
        image("web-frontend", "v1", &["base", "web"], "web"),
    ];
    let history = History { deployments: vec![current], ..History::default() };
    let new = vec![
        image("database", "v2", &["base", "pg"], "db"),
        image("backend-api", "v2", &["base", "api2"], "api2"),
        // The same layers under another config (a changed label or command): changed.
        image("web-frontend", "v2", &["base", "web"], "web2"),
    ];
    let (kept, carried) = history.carry_over_unchanged(new.clone());
    let references: Vec<&str> = kept.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(references, ["cultivate-database:v0", "cultivate-backend-api:v2", "cultivate-web-frontend:v2"]);
    assert_eq!(carried, ["database"]);
    assert_eq!(kept[0].id, new[0].id, "the image itself is the one built now");

    // Nothing recorded to compare with: every image keeps its new name.
    assert_eq!(History::default().carry_over_unchanged(new.clone()).0, new);
    // A record without a config fingerprint (written before there were any) never
    // matches: the image is shipped and named anew rather than trusted.
    let mut old = entry("v1", ReleaseStatus::Active);
    old.images = vec![Image { config_fingerprint: String::new(), ..image("database", "v0", &["base", "pg"], "") }];
    let unknown = History { deployments: vec![old], ..History::default() };
    assert!(unknown.carry_over_unchanged(new).1.is_empty());
}

/// The secrets and certificates directories no release left on the host names go; the
/// ones a release names stay, whatever else is in the directory.
#[test]
fn unused_secrets_and_certificate_directories_are_removed() {
    let dir = std::env::temp_dir().join(format!("cultivate-content-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = dir.join("config");
    let releases = dir.join("releases");
    for sub in ["secrets-aaaa", "secrets-bbbb", "certs-cccc", "certs-dddd", "other"] {
        std::fs::create_dir_all(config.join(sub)).unwrap();
        std::fs::write(config.join(sub).join("file"), "x").unwrap();
    }
    std::fs::create_dir_all(releases.join("v1")).unwrap();
    let env = format!("SECRETS_PATH='{0}/secrets-aaaa'\nCERT_PATH={0}/certs-dddd\n", config.display());
    std::fs::write(releases.join("v1/.env"), env).unwrap();
    // A cluster's release names its secrets in its stack file.
    std::fs::create_dir_all(releases.join("v2")).unwrap();
    let stack = format!(
        "secrets:\n  api_key:\n    name: cultivate_api_key_bbbb\n    file: {}/secrets-bbbb/api_key\n",
        config.display()
    );
    std::fs::write(releases.join("v2/stack.yml"), stack).unwrap();
    let cmd = remove_unused_content_dirs_cmd(&config.to_string_lossy(), &releases.to_string_lossy());
    assert_eq!(sh(&cmd, ""), 0);
    let mut left: Vec<String> =
        std::fs::read_dir(&config).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["certs-dddd", "other", "secrets-aaaa", "secrets-bbbb"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
