//! `GET /v1/me`: who the bearer token belongs to.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::domain::ids::{Role, TenantId, TenantSlug, TokenId, UserId, Username};
use crate::http::extract::Authenticated;
use crate::http::no_store_json;

#[derive(Serialize)]
struct Me<'a> {
    user_id: UserId,
    tenant_id: TenantId,
    tenant: &'a TenantSlug,
    username: &'a Username,
    role: Role,
    token: TokenInfo,
}

#[derive(Serialize)]
struct TokenInfo {
    jti: TokenId,
    iat: i64,
    exp: i64,
}

pub async fn me(Authenticated(verified): Authenticated) -> HttpResponse {
    let (claims, record) = (&verified.claims, &verified.record);
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
    })
}
