//! Building the application from settings. Tests boot exactly what production
//! boots: `Application::build(settings)`, bound to whatever `listen` says
//! (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::cache::local::LocalCache;
use crate::cache::{CacheError, RecordCache, invalidation};
use crate::config::{MasterKeySource, Settings};
use crate::db::{self, Db};
use crate::domain::accounts::Accounts;
use crate::domain::admin::Admin;
use crate::domain::key_records::KeyRecords;
use crate::domain::password::PasswordHasher;
use crate::domain::secrets::MasterKey;
use crate::domain::sessions::Sessions;
use crate::domain::tokens::Issuer;
use crate::domain::verify::Verifier;
use crate::http::handlers::health::StartupChecks;
use crate::http::limits::Limits;
use crate::http::{self, AppState};
use crate::metrics::Metrics;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// The first wait between two attempts to reach Postgres and Redis at
/// start-up; it doubles up to `LAST_RETRY`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// A bound listener on which only the probes are served (`/healthz` alive,
/// `/readyz` not ready, 503 for the rest) until `connect` has reached
/// Postgres and Redis and built the service.
pub struct Starting {
    settings: Settings,
    listener: TcpListener,
    port: u16,
    probes: ServerHandle,
    probes_stopped: tokio::task::JoinHandle<std::io::Result<()>>,
    checks: web::Data<StartupChecks>,
}

impl Application {
    /// Binds, connects (waiting for Postgres and Redis as long as it takes),
    /// prepares the database, checks the master key and builds the server.
    /// Serving starts with `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::bind(settings)
            .await?
            .connect()
            .await?
            .context("stopped during start-up")
    }

    /// Binds the listener and serves the probes on it at once.
    pub async fn bind(settings: Settings) -> anyhow::Result<Starting> {
        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("binding {}", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let checks = web::Data::new(StartupChecks::default());
        let probe_checks = checks.clone();
        let probes = HttpServer::new(move || {
            App::new()
                .wrap(security_headers())
                .app_data(probe_checks.clone())
                .configure(http::configure_starting)
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener.try_clone()?)?
        .run();
        let handle = probes.handle();
        tracing::info!(address = %settings.http.listen.ip(), port, "listening; starting");
        Ok(Starting {
            settings,
            listener,
            port,
            probes: handle,
            probes_stopped: tokio::spawn(probes),
            checks,
        })
    }

    fn serve(
        settings: &Settings,
        state: web::Data<AppState>,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::observe::observe))
                .wrap(security_headers())
                .app_data(app_state.clone())
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        tracing::info!(port, "ready");
        Ok(Self {
            port,
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, signal handling).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; SIGTERM and Ctrl-C stop gracefully.
    /// On SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    /// (10 s at most), then close the Postgres pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.state.db.close();
        tracing::info!("stopped");
        served
    }
}

/// On every answer: nothing here may be cached or sniffed.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("X-Content-Type-Options", "nosniff"))
}

impl Starting {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until Postgres and Redis both answer, retrying with backoff
    /// (what is reachable so far shows in `/readyz`), then builds the
    /// service and hands it the listener. `None` if the probe server was
    /// stopped meanwhile (SIGTERM, Ctrl-C). Errors are what waiting cannot
    /// mend: a wrong master key, a failed migration.
    pub async fn connect(mut self) -> anyhow::Result<Option<Application>> {
        let ready = async {
            wait_for_stores(&self.settings, &self.checks).await?;
            build_state(&self.settings).await
        };
        let state = tokio::select! {
            state = ready => state,
            _ = &mut self.probes_stopped => {
                tracing::info!("stopped during start-up");
                return Ok(None);
            }
        };
        self.probes.stop(true).await;
        let _ = self.probes_stopped.await;
        let state = web::Data::new(state?);
        spawn_limit_pruning(state.clone());
        Application::serve(&self.settings, state, self.listener).map(Some)
    }
}

