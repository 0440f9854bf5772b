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
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::cache::budgets::Budgets;
use crate::cache::local::LocalCache;
use crate::cache::{CacheError, RecordCache, invalidation};
use crate::config::Settings;
use crate::db;
use crate::domain::accounts::hashing::PasswordHasher;
use crate::domain::accounts::lockouts::Lockouts;
use crate::domain::accounts::sessions::Sessions;
use crate::domain::error::ErrorChain;
use crate::domain::tokens::propagation::Propagation;
use crate::domain::webhooks::delivery::Deliveries;
use crate::http::body::{self, BodyTimeout};
use crate::http::connections;
use crate::http::handlers::health::StartupChecks;
use crate::http::limits::Limits;
use crate::http::observe;
use crate::http::routes;
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::services::{Services, Stores};
use crate::telemetry;
use crate::telemetry::otel;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    background: Background,
}

/// The tasks that run beside the server (the invalidation subscriber,
/// pruning): owned by the application, cancelled and awaited when it stops,
/// and cancelled if it is dropped.
struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
    _cancel_on_drop: DropGuard,
}

impl Background {
    fn new() -> Self {
        let stop = CancellationToken::new();
        Self {
            tracker: TaskTracker::new(),
            _cancel_on_drop: stop.clone().drop_guard(),
            stop,
        }
    }

    /// Runs `task` until it ends or the application stops.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Cancels every task and waits for them to end.
    async fn shut_down(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
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
                .configure(routes::configure_starting)
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
        background: Background,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let http_metrics = web::Data::from(state.metrics.area::<observe::HttpMetrics>());
        let body_timeout = BodyTimeout(settings.http.body_timeout);
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let fd_limit = connections::raise_fd_limit();
        let max_connections = connections::instance_cap(settings.http.max_connections, fd_limit);
        let per_address = connections::PerAddressCap::new(
            settings.http.max_connections_per_ip,
            &settings.limits.trusted_proxies,
            state.metrics.clone(),
        );
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(body::close_unread))
                .wrap(from_fn(observe::observe))
                .wrap(security_headers())
                .app_data(app_state.clone())
                .app_data(http_metrics.clone())
                .app_data(body_timeout)
                .configure(routes::configure)
        })
        .workers(workers)
        .max_connections(max_connections.div_ceil(workers))
        .on_connect(move |io, extensions| per_address.on_connect(io, extensions))
        .shutdown_timeout(10)
        .listen(listener)?;
        background.spawn(telemetry::report_connection_errors(Duration::from_secs(10)));
        tracing::info!(port, max_connections, fd_limit, "ready");
        Ok(Self {
            port,
            server: server.run(),
            state,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, signal handling).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; SIGTERM and Ctrl-C stop gracefully: stop
    /// accepting, let requests in flight finish (10 s at most), stop the
    /// background tasks, then close the Postgres pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.background.shut_down().await;
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
        let background = Background::new();
        let ready = async {
            wait_for_stores(&self.settings, &self.checks).await?;
            build_state(&self.settings, &background).await
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
        background.spawn(prune_limits(state.clone()));
        Application::serve(&self.settings, state, background, self.listener).map(Some)
    }
}

