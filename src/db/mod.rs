//! Postgres: the pool, start-up preparation (create the database if missing,
//! apply the embedded migrations) and the query functions. Query functions
//! take `&mut AsyncPgConnection` and return `QueryResult`, so the domain layer
//! can compose them inside its transactions. Nothing here knows about HTTP.

pub mod audit;
pub mod connection;
pub mod credentials;
pub mod master_key_check;
pub mod metrics;
pub mod outbox;
pub mod page;
pub mod readiness;
pub mod roles;
pub mod schema;
pub mod sealed;
pub mod secrets;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseSettings;
use readiness::PostgresReadiness;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Any two instances migrating the same database at once take turns on this.
const MIGRATION_LOCK_ID: i64 = 0x7465_6e61_6e74_6a77; // "tenantjw"

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: Postgres is down or overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] PoolError),
    /// The work did not finish in time (a silent network, a stuck server).
    #[error("database did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// The pool, and how long any one use of it may take. Every query of the
/// service goes through `run`, so none can wait on Postgres unbounded: a
/// silent network holds no request (and no pooled connection) for longer
/// than `timeout`.
///
/// The pool is split by thread (`crate::shards`): a connection's driver runs
/// on the runtime that opened it, so each thread uses connections it opened.
#[derive(Clone)]
pub struct Db {
    pools: Arc<[DbPool]>,
    timeout: Duration,
    /// Whether only a primary with a synchronous standby counts as ready.
    require_sync: bool,
    /// The readiness last found, so a change is logged once.
    last_readiness: Arc<AtomicU8>,
}

impl Db {
    pub fn new(pools: Vec<DbPool>, settings: &DatabaseSettings) -> Self {
        Self {
            pools: pools.into(),
            timeout: settings.timeout,
            require_sync: settings.require_sync_replication,
            last_readiness: Arc::new(AtomicU8::new(u8::MAX)),
        }
    }

    /// The calling thread's shard.
    fn pool(&self) -> &DbPool {
        &self.pools[crate::shards::of_this_thread(self.pools.len())]
    }

    /// Runs `work` on a pooled connection. Waiting for the connection and the
    /// work together take at most the timeout. Past it the answer is
    /// `DbError::TimedOut`, the query still running is cancelled on the
    /// server, and the connection is closed rather than given back (it may be
    /// mid-transaction, or queued behind the abandoned query).
    pub async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.run_within(self.timeout, work).await
    }

    async fn run_within<T, E>(
        &self,
        timeout: Duration,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || E::from(DbError::TimedOut(timeout));
        let mut conn = match tokio::time::timeout_at(deadline, self.pool().get()).await {
            Ok(conn) => conn.map_err(DbError::from)?,
            Err(_) => return Err(timed_out()),
        };
        match tokio::time::timeout_at(deadline, work(&mut conn)).await {
            Ok(done) => done,
            Err(_) => {
                abandon(Object::take(conn), timeout);
                Err(timed_out())
            }
        }
    }

    /// `run` for work that is queries only.
    pub async fn query<T>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        self.run(async |conn| Ok(work(conn).await?)).await
    }

    /// `run`, with `work` in one transaction: committed if it returns Ok,
    /// rolled back otherwise (or if the timeout drops it).
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: for<'r> AsyncFnOnce(&'r mut AsyncPgConnection) -> Result<T, E>
            + for<'r> SendFuture<&'r mut AsyncPgConnection, Result<T, E>>
            + Send,
        E: From<DbError> + From<diesel::result::Error> + Send,
        T: Send,
    {
        use diesel_async::AsyncConnection;
        self.run(async move |conn| conn.transaction(work).await)
            .await
    }

    /// Whether Postgres can take changes now (see `readiness`), found
    /// within `timeout`. A change of the answer is logged once.
    pub async fn readiness(&self, timeout: Duration) -> PostgresReadiness {
        let require_sync = self.require_sync;
        let read = self
            .run_within(timeout, async |conn| {
                readiness::read(conn, require_sync)
                    .await
                    .map_err(DbError::from)
            })
            .await;
        let (now, cause) = match read {
            Ok(now) => (now, None),
            Err(e) => (PostgresReadiness::Unreachable, Some(e)),
        };
        let before = self.last_readiness.swap(now as u8, Ordering::Relaxed);
        if before != now as u8 {
            report_readiness(now, cause);
        }
        now
    }

    /// All shards together.
    pub fn status(&self) -> deadpool::Status {
        crate::shards::total(self.pools.iter().map(DbPool::status))
    }

    /// Closes the pool: connections are dropped as they come back.
    pub fn close(&self) {
        self.pools.iter().for_each(DbPool::close)
    }
}

