//! Building the application from settings. Tests boot exactly what production
//! boots: `Application::build(settings)`, bound to whatever `listen` says
//! (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::cache::local::LocalCache;
use crate::cache::{RecordCache, invalidation};
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
use crate::http::limits::Limits;
use crate::http::{self, AppState};
use crate::metrics::Metrics;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Prepares the database, connects to Postgres and Redis, checks the
    /// master key and binds the listener. Serving starts with `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = web::Data::new(build_state(&settings).await?);
        spawn_limit_pruning(state.clone());
        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("binding {}", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http::observe::observe))
                .wrap(
                    DefaultHeaders::new()
                        .add(("Cache-Control", "no-store"))
                        .add(("X-Content-Type-Options", "nosniff")),
                )
                .app_data(app_state.clone())
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        tracing::info!(address = %settings.http.listen.ip(), port, "listening");
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
