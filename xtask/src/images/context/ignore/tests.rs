use super::*;
use crate::support::project::Project;

fn excluded(rules: &str, path: &str) -> bool {
    DockerIgnore::parse(rules).unwrap().is_excluded(path)
}

// ---- the matching rules ----

#[test]
fn patterns_are_anchored_at_the_context_root() {
    assert!(excluded("*.pem", "key.pem"));
    assert!(!excluded("*.pem", "certs/key.pem"), "unlike .gitignore, a bare pattern is no match at depth");
    assert!(excluded("**/*.pem", "key.pem") && excluded("**/*.pem", "certs/deep/key.pem"));
    assert!(excluded("secrets", "secrets/token"), "a matched directory covers its contents");
    assert!(!excluded("secrets", "app/secrets"));
    assert!(excluded("app/secrets", "app/secrets/token"));
}

#[test]
fn star_and_question_mark_stay_within_one_path_element() {
    assert!(excluded("*", "a") && excluded("*", "a/b/c"), "through the parent");
    assert!(excluded("a/*.txt", "a/x.txt"));
    assert!(!excluded("a/*.txt", "a/b/x.txt"));
    assert!(!excluded("a*", "b/a"));
    assert!(excluded("?.txt", "a.txt"));
    assert!(!excluded("?.txt", "ab.txt"));
    assert!(!excluded("a?b", "a/b"));
}

#[test]
fn double_star_spans_any_number_of_elements() {
    for path in ["target", "a/target", "a/b/target", "a/b/target/debug/x"] {
        assert!(excluded("**/target", path), "{path}");
    }
    assert!(!excluded("**/target", "xtarget") && !excluded("**/target", "targets"));
    assert!(excluded("a/**", "a/b") && excluded("a/**", "a/b/c"));
    assert!(!excluded("a/**", "a"), "`a/**` is what is below a, not a");
    assert!(excluded("a/**/b", "a/b") && excluded("a/**/b", "a/x/y/b"));
    assert!(!excluded("a/**/b", "a/xb"));
    assert!(excluded("**", "anything/at/all"));
    assert!(excluded("**/*.log", "x.log") && excluded("**/*.log", "a/b/x.log"));
    assert!(excluded("a/**/*.log", "a/x.log") && !excluded("a/**/*.log", "b/x.log"));
}

#[test]
fn exceptions_apply_in_order_and_the_last_match_wins() {
    let rules = "*\n!keep\n!dir\ndir/drop";
    assert!(excluded(rules, "other"));
    assert!(!excluded(rules, "keep"));
    assert!(!excluded(rules, "dir/x"));
    assert!(excluded(rules, "dir/drop") && excluded(rules, "dir/drop/deeper"));
    let rules = "*.log\n!important.log\nimportant.log";
    assert!(excluded(rules, "important.log"), "a later exclusion wins over an earlier exception");
    assert!(!excluded("!a\na", "b"));
}

#[test]
fn the_root_allow_list_reincludes_one_file_below_an_excluded_directory() {
    let project = Project::locate().unwrap();
    let rules = fs::read_to_string(project.path(".dockerignore")).unwrap();
    let rules = rules.as_str();
    assert!(!excluded(rules, "target/release/backend-api"));
    for path in ["target", "target/release", "target/release/backend-api.d", "target/debug/backend-api", "README.md"] {
        assert!(excluded(rules, path), "{path}");
    }
    for path in ["backend-api/target/x", "xtask/.env", ".env.production", "tests/secrets/a", "backend-api/x.pem"] {
        assert!(excluded(rules, path), "{path}");
    }
    for path in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml", "backend-api/src/main.rs", "xtask/src/lib.rs"] {
        assert!(!excluded(rules, path), "{path}");
    }
}

#[test]
fn an_exception_does_not_reach_back_through_a_parent_it_skipped() {
    // The Docker CLI reuses the parent's results: `!a` was not tried on `a` (nothing
    // was excluded yet), so it does not rescue `a/b`.
    assert!(excluded("a/b\n!a", "a/b"));
    assert!(!excluded("a\n!a", "a/b"));
}

#[test]
fn lines_are_read_like_docker_reads_them() {
    let ignore =
        DockerIgnore::parse("\u{feff}/leading\r\n./dot/\n  spaced  \n# comment\n a/../b//c \n! kept\n").unwrap();
    let texts: Vec<(&str, bool)> = ignore.patterns.iter().map(|p| (p.text.as_str(), p.exception)).collect();
    assert_eq!(texts, [("leading", false), ("dot", false), ("spaced", false), ("b/c", false), ("kept", true)]);
    // `#` starts a comment only in the first column.
    assert!(excluded(" # not a comment", "# not a comment"));
    assert!(DockerIgnore::parse("# only\n\n   \n").unwrap().patterns.is_empty());
}

#[test]
fn escapes_and_classes_follow_filepath_match() {
    assert!(excluded("\\*.txt", "*.txt") && !excluded("\\*.txt", "a.txt"));
    assert!(excluded("[ab].txt", "a.txt") && excluded("[ab].txt", "b.txt") && !excluded("[ab].txt", "c.txt"));
    assert!(excluded("[^a].txt", "b.txt") && !excluded("[^a].txt", "a.txt"));
    assert!(excluded("file[0-9]", "file7") && !excluded("file[0-9]", "filex"));
    assert!(excluded("[\\]]", "]"));
    assert!(excluded("a.b", "a.b") && !excluded("a.b", "axb"), "regexp characters are literal");
    assert!(excluded("(x)+{y}$|", "(x)+{y}$|"));
}

#[test]
fn malformed_patterns_are_errors_with_their_line() {
    for (rules, line) in [("ok\n[", 2), ("[]", 1), ("a\\", 1), ("ok\nok\n!", 3), ("[-a]", 1), ("[a-]", 1), ("!/", 1)] {
        let message = format!("{:#}", DockerIgnore::parse(rules).unwrap_err());
        assert!(message.contains(&format!("line {line}")), "{rules:?}: {message}");
    }
}

#[test]
fn clean_matches_go() {
    for (path, cleaned) in [
        ("a/b", "a/b"),
        ("a/b/", "a/b"),
        ("./a", "a"),
        ("a//b", "a/b"),
        ("a/../b", "b"),
        ("../a", "../a"),
        ("a/../..", ".."),
        ("/../a", "/a"),
        ("/", "/"),
        (".", "."),
        ("a/..", "."),
    ] {
        assert_eq!(clean(path), cleaned, "{path}");
    }
}
