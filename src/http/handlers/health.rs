//! Liveness and readiness probes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::db;
use crate::http::AppState;
use crate::http::problem::PROBLEM_JSON;

#[derive(Serialize)]
struct Checks {
    postgres: &'static str,
    redis: &'static str,
}

/// The process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Postgres and Redis both answer; otherwise 503.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (postgres, redis) = tokio::join!(
        db::ping(&state.db, state.readiness_timeout),
        state.cache.ping()
    );
    let word = |up: bool| if up { "ok" } else { "unreachable" };
    let checks = Checks {
        postgres: word(postgres),
        redis: word(redis),
    };
    if postgres && redis {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "checks": checks }))
    } else {
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .content_type(PROBLEM_JSON)
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({
                "type": "urn:tenant-jwt:problem:not_ready",
                "title": "Not ready",
                "status": 503,
                "code": "not_ready",
                "checks": checks,
            }))
    }
}

/// Prometheus text format. Holds no secrets; still, keep it off the public internet.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(state.db.status()))
}
