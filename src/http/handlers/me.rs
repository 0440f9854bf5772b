//! `GET /v1/me`: who the bearer token belongs to.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::body::no_store_json;
use crate::http::extract::Authenticated;
use crate::http::handlers::grammar_schemas::{PatternItem, RoleNameItem};
use crate::http::handlers::introspect::Held;
use crate::http::problem::CallerErrors;
use crate::http::state::AppState;
use crate::types::ids::{Role, TenantId, TenantSlug, TokenId, UserId, Username};

#[derive(Serialize, ToSchema)]
pub struct Me<'a> {
    #[schema(value_type = uuid::Uuid)]
    user_id: UserId,
    #[schema(value_type = uuid::Uuid)]
    tenant_id: TenantId,
    /// The tenant's slug.
    #[schema(value_type = String, example = "acme")]
    tenant: &'a TenantSlug,
    #[schema(value_type = String, example = "alice")]
    username: &'a Username,
    #[schema(value_type = String, example = "member")]
    role: Role,
    token: TokenInfo,
    /// The user's roles now (sorted) and their effective permission
    /// patterns; absent only while the tenant's roles cannot be read
    /// (Postgres unreachable).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(inline, value_type = Option<HeldMembers>)]
    held: Option<Held<'a>>,
}

/// `roles` and `permissions` (documentation only).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HeldMembers {
    #[schema(value_type = Option<Vec<RoleNameItem>>, nullable = false)]
    roles: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<PatternItem>>, nullable = false)]
    permissions: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    #[schema(value_type = uuid::Uuid)]
    jti: TokenId,
    iat: i64,
    exp: i64,
}

/// The user and the token of the request.
#[utoipa::path(
    get, path = "/v1/me", tag = "sessions",
    responses(
        (status = 200, description = "The token's user", body = Me),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn me(
    Authenticated(verified): Authenticated,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (claims, record) = (&verified.claims, &verified.record);
    let view = state.authz.current(record.tenant_id).await;
    no_store_json(Me {
        user_id: record.user_id,
        tenant_id: record.tenant_id,
        tenant: &record.tenant_slug,
        username: &record.username,
        role: record.role,
        token: TokenInfo {
            jti: claims.jti,
            iat: claims.iat,
            exp: claims.exp,
        },
        held: view
            .as_deref()
            .map(|view| Held::of(view, record.user_id).unversioned()),
    })
}
