//! Settings read from the environment once, at start-up.
//!
//! Every value has a default that matches the production image, so the binary runs
//! with no environment at all. A value that is set but unusable is an error naming the
//! variable: starting with a silently substituted default would hide the mistake.

use std::env::{self, VarError};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// PostgreSQL as deployed: peer authentication over the Unix socket in a shared
/// volume, so there is no password and no TCP.
pub const DEFAULT_DATABASE_URL: &str = "postgresql://apiuser@/cultivate?host=/var/run/postgresql";
pub const DEFAULT_PORT: u16 = 3000;
pub const DEFAULT_APP_ENV: &str = "production";

/// Applied when `DATABASE_URL` sets no `connect_timeout`: a database that does not
/// answer must turn into a 503 quickly, not into a request that hangs.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Shown in `pg_stat_activity`, unless `DATABASE_URL` names something else.
const APPLICATION_NAME: &str = "cultivate-backend-api";

#[derive(Clone, Debug)]
pub struct Config {
    pub database: tokio_postgres::Config,
    pub port: u16,
    pub app_env: String,
}

/// A variable that is set to something the service cannot use.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| match env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err("the value is not valid UTF-8".to_owned()),
        })
    }

    /// Reads settings through `lookup`, which returns `Ok(None)` for an unset variable.
    /// Separate from [`Config::from_env`] so tests need not mutate the process environment.
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Result<Option<String>, String>) -> Result<Self, ConfigError> {
        let read = |variable: &'static str| lookup(variable).map_err(|problem| ConfigError { variable, problem });

        let database = parse_database_url(read("DATABASE_URL")?.as_deref().unwrap_or(DEFAULT_DATABASE_URL))
            .map_err(|problem| ConfigError { variable: "DATABASE_URL", problem })?;

        let port = match read("PORT")? {
            None => DEFAULT_PORT,
            Some(value) => parse_port(&value).map_err(|problem| ConfigError { variable: "PORT", problem })?,
        };

        let app_env = match read("APP_ENV")? {
            None => DEFAULT_APP_ENV.to_owned(),
            Some(value) if value.trim().is_empty() => {
                return Err(ConfigError {
                    variable: "APP_ENV",
                    problem: "must not be empty (e.g. \"production\")".to_owned(),
                });
            }
            Some(value) => value.trim().to_owned(),
        };

        Ok(Config { database, port, app_env })
    }
}

/// Parses a TCP port for the HTTP listener; also used by the `healthcheck` subcommand.
pub fn parse_port(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(0) => Err("must be between 1 and 65535, got 0".to_owned()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("must be a number between 1 and 65535, got {value:?}")),
    }
}

/// Parses a libpq-style URL or key=value string. A host starting with `/` is the
/// directory holding the server's Unix socket.
fn parse_database_url(value: &str) -> Result<tokio_postgres::Config, String> {
    // tokio-postgres echoes nothing of the input in its parse errors, so a password in
    // the URL cannot leak into the message.
    let mut config = tokio_postgres::Config::from_str(value.trim())
        .map_err(|error| format!("not a PostgreSQL connection string: {}", crate::error_text::describe(&error)))?;
    if config.get_hosts().is_empty() {
        return Err(
            "names no host; for the Unix socket add ?host=/var/run/postgresql (the socket directory)".to_owned()
        );
    }
    if config.get_dbname().is_none() {
        return Err("names no database (e.g. postgresql://apiuser@/cultivate?host=...)".to_owned());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok(config)
}

/// Where the pool connects, for the start-up log line. Never includes a password.
pub fn describe_database(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Unix(dir) => format!("unix socket in {}", dir.display()),
            Host::Tcp(name) => format!("tcp host {name}"),
        })
        .collect();
    format!(
        "database {} as user {} via {}",
        config.get_dbname().unwrap_or("?"),
        config.get_user().unwrap_or("(process user)"),
        hosts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn config_with(vars: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Config::from_lookup(|name| Ok(vars.get(name).cloned()))
    }

    #[test]
    fn defaults_match_the_production_image() {
        let config = config_with(&[]).unwrap();
        assert_eq!(config.port, 3000);
        assert_eq!(config.app_env, "production");
        assert_eq!(config.database.get_user(), Some("apiuser"));
        assert_eq!(config.database.get_dbname(), Some("cultivate"));
        assert_eq!(config.database.get_hosts(), &[Host::Unix(PathBuf::from("/var/run/postgresql"))]);
        assert_eq!(config.database.get_password(), None);
        assert_eq!(config.database.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
    }

    #[test]
    fn explicit_values_are_used() {
        let config = config_with(&[
            ("PORT", "8080"),
            ("APP_ENV", " staging "),
            ("DATABASE_URL", "postgresql://other@/otherdb?host=/tmp/sock&connect_timeout=7"),
        ])
        .unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.app_env, "staging");
        assert_eq!(config.database.get_dbname(), Some("otherdb"));
        assert_eq!(config.database.get_hosts(), &[Host::Unix(PathBuf::from("/tmp/sock"))]);
        assert_eq!(config.database.get_connect_timeout(), Some(&Duration::from_secs(7)));
    }

    #[test]
    fn key_value_connection_strings_are_accepted() {
        let config = config_with(&[("DATABASE_URL", "host=/run/pg user=apiuser dbname=cultivate")]).unwrap();
        assert_eq!(config.database.get_dbname(), Some("cultivate"));
    }

    #[test]
    fn bad_port_names_the_variable() {
        for bad in ["", "abc", "0", "65536", "-1", "30 00"] {
            let error = config_with(&[("PORT", bad)]).unwrap_err();
            assert_eq!(error.variable, "PORT", "value {bad:?}");
            assert!(error.to_string().starts_with("invalid PORT: "), "{error}");
        }
    }

    #[test]
    fn bad_database_url_names_the_variable() {
        for bad in [
            "postgresql://apiuser@/cultivate?host=/x&bogus_option=1",
            "postgresql://apiuser@/cultivate",
            "postgresql://apiuser@/?host=/var/run/postgresql",
            "not a url at all",
        ] {
            let error = config_with(&[("DATABASE_URL", bad)]).unwrap_err();
            assert_eq!(error.variable, "DATABASE_URL", "value {bad:?}");
        }
    }

    #[test]
    fn empty_app_env_is_rejected() {
        let error = config_with(&[("APP_ENV", "  ")]).unwrap_err();
        assert_eq!(error.variable, "APP_ENV");
    }

    #[test]
    fn lookup_failures_name_the_variable() {
        let error =
            Config::from_lookup(
                |name| {
                    if name == "PORT" { Err("the value is not valid UTF-8".to_owned()) } else { Ok(None) }
                },
            )
            .unwrap_err();
        assert_eq!(error.to_string(), "invalid PORT: the value is not valid UTF-8");
    }

    #[test]
    fn description_never_shows_a_password() {
        let config = config_with(&[("DATABASE_URL", "postgresql://u:hunter2@/db?host=/run/postgresql")]).unwrap();
        let description = describe_database(&config.database);
        assert!(!description.contains("hunter2"), "{description}");
        assert!(description.contains("/run/postgresql"), "{description}");
    }
}
