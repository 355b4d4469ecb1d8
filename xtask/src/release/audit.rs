//! The audit trail of a host: every deploy, rollback, restore, lock break and
//! certificate change, newest first, read from the host's history
//! (`deployments.json`), which is the only record.

use serde::Serialize;

use crate::release::state::{DeploymentState, History, HostEvent, ReleaseStatus};

/// One thing done to the host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, when it was recorded (when it ended).
    pub when: String,
    /// `user@machine`.
    pub who: String,
    /// deploy, rollback, automatic rollback, restore, lock break, certificates.
    pub action: String,
    /// The release it concerned (none for a lock break or a certificate change).
    pub version: Option<String>,
    /// healthy, failed, interrupted, restored, done.
    pub outcome: String,
    pub duration_seconds: Option<f64>,
    /// Compressed image bytes sent (deploys).
    pub bytes_shipped: Option<u64>,
    /// What else the record says: the backup taken before, what a rollback replaced,
    /// what a restore restored.
    pub detail: String,
}

/// The trail, newest first.
pub fn trail(history: &History) -> Vec<AuditEntry> {
    let mut entries: Vec<AuditEntry> = history
        .deployments
        .iter()
        .enumerate()
        .map(|(index, entry)| release_entry(entry, index.checked_sub(1).map(|i| &history.deployments[i])))
        .chain(history.events.iter().map(event_entry))
        .collect();
    // By time, newest first; equal times keep the history's order, reversed.
    entries.reverse();
    entries.sort_by_key(|entry| std::cmp::Reverse(parse(&entry.when).map(|t| t.unix_timestamp_nanos())));
    entries
}

fn release_entry(entry: &DeploymentState, before: Option<&DeploymentState>) -> AuditEntry {
    let (action, outcome) = match entry.status {
        ReleaseStatus::RolledBack => {
            // A deploy that failed restores the release before it, recorded right after.
            let automatic = before.is_some_and(|b| {
                b.status == ReleaseStatus::Failed && entry.replaced.as_deref() == Some(b.version.as_str())
            });
            (if automatic { "automatic rollback" } else { "rollback" }, "healthy")
        }
        ReleaseStatus::Active => ("deploy", "healthy"),
        ReleaseStatus::Failed => ("deploy", "failed"),
        ReleaseStatus::Pending => ("deploy", "interrupted"),
    };
    let mut detail = Vec::new();
    if let Some(replaced) = &entry.replaced {
        detail.push(format!("replaced {replaced}"));
    }
    match entry.backup.as_deref() {
        Some(skipped) if skipped.starts_with("skipped") => detail.push(format!("backup {skipped}")),
        Some(name) => detail.push(format!("backup {name}")),
        None => {}
    }
    AuditEntry {
        when: entry.timestamp.clone(),
        who: entry.deployed_by.clone(),
        action: action.to_string(),
        version: Some(entry.version.clone()),
        outcome: outcome.to_string(),
        duration_seconds: entry.started.as_deref().and_then(|started| seconds_between(started, &entry.timestamp)),
        bytes_shipped: entry.bytes_shipped,
        detail: detail.join("; "),
    }
}

fn event_entry(event: &HostEvent) -> AuditEntry {
    let action = match event.kind.as_str() {
        "lock-released" => "lock break",
        other => other,
    };
    AuditEntry {
        when: event.timestamp.clone(),
        who: event.by.clone(),
        action: action.to_string(),
        version: None,
        outcome: "done".to_string(),
        duration_seconds: event.duration_ms.map(|ms| ms as f64 / 1000.0),
        bytes_shipped: None,
        detail: event.detail.clone(),
    }
}

fn parse(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let seconds = (parse(to)? - parse(from)?).as_seconds_f64();
    (seconds >= 0.0).then_some((seconds * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, status: ReleaseStatus, at: &str) -> DeploymentState {
        DeploymentState {
            version: version.into(),
            timestamp: at.into(),
            target_host: "prod".into(),
            deployed_by: "ana@laptop".into(),
            images: Vec::new(),
            configuration_hash: String::new(),
            status,
            health_checks: Vec::new(),
            replaced: None,
            backup: None,
            started: None,
            bytes_shipped: None,
        }
    }

    #[test]
    fn every_kind_of_record_appears_newest_first_with_who_duration_and_bytes() {
        let history = History {
            deployments: vec![
                DeploymentState {
                    started: Some("2026-12-01T10:00:00Z".into()),
                    bytes_shipped: Some(108_540_000),
                    ..entry("v1", ReleaseStatus::Active, "2026-12-01T10:00:18.5Z")
                },
                DeploymentState {
                    backup: Some("20261202T100000Z-v1.dump".into()),
                    started: Some("2026-12-02T10:00:00Z".into()),
                    bytes_shipped: Some(2_010_000),
                    ..entry("v2", ReleaseStatus::Failed, "2026-12-02T10:00:40Z")
                },
                DeploymentState {
                    replaced: Some("v2".into()),
                    ..entry("v1", ReleaseStatus::RolledBack, "2026-12-02T10:00:48Z")
                },
                DeploymentState {
                    replaced: Some("v1".into()),
                    deployed_by: "bo@desk".into(),
                    backup: Some("skipped (--skip-backup)".into()),
                    ..entry("v3", ReleaseStatus::Active, "2026-12-03T09:00:00Z")
                },
                DeploymentState {
                    replaced: Some("v3".into()),
                    ..entry("v1", ReleaseStatus::RolledBack, "2026-12-04T09:00:00Z")
                },
            ],
            events: vec![
                HostEvent {
                    timestamp: "2026-12-02T12:00:00Z".into(),
                    kind: "lock-released".into(),
                    by: "bo@desk".into(),
                    detail: "released the deploy lock held by …".into(),
                    duration_ms: None,
                },
                HostEvent {
                    timestamp: "2026-12-03T12:00:00Z".into(),
                    kind: "restore".into(),
                    by: "ana@laptop".into(),
                    detail: "restored 20261202T100000Z-v1.dump".into(),
                    duration_ms: Some(9_400),
                },
            ],
        };
        let trail = trail(&history);
        let summary: Vec<(&str, &str, Option<&str>, &str)> = trail
            .iter()
            .map(|e| (e.when.as_str(), e.action.as_str(), e.version.as_deref(), e.outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("2026-12-04T09:00:00Z", "rollback", Some("v1"), "healthy"),
                ("2026-12-03T12:00:00Z", "restore", None, "done"),
                ("2026-12-03T09:00:00Z", "deploy", Some("v3"), "healthy"),
                ("2026-12-02T12:00:00Z", "lock break", None, "done"),
                ("2026-12-02T10:00:48Z", "automatic rollback", Some("v1"), "healthy"),
                ("2026-12-02T10:00:40Z", "deploy", Some("v2"), "failed"),
                ("2026-12-01T10:00:18.5Z", "deploy", Some("v1"), "healthy"),
            ]
        );
        let first = trail.last().unwrap();
        assert_eq!((first.duration_seconds, first.bytes_shipped), (Some(18.5), Some(108_540_000)));
        assert_eq!(trail[5].detail, "backup 20261202T100000Z-v1.dump");
        assert_eq!(
            (trail[2].who.as_str(), trail[2].detail.as_str()),
            ("bo@desk", "replaced v1; backup skipped (--skip-backup)")
        );
        assert_eq!(trail[1].duration_seconds, Some(9.4));
        assert_eq!(trail[0].duration_seconds, None, "no start recorded: no duration");
    }
}
