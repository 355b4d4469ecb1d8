use super::*;

#[test]
fn the_table_pads_every_column_but_the_last() {
    let rows = vec![
        vec!["web-1".to_string(), "v2".to_string(), "ok".to_string()],
        vec!["a-much-longer-host".to_string(), "v10".to_string(), "FAILED: unreachable".to_string()],
    ];
    let text = table(&["host", "version", "result"], &rows);
    assert_eq!(
        text,
        "  host                version  result\n  web-1               v2       ok\n  a-much-longer-host  v10      FAILED: unreachable\n"
    );
}

#[test]
fn several_failures_are_named_each_with_its_first_line() {
    let outcome =
        |name: &str, result: Result<u32>| HostOutcome { target: Target::Host(name.into()), result, seconds: 1.0 };
    let outcomes = vec![
        outcome("a", Ok(1)),
        outcome("b", Err(anyhow::anyhow!("b is unreachable\nmore detail"))),
        outcome("c", Err(anyhow::anyhow!("unhealthy"))),
    ];
    let message = conclude("deploy", outcomes).unwrap_err().to_string();
    assert_eq!(message, "deploy failed on 2 of 3 hosts:\n  b: b is unreachable\n  c: unhealthy");
    assert!(conclude("deploy", vec![outcome("a", Ok(1)), outcome("b", Ok(2))]).is_ok());
    let single = conclude("deploy", vec![outcome("b", Err(anyhow::anyhow!("b is unreachable\nmore detail")))]);
    assert_eq!(single.unwrap_err().to_string(), "b is unreachable\nmore detail", "one host: its error as it was");
}