/// Returns once Postgres and Redis both answer; an error only for settings
/// no retry can mend (an unreadable Redis URL).
async fn wait_for_stores(settings: &Settings, checks: &StartupChecks) -> anyhow::Result<()> {
    let cache = match RecordCache::new(&settings.redis) {
        Ok(cache) => cache,
        Err(CacheError::Url(e)) => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("REDIS_URL is invalid: {e}"),
    };
    let mut delay = FIRST_RETRY;
    loop {
        // A fresh pool each time: its breaker must not answer for Redis.
        let (postgres, redis) = tokio::join!(
            db::reachable(&settings.database),
            RecordCache::reachable(&settings.redis)
        );
        checks.postgres.store(postgres.is_ok(), Ordering::Relaxed);
        checks.redis.store(redis.is_ok(), Ordering::Relaxed);
        if postgres.is_ok() && redis.is_ok() {
            return Ok(());
        }
        if let Err(e) = postgres {
            tracing::warn!(error = %e, retry_in = ?delay, "Postgres unreachable; waiting for it");
        }
        if let Err(e) = redis {
            let redis = cache.topology();
            tracing::warn!(error = %e, %redis, retry_in = ?delay, "Redis unreachable; waiting for it");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(LAST_RETRY);
    }
}

async fn build_state(settings: &Settings, background: &Background) -> anyhow::Result<AppState> {
    let stores = Stores::open(settings).await?;
    if settings.database.require_sync_replication {
        // Logs at once whether the primary has a synchronous standby; not
        // ready (`/readyz`) until it has.
        stores.pool.readiness(settings.database.timeout).await;
    }
    if settings.service_keys.is_empty() {
        tracing::warn!(
            "no root service keys configured (TENANT_JWT_SERVICE_KEYS): only stored service credentials and tenant admins' tokens are accepted"
        );
    }
    let metrics = Metrics::new();
    metrics.area::<crate::telemetry::LogMetrics>();
    metrics.area::<otel::TraceMetrics>();
    let hasher = PasswordHasher::new(settings.hash_workers, settings.hash_queue, &metrics)?;
    let local = LocalCache::new(settings.redis.local.capacity, settings.redis.local.ttl);
    background.spawn(invalidation::run(
        stores.cache.subscription(settings.redis.local.heartbeat),
        local.clone(),
        metrics.clone(),
    ));
    let services = Services::wire(settings, &stores, hasher, local, &metrics);
    background.spawn(prune_sessions(
        services.sessions.clone(),
        settings.prune_interval,
    ));
    background.spawn(propagate(
        services.propagation.clone(),
        stores.cache.subscriptions(),
    ));
    background.spawn(services.credentials.clone().watch());
    background.spawn(services.authz.clone().watch());
    background.spawn(
        Deliveries::new(
            stores.pool.clone(),
            stores.master_key.clone(),
            settings.webhooks.clone(),
            &metrics,
        )?
        .run(),
    );
    let Services {
        accounts,
        admin,
        sessions,
        verifier,
        credentials,
        roles,
        authz,
        webhooks,
        console,
        propagation: _,
    } = services;
    Ok(AppState {
        accounts,
        admin,
        roles,
        authz,
        webhooks,
        lockouts: Lockouts::new(stores.pool.clone()),
        limits: Limits::new(
            &settings.limits,
            Some(Budgets::new(stores.cache.clone())),
            metrics.clone(),
        ),
        verifier,
        sessions,
        db: stores.pool,
        cache: stores.cache,
        metrics,
        credentials,
        forward_auth_cookie: settings.http.forward_auth_cookie.clone(),
        console: settings.http.console.then_some(console),
        readiness_timeout: settings.database.timeout,
    })
}

/// Keeps the rate limiters' memory bounded by recently seen keys.
async fn prune_limits(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    loop {
        ticks.tick().await;
        state.limits.prune();
    }
}

/// Deletes expired refresh tokens and sessions every `interval`.
/// Finishes what instances left undone (see `domain::tokens::propagation`): drains
/// the outbox every second (at once at start-up), replays the last minute at
/// every (re)subscription to Redis, prunes published rows every minute.
async fn propagate(propagation: Propagation, subscribed: Arc<tokio::sync::Notify>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let drained = otel::in_root_span("outbox drain", propagation.drain());
                if let Err(e) = drained.await {
                    tracing::warn!(error = %ErrorChain(&e), "draining unpublished changes failed; trying again");
                }
                if let Err(e) = propagation.observe().await {
                    tracing::debug!(error = %ErrorChain(&e), "could not read the outbox backlog");
                }
                round += 1;
                if round.is_multiple_of(60) && let Err(e) = propagation.prune().await {
                    tracing::warn!(error = %ErrorChain(&e), "pruning published changes failed");
                }
            }
            _ = subscribed.notified() => {
                match otel::in_root_span("outbox replay", propagation.replay()).await {
                    Ok(0) => {}
                    Ok(changes) => tracing::info!(changes, "published recent changes again after (re)subscribing to Redis"),
                    Err(e) => tracing::warn!(error = %ErrorChain(&e), "replaying recent changes failed"),
                }
            }
        }
    }
}

async fn prune_sessions(sessions: Sessions, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sessions.prune().await {
            Ok((0, 0)) => {}
            Ok((refresh_tokens, sessions)) => {
                tracing::info!(refresh_tokens, sessions, "pruned expired rows")
            }
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "pruning expired rows failed"),
        }
    }
}
