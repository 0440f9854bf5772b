//! The HTTP edge: routes, extractors and errors on the wire. Handlers are
//! thin: extract, call one domain function, map the result.

pub mod extract;
pub mod handlers;
pub mod limits;
pub mod observe;
pub mod problem;

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, Resource, web};

use crate::cache::RecordCache;
use crate::db::DbPool;
use crate::domain::accounts::Accounts;
use crate::domain::admin::Admin;
use crate::domain::service_keys::ServiceKeys;
use crate::domain::sessions::Sessions;
use crate::domain::verify::Verifier;
use crate::metrics::Metrics;
use problem::{ApiError, json_error};

/// Largest request body accepted, JSON or form.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler can reach. Built once at start-up, shared by all workers.
pub struct AppState {
    pub db: DbPool,
    pub cache: RecordCache,
    pub accounts: Accounts,
    pub verifier: Verifier,
    pub admin: Admin,
    pub sessions: Sessions,
    pub limits: limits::Limits,
    pub metrics: Metrics,
    pub service_keys: ServiceKeys,
    /// How long `/readyz` waits for each dependency.
    pub readiness_timeout: Duration,
}

/// Registers every route, body limits and problem+json error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers::{audit, health, introspect, me, sessions, tenants, users};

    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|e, _| json_error(e).into()),
    )
    .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
    .app_data(
        web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    .service(resource("/healthz").get(health::healthz))
    .service(resource("/readyz").get(health::readyz))
    .service(resource("/metrics").get(health::metrics))
    .service(resource("/v1/tenants").post(tenants::create))
    .service(resource("/v1/tenants/{tenant}").get(tenants::get))
    .service(
        resource("/v1/tenants/{tenant}/users")
            .get(users::list)
            .post(users::create),
    )
    .service(
        resource("/v1/tenants/{tenant}/users/{user_id}")
            .get(users::get)
            .patch(users::update)
            .delete(users::delete),
    )
    .service(
        resource("/v1/tenants/{tenant}/users/{user_id}/rotate-secret").post(users::rotate_secret),
    )
    .service(resource("/v1/tenants/{tenant}/rotate-secrets").post(tenants::rotate_secrets))
    .service(resource("/v1/tenants/{tenant}/audit-events").get(audit::list))
    .service(resource("/v1/tenants/{tenant}/login").post(sessions::login))
    .service(resource("/v1/tenants/{tenant}/token/refresh").post(sessions::refresh_in_tenant))
    .service(resource("/v1/token/refresh").post(sessions::refresh))
    .service(resource("/v1/logout").post(sessions::logout))
    .service(resource("/v1/logout-all").post(sessions::logout_all))
    .service(resource("/v1/revoke").post(sessions::revoke))
    .service(resource("/v1/me").get(me::me))
    .service(resource("/v1/introspect").post(introspect::introspect))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound("route"))
    }));
}

/// A resource whose wrong methods get a problem+json 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed)
    }))
}

/// 200 with a JSON body that must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store_json(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}
