//! Running cargo from the xtask and its tests: the cargo that runs us, and where cargo
//! says it put what it built (CARGO_TARGET_DIR, `build.target-dir` and `build.target`
//! all move it, so no path is guessed).

use std::path::PathBuf;

use crate::support::command::Cmd;

/// `cargo <args>` with the cargo that runs this process (CARGO), else the one on PATH.
pub fn cargo(args: &[&str]) -> Cmd {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    Cmd::new(program).args(args.iter().copied())
}

/// The flag that makes `cargo build` print its JSON messages on stdout, diagnostics
/// rendered on stderr as usual.
pub const JSON_MESSAGES: &str = "--message-format=json-render-diagnostics";

/// The executable cargo reports having built for the binary target `name`, from its
/// [`JSON_MESSAGES`] (the last one wins; other lines are skipped).
pub fn built_executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == name
                && message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_read_from_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"backend-api"}"#,
            "\nnot json\n",
            r#"{"reason":"compiler-artifact","target":{"name":"backend-api","kind":["bin"]},"#,
            r#""executable":"/elsewhere/x86_64-unknown-linux-gnu/release/backend-api"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            built_executable(messages, "backend-api"),
            Some(PathBuf::from("/elsewhere/x86_64-unknown-linux-gnu/release/backend-api"))
        );
        assert_eq!(built_executable(messages, "xtask"), None);
        assert_eq!(built_executable(messages, "serde"), None, "a library is no executable");
    }
}
