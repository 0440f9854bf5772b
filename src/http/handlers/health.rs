//! Probes and metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::metrics::CacheMetrics;
use crate::db::metrics::PoolMetrics;
use crate::db::readiness::PostgresReadiness;
use crate::http::problem::{PROBLEM_JSON, Problem};
use crate::http::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    /// `ok`, `unreachable`, `standby` (the server answering is not the
    /// primary) or `no_sync_standby` (the primary has no synchronous standby
    /// and `TENANT_JWT_REQUIRE_SYNC_REPLICATION` asks for one).
    #[schema(example = "ok")]
    postgres: &'static str,
    /// `ok` or `unreachable`.
    redis: &'static str,
    /// The Redis set-up and the state of each part; absent during start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_parts: Option<RedisParts>,
}

#[derive(Serialize, ToSchema)]
pub struct RedisParts {
    /// What `REDIS_URL` names.
    #[schema(example = "sentinel")]
    topology: &'static str,
    /// Open pooled connections.
    pool_connections: usize,
    /// Of which idle.
    pool_idle: usize,
    pool_max: usize,
    /// `subscribed` while invalidations arrive (the in-process cache is in
    /// use), else `down` (it is bypassed).
    #[schema(example = "subscribed")]
    invalidation: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    status: &'static str,
    checks: Checks,
}

/// The not-ready problem: a problem+json with the checks.
#[derive(Serialize, ToSchema)]
pub struct NotReady {
    #[serde(flatten)]
    problem: Problem<'static>,
    checks: Checks,
}

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Postgres and Redis both answer, the Postgres server is the primary, and
/// (if required) it has a synchronous standby.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is unreachable, or start-up has not finished", body = NotReady, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (postgres, redis) = tokio::join!(
        state.db.readiness(state.readiness_timeout),
        state.cache.ping()
    );
    let pool = state.cache.pool().status();
    let parts = RedisParts {
        topology: state.cache.topology().name(),
        pool_connections: pool.size,
        pool_idle: pool.available,
        pool_max: pool.max_size,
        invalidation: if state
            .metrics
            .area::<CacheMetrics>()
            .invalidation_channel_is_up()
        {
            "subscribed"
        } else {
            "down"
        },
    };
    readiness(postgres, redis, Some(parts))
}

/// What start-up has found so far, for `/readyz` while the service waits
/// for Postgres and Redis (see `startup::Starting`).
#[derive(Debug, Default)]
pub struct StartupChecks {
    pub postgres: AtomicBool,
    pub redis: AtomicBool,
}

/// `/readyz` during start-up: never ready, with what is reachable so far.
pub async fn readyz_starting(checks: web::Data<StartupChecks>) -> HttpResponse {
    let reachable = |check: &AtomicBool| check.load(Ordering::Relaxed);
    let postgres = match reachable(&checks.postgres) {
        true => PostgresReadiness::Ready,
        false => PostgresReadiness::Unreachable,
    };
    readiness(postgres, reachable(&checks.redis), None)
}

/// `redis_parts` is `None` until start-up has finished (never ready then).
fn readiness(
    postgres: PostgresReadiness,
    redis: bool,
    redis_parts: Option<RedisParts>,
) -> HttpResponse {
    let started = redis_parts.is_some();
    let checks = Checks {
        postgres: postgres.as_str(),
        redis: if redis { "ok" } else { "unreachable" },
        redis_parts,
    };
    if postgres.is_ready() && redis && started {
        HttpResponse::Ok().json(Readiness {
            status: "ready",
            checks,
        })
    } else {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        HttpResponse::build(status)
            .content_type(PROBLEM_JSON)
            .insert_header(("Retry-After", "1"))
            .json(NotReady {
                problem: Problem::new(status, "not_ready", "Not ready"),
                checks,
            })
    }
}

/// Prometheus text format. Holds no secrets; still, keep it off the public internet.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body({
            let metrics = &state.metrics;
            metrics.area::<PoolMetrics>().observe(state.db.status());
            metrics
                .area::<CacheMetrics>()
                .observe(state.cache.topology().name(), state.cache.pool().status());
            metrics.render()
        })
}
