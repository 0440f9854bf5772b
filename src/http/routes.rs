//! Every route, once: registration (in match order), the `ROUTES` list and
//! the OpenAPI document, all from one declaration; the app's configuration
//! around them (body limits, problem+json for extractor errors, 404 and
//! 405); and what is served while start-up waits for the stores.

use actix_web::{HttpResponse, Resource, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::{
    account, audit, authz, credentials, forward_auth, health, introspect, me, roles, sessions,
    tenants, user_sessions, users, webhooks,
};
use super::problem::{ApiError, Problem};

/// `web::get()` and the rest, and `options`, which actix-web lacks.
mod method {
    pub use actix_web::web::{delete, get, head, patch, post, put};

    pub fn options() -> actix_web::Route {
        actix_web::web::method(actix_web::http::Method::OPTIONS)
    }
}

/// Declares every route once: registers them in this order, lists them in
/// `ROUTES`, and makes the OpenAPI document (`ApiDoc`) from their handlers'
/// annotations, so no route can be served undocumented or documented unserved.
macro_rules! routes {
    ($($path:literal => { $($($method:ident)|+: $($handler:ident)::+),+ $(,)? }),+ $(,)?) => {
        /// Every registered (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$($($((stringify!($method), $path)),+),+),+];

        fn register_routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service({
                let resource = resource($path, &[$($(stringify!($method)),+),+]);
                $(let resource = {
                    let handler = $($handler)::+;
                    resource$(.route(method::$method().to(handler)))+
                };)+
                resource
            });)+
        }

        /// The OpenAPI 3.1 description of every route, served at `GET /openapi.json`.
        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "tenant-jwt",
                description = "Sign-in and JWTs for multi-tenant SaaS backends, with a signing \
                               secret per user. Errors are RFC 9457 problem+json with a stable `code`."
            ),
            paths($($($($handler)::+),+),+),
            components(schemas(Problem)),
            modifiers(&SecuritySchemes, &AtLeastOneMember, &UniqueOperationIds),
            tags(
                (name = "sessions", description = "Sign-in, refresh, logout and the current user"),
                (name = "tokens", description = "Introspection and revocation, for services"),
                (name = "credentials", description = "Scoped service credentials and the root-level audit log"),
                (name = "tenants", description = "Tenants, tenant-wide rotation and the audit log"),
                (name = "users", description = "A tenant's users and their secrets"),
                (name = "roles", description = "A tenant's roles and permissions, and who holds them"),
                (name = "webhooks", description = "Security-event webhooks (Standard Webhooks): endpoints and deliveries"),
                (name = "account", description = "What signed-in users do for themselves"),
                (name = "gateway", description = "Forward-auth for API gateways"),
                (name = "operations", description = "Probes, metrics and this document"),
            ),
        )]
        pub struct ApiDoc;
    };
}

