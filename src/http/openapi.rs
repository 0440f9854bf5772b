//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! annotations and served at `GET /openapi.json`. A test holds it against
//! `ROUTES`, the list every route is registered from.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers::{audit, health, introspect, me, sessions, tenants, users};
use super::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenant-jwt",
        description = "Sign-in and JWTs for multi-tenant SaaS backends, with a signing secret per user. \
                       Errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        health::healthz, health::readyz, health::metrics, serve,
        tenants::create, tenants::get, tenants::rotate_secrets, audit::list,
        users::create, users::list, users::get, users::update, users::delete, users::rotate_secret,
        sessions::login, sessions::refresh, sessions::refresh_in_tenant, sessions::logout, sessions::logout_all,
        sessions::revoke, me::me, introspect::introspect,
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "sessions", description = "Sign-in, refresh, logout and the current user"),
        (name = "tokens", description = "Introspection and revocation, for services"),
        (name = "tenants", description = "Tenants, tenant-wide rotation and the audit log"),
        (name = "users", description = "A tenant's users and their secrets"),
        (name = "operations", description = "Probes, metrics and this document"),
    ),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "service_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A service key from TENANT_JWT_SERVICE_KEYS"))
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
