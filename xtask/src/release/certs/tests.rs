use std::path::Path;

use super::*;

fn put_pair(dir: &Path, digest: &str, text: &str) {
    std::fs::create_dir_all(dir.join(digest)).unwrap();
    std::fs::write(dir.join(digest).join(CHAIN_FILE), format!("chain {text}")).unwrap();
    std::fs::write(dir.join(digest).join(KEY_FILE), format!("key {text}")).unwrap();
}

fn switch(dir: &Path, digest: &str) -> Result<String> {
    switch_cmd(&dir.display().to_string(), digest, false).output()
}

fn served(dir: &Path) -> (String, String) {
    (std::fs::read_to_string(dir.join(CHAIN_FILE)).unwrap(), std::fs::read_to_string(dir.join(KEY_FILE)).unwrap())
}

#[test]
fn a_new_pair_becomes_current_by_one_link_and_the_one_before_is_kept() {
    let dir = std::env::temp_dir().join(format!("cultivate-certs-switch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second, third) = ("0123456789abcdef", "fedcba9876543210", "00000000aaaaaaaa");

    put_pair(&dir, first, "one");
    assert_eq!(switch(&dir, first).unwrap().trim(), "changed");
    assert_eq!(served(&dir), ("chain one".into(), "key one".into()));
    assert!(std::fs::symlink_metadata(dir.join(CHAIN_FILE)).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(dir.join(KEY_FILE)).unwrap(), Path::new("current/privkey.pem"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(first).join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    assert_eq!(switch(&dir, first).unwrap().trim(), "same");

    put_pair(&dir, second, "two");
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    assert_eq!(switch(&dir, second).unwrap().trim(), format!("changed {first}"));
    assert_eq!(served(&dir), ("chain two".into(), "key two".into()));
    assert!(dir.join(first).is_dir(), "the pair before stays, for a switch back");

    put_pair(&dir, third, "three");
    assert_eq!(switch(&dir, third).unwrap().trim(), format!("changed {second}"));
    assert!(!dir.join(first).exists(), "pairs older than the previous one go");
    assert!(dir.join(second).is_dir() && dir.join("notes").is_dir(), "and nothing this tool did not write");

    // Switching back (what `certs` does when nginx refuses the new pair).
    assert_eq!(switch(&dir, second).unwrap().trim(), format!("changed {third}"));
    assert_eq!(served(&dir), ("chain two".into(), "key two".into()));

    // An incomplete pair is refused and the current one stays.
    std::fs::create_dir_all(dir.join("1111111111111111")).unwrap();
    let err = format!("{:#}", switch(&dir, "1111111111111111").unwrap_err());
    assert!(err.contains("is incomplete"), "{err}");
    assert_eq!(served(&dir), ("chain two".into(), "key two".into()));
    std::fs::remove_dir_all(&dir).unwrap();
}