// Matched in this order, and dynamic paths cost a regex each: the routes
// the SaaS backend calls on every request come first after the baseline.
routes! {
    "/healthz" => { get: health::healthz },
    "/v1/me" => { get: me::me },
    "/v1/introspect" => { post: introspect::introspect },
    "/v1/authz/check" => { post: authz::check },
    // Gateways forward the original method.
    "/v1/forward-auth" => {
        get | head | post | put | patch | delete | options: forward_auth::check,
    },
    // Envoy appends the original path (and query) to its path prefix.
    "/v1/forward-auth/{path:.*}" => {
        get | head | post | put | patch | delete | options: forward_auth::check_any_path,
    },
    "/readyz" => { get: health::readyz },
    "/metrics" => { get: health::metrics },
    "/openapi.json" => { get: serve },
    "/v1/tenants" => { post: tenants::create },
    "/v1/tenants/{tenant}" => { get: tenants::get },
    "/v1/tenants/{tenant}/users" => { get: users::list, post: users::create },
    "/v1/tenants/{tenant}/users/{user_id}" => {
        get: users::get,
        patch: users::update,
        delete: users::delete,
    },
    "/v1/tenants/{tenant}/users/{user_id}/rotate-secret" => { post: users::rotate_secret },
    "/v1/tenants/{tenant}/users/{user_id}/sessions" => { get: user_sessions::list },
    "/v1/tenants/{tenant}/users/{user_id}/sessions/{session_id}" => {
        delete: user_sessions::end,
    },
    "/v1/tenants/{tenant}/users/{user_id}/roles" => {
        get: roles::user_roles,
        put: roles::set_user_roles,
    },
    "/v1/tenants/{tenant}/roles" => { get: roles::list, post: roles::create },
    "/v1/tenants/{tenant}/roles/{name}" => {
        get: roles::get,
        patch: roles::update,
        delete: roles::delete,
    },
    "/v1/tenants/{tenant}/rotate-secrets" => { post: tenants::rotate_secrets },
    "/v1/tenants/{tenant}/audit-events" => { get: audit::list },
    "/v1/tenants/{tenant}/service-credentials" => {
        get: credentials::list_in_tenant,
        post: credentials::create_in_tenant,
    },
    "/v1/tenants/{tenant}/service-credentials/{credential_id}" => {
        delete: credentials::revoke_in_tenant,
    },
    "/v1/tenants/{tenant}/webhooks" => { get: webhooks::list, post: webhooks::create },
    "/v1/tenants/{tenant}/webhooks/{webhook_id}" => {
        get: webhooks::get,
        patch: webhooks::update,
        delete: webhooks::delete,
    },
    "/v1/tenants/{tenant}/webhooks/{webhook_id}/rotate-secret" => { post: webhooks::rotate_secret },
    "/v1/tenants/{tenant}/webhooks/{webhook_id}/deliveries" => { get: webhooks::deliveries },
    "/v1/tenants/{tenant}/webhooks/{webhook_id}/deliveries/{message_id}/retry" => {
        post: webhooks::retry,
    },
    "/v1/service-credentials" => { get: credentials::list, post: credentials::create },
    "/v1/service-credentials/{credential_id}" => { delete: credentials::revoke },
    "/v1/audit-events" => { get: audit::list_root },
    "/v1/tenants/{tenant}/login" => { post: sessions::login },
    "/v1/tenants/{tenant}/token/refresh" => { post: sessions::refresh_in_tenant },
    "/v1/token/refresh" => { post: sessions::refresh },
    "/v1/logout" => { post: sessions::logout },
    "/v1/logout-all" => { post: sessions::logout_all },
    "/v1/revoke" => { post: sessions::revoke },
    "/v1/me/password" => { post: account::change_password },
    "/v1/me/sessions" => { get: account::sessions },
    "/v1/me/sessions/{session_id}" => { delete: account::end_session },
}

/// Registers every route and problem+json for path errors. Bodies and
/// queries are read by `body`'s extractors, which set their own limits.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    );
    register_routes(cfg);
    super::console::configure(cfg);
    cfg.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound("route"))
    }));
}

/// What is served while start-up waits for Postgres and Redis: the probes
/// (`/healthz` alive, `/readyz` not ready), and 503 with `Retry-After` for
/// everything else.
pub fn configure_starting(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz_starting))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::Unavailable(None))
        }));
}

/// A resource whose wrong methods get a problem+json 405 naming the
/// `methods` it serves in `Allow` (RFC 9110 §15.5.6).
fn resource(path: &str, methods: &[&str]) -> Resource {
    let allow = methods.join(", ").to_ascii_uppercase();
    web::resource(path).default_service(web::to(move || {
        let allow = allow.clone();
        async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
    }))
}

/// `PatchUser` must name something to change. (utoipa-gen 5.5 writes
/// `#[schema(min_properties = 1)]` out as `maxProperties`, so it is set here.)
struct AtLeastOneMember;

impl Modify for AtLeastOneMember {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let schemas = openapi.components.as_mut().map(|c| &mut c.schemas);
        if let Some(RefOr::T(Schema::Object(patch))) =
            schemas.and_then(|schemas| schemas.get_mut("PatchUser"))
        {
            patch.min_properties = Some(1);
        }
    }
}

/// utoipa names an operation after its handler (`get`, `list`, …), which
/// several modules share; an operation id must be unique (OpenAPI 3.1
/// §4.8.10.1) and tools follow links by it. Each becomes the method and the
/// path's words: `get_tenants_tenant_users_user_id`.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .filter(|w| !w.is_empty() && *w != "v1")
                .collect();
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    operation.operation_id = Some(format!("{method}_{}", words.join("_")));
                }
            }
        }
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "service_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A service credential's key (`tjs_…`, holding the scopes an operation \
                         lists), or a root key from TENANT_JWT_SERVICE_KEYS (every scope)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's access token; admin routes need role `admin`",
                    ))
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")),
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
