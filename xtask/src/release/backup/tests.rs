use super::*;

fn record(name: &str) -> BackupRecord {
    BackupRecord {
        name: name.to_string(),
        version: "abc1234".into(),
        created: "2026-12-04T10:00:00Z".into(),
        reason: "backup".into(),
        by: "me@here".into(),
        database: "cultivate".into(),
        bytes: 10,
        sha256: "00".into(),
    }
}

#[test]
fn backup_names_sort_by_time_and_carry_the_version() {
    let at = time::OffsetDateTime::from_unix_timestamp(1_796_400_000).unwrap();
    let name = backup_name(&at, "abc1234-dirty");
    assert_eq!(name, "20261204T160000Z-abc1234-dirty.dump");
    assert!(is_backup_name(&name));
    for foreign in [
        "20261130T080000Z-.dump",
        "20261130T080000Z-v1.sql",
        "2026113T080000Z-v1.dump",
        "20261130T080000Z-../x.dump",
        "20261130T080000Z-a b.dump",
        "notes.dump",
        "x20261130T080000Z-v1.dump",
    ] {
        assert!(!is_backup_name(foreign), "{foreign}");
    }
}

#[test]
fn the_newest_backups_are_kept_and_foreign_records_ignored() {
    let names = ["20261201T000000Z-a.dump", "20261203T000000Z-c.dump", "20261202T000000Z-b.dump"];
    let mut text: String = names.iter().map(|n| serde_json::to_string(&record(n)).unwrap() + "\n").collect();
    text.push_str("{\"not\": \"a record\"}\n");
    text.push_str("unrecorded 20261130T080000Z-v0.dump 4096\n");
    text.push_str("unrecorded notes.dump 12\n");
    text.push_str(&(serde_json::to_string(&record("../../etc/passwd")).unwrap() + "\n"));
    let records = parse_list(&text);
    let listed: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        listed,
        ["20261130T080000Z-v0.dump", "20261201T000000Z-a.dump", "20261202T000000Z-b.dump", "20261203T000000Z-c.dump"]
    );
    // A backup whose record was never written is listed (and so pruned) from its name.
    let unrecorded = &records[0];
    assert_eq!(
        (unrecorded.version.as_str(), unrecorded.created.as_str(), unrecorded.bytes, unrecorded.sha256.as_str()),
        ("v0", "2026-11-30T08:00:00Z", 4096, "")
    );
    assert_eq!(prunable(&records, 3), ["20261130T080000Z-v0.dump"]);
    assert!(prunable(&records, 4).is_empty());
    assert!(prunable(&records, 10).is_empty());
    let remove = remove_cmd("/b", &["20261201T000000Z-a.dump".to_string(), "../x".to_string()]);
    assert!(!remove.to_string().contains("../x"), "{remove}");
}

#[test]
fn the_database_a_dump_holds_is_read_from_its_listing() {
    let listing = ";\n; Archive created at 2026-12-04 10:00:00 UTC\n;     dbname: cultivate\n;     TOC Entries: 12\n";
    assert_eq!(dumped_database(listing).as_deref(), Some("cultivate"));
    assert_eq!(dumped_database("; nothing here\n"), None);
}

/// A stand-in for the runtime: `exec CONTAINER pg_dump …` prints `$FAKE_DUMP`, or
/// fails when it is `fail`.
fn fake_runtime(dir: &std::path::Path) -> String {
    let path = dir.join("fake-docker");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = exec ] && [ \"$3\" = pg_dump ] || exit 64\n\
         [ \"$FAKE_DUMP\" = fail ] && { echo 'pg_dump: error: connection failed' >&2; printf partial; exit 1; }\n\
         printf '%s' \"$FAKE_DUMP\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn a_dump_is_written_private_and_whole_or_not_at_all() {
    let root = std::env::temp_dir().join(format!("cultivate-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let program = fake_runtime(&root);
    let dir = root.join("backups").display().to_string();

    let out = dump_cmd(&program, "db", "cultivate", &dir, "20261204T100000Z-v1.dump")
        .env("FAKE_DUMP", "PGDMP-bytes")
        .output()
        .unwrap();
    let file = root.join("backups/20261204T100000Z-v1.dump");
    assert_eq!(std::fs::read(&file).unwrap(), b"PGDMP-bytes");
    let expected = crate::support::digest::sha256(b"PGDMP-bytes");
    assert_eq!(out.trim(), format!("{} 11", expected.trim_start_matches("sha256:")));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(root.join("backups")).unwrap().permissions().mode() & 0o777, 0o700);

    // A failing pg_dump leaves neither a backup nor its partial file.
    let failed = dump_cmd(&program, "db", "cultivate", &dir, "20261204T110000Z-v1.dump")
        .env("FAKE_DUMP", "fail")
        .output()
        .unwrap_err();
    assert!(format!("{failed:#}").contains("connection failed"), "{failed:#}");
    let left: Vec<String> = std::fs::read_dir(root.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["20261204T100000Z-v1.dump"]);
    // Listed by the host's shell: without its record, from its name and size.
    let listed = parse_list(&list_cmd(&dir).output().unwrap());
    assert_eq!((listed.len(), listed[0].bytes), (1, 11), "{listed:?}");
    std::fs::write(
        root.join("backups/20261204T100000Z-v1.dump.json"),
        serde_json::to_string(&record("20261204T100000Z-v1.dump")).unwrap(),
    )
    .unwrap();
    let listed = parse_list(&list_cmd(&dir).output().unwrap());
    assert_eq!((listed.len(), listed[0].reason.as_str()), (1, "backup"), "{listed:?}");
    std::fs::remove_dir_all(&root).unwrap();
}