/// Returns once Postgres and Redis both answer; an error only for settings
/// no retry can mend (an unreadable Redis URL).
async fn wait_for_stores(settings: &Settings, checks: &StartupChecks) -> anyhow::Result<()> {
    let mut delay = FIRST_RETRY;
    loop {
        let (postgres, redis) = tokio::join!(
            db::reachable(&settings.database),
            RecordCache::reachable(&settings.redis)
        );
        if let Err(CacheError::Redis(e)) = &redis
            && e.kind() == redis::ErrorKind::InvalidClientConfig
        {
            anyhow::bail!("REDIS_URL is invalid: {e}");
        }
        checks.postgres.store(postgres.is_ok(), Ordering::Relaxed);
        checks.redis.store(redis.is_ok(), Ordering::Relaxed);
        if postgres.is_ok() && redis.is_ok() {
            return Ok(());
        }
        if let Err(e) = postgres {
            tracing::warn!(error = %e, retry_in = ?delay, "Postgres unreachable; waiting for it");
        }
        if let Err(e) = redis {
            tracing::warn!(error = %e, retry_in = ?delay, "Redis unreachable; waiting for it");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(LAST_RETRY);
    }
}

/// What every command that touches users needs: the prepared database, the
/// checked master key and the cache.
pub struct Stores {
    pub pool: Db,
    pub master_key: Arc<MasterKey>,
    pub cache: RecordCache,
}

impl Stores {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::prepare_pool(&settings.database).await?;
        let master_key = Arc::new(open_master_key(&settings.master_key, &pool).await?);
        let cache = RecordCache::connect(&settings.redis)
            .await
            .with_context(|| {
                format!(
                    "connecting to Redis at {}",
                    crate::config::redacted_url(&settings.redis.url)
                )
            })?;
        Ok(Self {
            pool,
            master_key,
            cache,
        })
    }
}

async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let Stores {
        pool,
        master_key,
        cache,
    } = Stores::open(settings).await?;
    if settings.service_keys.is_empty() {
        tracing::warn!(
            "no service keys configured (TENANT_JWT_SERVICE_KEYS): tenant, user and introspection endpoints will refuse every call"
        );
    }
    let metrics = Metrics::new();
    let hasher = PasswordHasher::new(settings.hash_workers, settings.hash_queue)?;
    let local = LocalCache::new(settings.redis.local.capacity, settings.redis.local.ttl);
    tokio::spawn(invalidation::run(
        cache.subscription(settings.redis.local.heartbeat),
        local.clone(),
        metrics.clone(),
    ));
    let key_records = KeyRecords::new(pool.clone(), cache.clone(), local, metrics.clone());
    let verifier = Verifier::new(
        &settings.tokens,
        master_key.clone(),
        key_records.clone(),
        metrics.clone(),
    );
    let sessions = Sessions::new(
        pool.clone(),
        key_records.clone(),
        Issuer::new(settings.tokens.clone(), master_key.clone()),
        verifier.clone(),
        master_key.clone(),
        settings.tokens.refresh_ttl,
        metrics.clone(),
    );
    spawn_pruning(sessions.clone(), settings.prune_interval);
    Ok(AppState {
        accounts: Accounts::new(
            pool.clone(),
            hasher.clone(),
            key_records.clone(),
            sessions.clone(),
            metrics.clone(),
        ),
        admin: Admin::new(
            pool.clone(),
            hasher,
            master_key,
            key_records,
            metrics.clone(),
        ),
        limits: Limits::new(&settings.limits, metrics.clone()),
        verifier,
        sessions,
        db: pool,
        cache,
        metrics,
        service_keys: settings.service_keys.clone(),
        readiness_timeout: settings.database.timeout,
    })
}

/// Keeps the rate limiters' memory bounded by recently seen keys.
fn spawn_limit_pruning(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            ticks.tick().await;
            state.limits.prune();
        }
    });
}

/// Deletes expired refresh tokens and sessions every `interval`, for as long
/// as the runtime that started the application lives.
fn spawn_pruning(sessions: Sessions, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sessions.prune().await {
                Ok((0, 0)) => {}
                Ok((refresh_tokens, sessions)) => {
                    tracing::info!(refresh_tokens, sessions, "pruned expired rows")
                }
                Err(e) => tracing::warn!(error = %e, "pruning expired rows failed"),
            }
        }
    });
}

/// Loads the master key (from the setting, or from the key file, creating it
/// on first start) and checks it is the key this database was set up with.
pub async fn open_master_key(source: &MasterKeySource, pool: &Db) -> anyhow::Result<MasterKey> {
    let key = match source {
        MasterKeySource::Inline(encoded) => {
            MasterKey::from_base64(encoded).context("TENANT_JWT_MASTER_KEY is invalid")?
        }
        MasterKeySource::File(path) => {
            let (key, created) = MasterKey::load_or_create_file(path)?;
            tracing::warn!(
                path = %path.display(),
                created,
                "no TENANT_JWT_MASTER_KEY set: using the master key file. Back it up: without it no stored secret can be opened"
            );
            key
        }
    };
    let check = key.key_check_value()?;
    let stored = pool
        .query(async |conn| db::master_key_check::get_or_insert(conn, &check).await)
        .await?;
    anyhow::ensure!(
        key.matches_key_check_value(&stored),
        "the master key does not match the one this database was set up with; \
         refusing to start (every stored secret would fail to open)"
    );
    Ok(key)
}
