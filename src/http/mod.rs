//! The HTTP edge: routes, extractors and errors on the wire. Handlers are
//! thin: extract, call one domain function, map the result.

pub mod extract;
pub mod form;
pub mod handlers;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod problem;

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, Resource, web};

use crate::cache::RecordCache;
use crate::db::Db;
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
    pub db: Db,
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

/// Declares every route once: registers them, and lists them in `ROUTES`
/// (which the OpenAPI test holds the spec against).
macro_rules! routes {
    ($($path:literal => { $($method:ident: $handler:path),+ $(,)? }),+ $(,)?) => {
        /// Every registered (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),+];

        fn register_routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service(resource($path)$(.route(web::$method().to($handler)))+);)+
        }
    };
}

// Matched in this order, and dynamic paths cost a regex each: the routes
// the SaaS backend calls on every request come first after the baseline.
routes! {
    "/healthz" => { get: handlers::health::healthz },
    "/v1/me" => { get: handlers::me::me },
    "/v1/introspect" => { post: handlers::introspect::introspect },
    "/readyz" => { get: handlers::health::readyz },
    "/metrics" => { get: handlers::health::metrics },
    "/openapi.json" => { get: openapi::serve },
    "/v1/tenants" => { post: handlers::tenants::create },
    "/v1/tenants/{tenant}" => { get: handlers::tenants::get },
    "/v1/tenants/{tenant}/users" => { get: handlers::users::list, post: handlers::users::create },
    "/v1/tenants/{tenant}/users/{user_id}" => {
        get: handlers::users::get,
        patch: handlers::users::update,
        delete: handlers::users::delete,
    },
    "/v1/tenants/{tenant}/users/{user_id}/rotate-secret" => { post: handlers::users::rotate_secret },
    "/v1/tenants/{tenant}/rotate-secrets" => { post: handlers::tenants::rotate_secrets },
    "/v1/tenants/{tenant}/audit-events" => { get: handlers::audit::list },
    "/v1/tenants/{tenant}/login" => { post: handlers::sessions::login },
    "/v1/tenants/{tenant}/token/refresh" => { post: handlers::sessions::refresh_in_tenant },
    "/v1/token/refresh" => { post: handlers::sessions::refresh },
    "/v1/logout" => { post: handlers::sessions::logout },
    "/v1/logout-all" => { post: handlers::sessions::logout_all },
    "/v1/revoke" => { post: handlers::sessions::revoke },
}

/// Registers every route, body limits and problem+json error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
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
    );
    register_routes(cfg);
    cfg.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound("route"))
    }));
}

/// What is served while start-up waits for Postgres and Redis: the probes
/// (`/healthz` alive, `/readyz` not ready), and 503 with `Retry-After` for
/// everything else.
pub fn configure_starting(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(handlers::health::healthz))
        .route("/readyz", web::get().to(handlers::health::readyz_starting))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::Unavailable)
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
