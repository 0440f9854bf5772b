//! The Postgres settings of the command line and environment.

use std::time::Duration;

use clap::Args;

use crate::config::DatabaseSettings;
use crate::types::database_url::DatabaseUrl;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Postgres URL; the database is created if missing. Several hosts
    /// (`postgres://user@h1:5432,h2:5432/db`) are tried in order for the
    /// one that is the primary.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/tenant_jwt"
    )]
    pub database_url: String,
    /// Largest number of Postgres connections, shared out among the pool's
    /// shards (one for background work and one per core, at least one each).
    #[arg(
        long,
        env = "TENANT_JWT_DB_POOL_SIZE",
        global = true,
        default_value_t = 16
    )]
    pub db_pool_size: usize,
    /// Longest any one use of Postgres (waiting for a connection, then the
    /// queries) may take before answering 503; the query is then cancelled.
    #[arg(
        long,
        env = "TENANT_JWT_DB_TIMEOUT",
        global = true,
        default_value = "5s"
    )]
    pub db_timeout: humantime::Duration,
    /// Report not ready (`/readyz` 503, logged) while the Postgres primary
    /// has no synchronous standby confirming commits: without one, a
    /// failover can undo changes already answered.
    #[arg(
        long,
        env = "TENANT_JWT_REQUIRE_SYNC_REPLICATION",
        global = true,
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub require_sync_replication: bool,
}

impl DatabaseArgs {
    pub fn into_settings(self) -> anyhow::Result<DatabaseSettings> {
        Ok(DatabaseSettings {
            url: DatabaseUrl::parse(&self.database_url)?,
            pool_size: self.db_pool_size.max(1),
            timeout: Duration::from(self.db_timeout),
            require_sync_replication: self.require_sync_replication,
        })
    }
}
