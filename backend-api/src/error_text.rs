//! Errors as one line of text, for logs and health reasons.
//!
//! The ground floor: every other module may use it, so it imports nothing of this crate.

/// An error and its chain of causes on one line: "error connecting to server: No such
/// file or directory (os error 2)". tokio-postgres keeps the useful part in the causes.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors (refinery's among them) already print their cause.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error, bool);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.1 { write!(f, "outer ({})", self.0) } else { f.write_str("outer") }
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn describe_includes_causes_once() {
        let cause = || std::io::Error::other("disk on fire");
        assert_eq!(describe(&Outer(cause(), false)), "outer: disk on fire");
        assert_eq!(describe(&Outer(cause(), true)), "outer (disk on fire)");
    }
}