fn report_readiness(now: PostgresReadiness, cause: Option<DbError>) {
    match now {
        PostgresReadiness::Ready => tracing::info!("Postgres ready: a primary takes changes"),
        PostgresReadiness::Unreachable => {
            let error = cause.map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(%error, "Postgres unreachable: no primary answers; not ready")
        }
        PostgresReadiness::Standby => {
            tracing::warn!("Postgres answers as a standby, not a primary; not ready")
        }
        PostgresReadiness::NoSyncStandby => tracing::error!(
            "Postgres primary has no synchronous standby confirming commits, and \
             TENANT_JWT_REQUIRE_SYNC_REPLICATION=true: not ready. A failover now could \
             undo changes already answered. Set synchronous_standby_names and \
             synchronous_commit=on on the primary, and grant the service's role \
             pg_monitor so it can see pg_stat_replication"
        ),
    }
}

/// Cancels whatever `conn` is running on the server (best effort, in the
/// background, bounded), then closes it.
fn abandon(conn: AsyncPgConnection, timeout: Duration) {
    let cancel = conn.cancel_token();
    drop(conn);
    tokio::spawn(async move {
        let cancelled = tokio::time::timeout(timeout, cancel.cancel_query(tokio_postgres::NoTls));
        if !matches!(cancelled.await, Ok(Ok(()))) {
            tracing::warn!("could not cancel an abandoned Postgres query");
        }
    });
}

/// An async closure whose future is `Send` (diesel-async's transactions ask
/// for it, and a bound on an `AsyncFnOnce` alone cannot say it).
pub trait SendFuture<A, R>: FnOnce(A) -> <Self as SendFuture<A, R>>::Fut {
    type Fut: Future<Output = R> + Send;
}

impl<F, A, Fut, R> SendFuture<A, R> for F
where
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = R> + Send,
{
    type Fut = Fut;
}

/// One shard of the pool, of `size` connections to the primary (see
/// `connection` for how one is opened and when it is dropped rather than
/// reused). One that went silent is bounded by `Db::run`'s timeout.
pub fn build_pool(settings: &DatabaseSettings, size: usize) -> anyhow::Result<DbPool> {
    let config = connection::client_config(&settings.url, settings.timeout);
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.url.to_string(),
        connection::manager_config(config),
    );
    let timeout = Some(settings.timeout);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the Postgres pool")
}

/// `prepare`, then a pool on the prepared database.
pub async fn prepare_pool(settings: &DatabaseSettings) -> anyhow::Result<Db> {
    prepare(settings).await?;
    let shards = crate::shards::count();
    let size = crate::shards::share(settings.pool_size, shards);
    let pools = (0..shards)
        .map(|_| build_pool(settings, size))
        .collect::<anyhow::Result<_>>()?;
    Ok(Db::new(pools, settings))
}

/// Whether the Postgres server answers (within the timeout), whether or not
/// the database exists yet (`prepare` creates it).
pub async fn reachable(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let config = connection::client_config(&settings.url, settings.timeout);
    let attempt = async {
        let Err(e) = connection::connect(&config).await else {
            return Ok(());
        };
        connection::connect(&maintenance(&config))
            .await
            .map(drop)
            .map_err(|_| e)
    };
    match tokio::time::timeout(settings.timeout, attempt).await {
        Ok(reached) => reached.map_err(Into::into),
        Err(_) => anyhow::bail!("no answer within {:?}", settings.timeout),
    }
}

/// `config`, on the `postgres` database every server has.
fn maintenance(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut config = config.clone();
    config.dbname("postgres");
    config
}

/// Creates the database if it does not exist, then applies pending migrations.
pub async fn prepare(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let config = connection::client_config(&settings.url, settings.timeout);
    create_database_if_missing(&settings.url, &config).await?;
    run_migrations(config).await
}

async fn create_database_if_missing(
    url: &crate::types::database_url::DatabaseUrl,
    config: &tokio_postgres::Config,
) -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;

    if connection::connect(config).await.is_ok() {
        return Ok(());
    }
    let name = url.database();
    let mut conn = connection::connect(&maintenance(config))
        .await
        .with_context(|| format!("connecting to Postgres at {url}"))?;
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    if let Err(e) = diesel::sql_query(create).execute(&mut conn).await {
        // Another instance may have created it in the meantime.
        connection::connect(config)
            .await
            .map(drop)
            .with_context(|| format!("creating database {name:?}: {e}"))?;
    } else {
        tracing::info!(database = %name, "created database");
    }
    Ok(())
}

async fn run_migrations(config: tokio_postgres::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let conn = runtime
            .block_on(connection::connect(&config))
            .context("connecting to Postgres for migrations")?;
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")),
            &mut conn,
        )?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.len())
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"));
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")),
            &mut conn,
        )?;
        applied
    })
    .await
    .context("migration task panicked")??;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(())
}
