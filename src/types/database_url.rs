//! `DATABASE_URL`, parsed once: a libpq connection URL (or `key=value`
//! string) naming one host, or several as high-availability setups hand
//! them out (`postgres://app@pg-a:5432,pg-b:5432/tenant_jwt`). Its text may
//! hold a password, so it prints without one.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::Host;

#[derive(Clone)]
pub struct DatabaseUrl {
    text: String,
    config: tokio_postgres::Config,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("DATABASE_URL is not a Postgres connection string: {0}")]
    Invalid(#[source] tokio_postgres::Error),
    #[error("DATABASE_URL names no host")]
    NoHost,
    #[error("DATABASE_URL names no database")]
    NoDatabase,
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, DatabaseUrlError> {
        let config = tokio_postgres::Config::from_str(text).map_err(DatabaseUrlError::Invalid)?;
        if config.get_hosts().is_empty() {
            return Err(DatabaseUrlError::NoHost);
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(DatabaseUrlError::NoDatabase);
        }
        Ok(Self {
            text: text.to_owned(),
            config,
        })
    }

    /// The text as given, password included: for a child process's
    /// environment, never for a log line (use `Display`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed form, as given (see `db::connection` for what the service
    /// adds before connecting).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// How many hosts are tried, in order, for a connection.
    pub fn host_count(&self) -> usize {
        self.config.get_hosts().len()
    }
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// `postgres://user@host:port,host:port/database`: what the service connects
/// to, without password or options.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) => f.write_str(name)?,
                Host::Unix(path) => write!(f, "[{}]", path.display())?,
            }
            // One port for all hosts, or one each.
            if let Some(port) = ports.get(i).or(ports.first().filter(|_| ports.len() == 1)) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.database())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_is_understood() {
        let url = DatabaseUrl::parse(
            "postgres://app:hunter2@pg-a:5432,pg-b:5433/tenant_jwt?target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(url.host_count(), 2);
        assert_eq!(url.database(), "tenant_jwt");
        assert_eq!(
            url.to_string(),
            "postgres://app@pg-a:5432,pg-b:5433/tenant_jwt"
        );
    }

    #[test]
    fn a_single_host_url_reads_as_before() {
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/tenant_jwt").unwrap();
        assert_eq!(url.host_count(), 1);
        assert_eq!(
            url.to_string(),
            "postgres://postgres@127.0.0.1:5432/tenant_jwt"
        );
        assert_eq!(
            url.as_str(),
            "postgres://postgres@127.0.0.1:5432/tenant_jwt"
        );
    }

    #[test]
    fn the_password_never_prints() {
        let url = DatabaseUrl::parse("postgres://app:hunter2@db/tenant_jwt").unwrap();
        assert!(!url.to_string().contains("hunter2"));
        assert!(!format!("{url:?}").contains("hunter2"));
        let bad = DatabaseUrl::parse("postgres://app:hunter2@db:notaport/x").unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }

    #[test]
    fn a_url_without_database_or_host_is_refused() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://app@db"),
            Err(DatabaseUrlError::NoDatabase)
        ));
        assert!(DatabaseUrl::parse("not a url").is_err());
    }
}
