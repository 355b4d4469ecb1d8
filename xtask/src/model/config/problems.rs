//! Problems, reported together: every one found in a configuration at once.

use std::fmt;

use crate::support::project::CONFIG_FILE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Missing { key: String, why: &'static str },
    Invalid { key: String, value: String, expected: String },
    Unknown { key: String, suggestion: Option<String> },
    Conflict { message: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key, why } => write!(f, "missing `{key}` ({why})"),
            Problem::Invalid { key, value, expected } => write!(f, "`{key}` = {value}: {expected}"),
            Problem::Unknown { key, suggestion: Some(s) } => write!(f, "unknown key `{key}` (did you mean `{s}`?)"),
            Problem::Unknown { key, suggestion: None } => write!(f, "unknown key `{key}`"),
            Problem::Conflict { message } => f.write_str(message),
        }
    }
}

/// Every problem found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The keys reported missing, in order.
    pub fn missing_keys(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter_map(|p| match p {
                Problem::Missing { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        writeln!(f, "{}: {count} problem{}:", self.source, if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        write!(f, "Every key is documented in {CONFIG_FILE}.")
    }
}

impl std::error::Error for ConfigError {}
