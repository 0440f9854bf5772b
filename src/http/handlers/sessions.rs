//! Login, refresh, logout and revocation.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::accounts::login::Purpose;
use crate::domain::accounts::password::Password;
use crate::domain::accounts::sessions::{Client, TokenPair};
use crate::domain::audit::{Actor, AuditContext};
use crate::http::body::{Bytes, Json, form_or_json, no_store_json};
use crate::http::extract::{Authenticated, Service, SessionClient, scope};
use crate::http::observe;
use crate::http::problem::{
    ApiError, BodyErrors, CallerErrors, Problem, ScopeErrors, UnavailableError,
};
use crate::http::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

/// RFC 6749 §5.1 token response.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse<'a> {
    /// HS256 JWT signed with the user's own secret.
    access_token: &'a str,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds.
    #[schema(example = 900)]
    expires_in: u64,
    /// Opaque; spent when exchanged.
    refresh_token: &'a str,
    /// Seconds.
    #[schema(example = 2592000)]
    refresh_expires_in: u64,
}

pub(crate) fn token_response(tokens: &TokenPair) -> HttpResponse {
    no_store_json(TokenResponse {
        access_token: &tokens.access.access_token,
        token_type: "Bearer",
        expires_in: tokens.access.expires_in,
        refresh_token: tokens.refresh_token.expose(),
        refresh_expires_in: tokens.refresh_expires_in,
    })
}

/// Sign in with a password; starts a session.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/login", tag = "sessions",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        BodyErrors,
        (status = 401, description = "Any failure to sign in (`invalid_credentials`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over a login limit (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
        UnavailableError,
    ),
)]
pub async fn login(
    state: web::Data<AppState>,
    SessionClient(client, ip): SessionClient,
    tenant: web::Path<String>,
    req: HttpRequest,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let password = Password::new(password);
    let tokens = limited_login(
        &state,
        &req,
        &client,
        ip,
        &tenant,
        &username,
        password,
        Purpose::Api,
    )
    .await?;
    Ok(token_response(&tokens))
}

/// A login within the login limits (checked before any hashing, so an
/// attempt over a limit costs nothing); an account's limit being hit is
/// recorded. The API's login and the console's sign-in both come here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn limited_login(
    state: &AppState,
    req: &HttpRequest,
    client: &Client,
    ip: IpAddr,
    tenant: &str,
    username: &str,
    password: Password,
    purpose: Purpose,
) -> Result<TokenPair, ApiError> {
    if let Err(refused) = state.limits.check_login(ip, tenant, username).await {
        if refused.account {
            let ctx = AuditContext {
                actor: Actor::System,
                request_id: observe::request_id(req),
            };
            state.lockouts.report(&ctx, tenant, username).await;
        }
        return Err(refused.into());
    }
    Ok(state
        .accounts
        .login(tenant, username, password, client, purpose)
        .await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Exchange a refresh token for a new pair in the same session.
#[utoipa::path(
    post, path = "/v1/token/refresh", tag = "sessions",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenResponse),
        BodyErrors,
        (status = 401, description = "Any failure (`invalid_grant`); reuse of a spent token ends every session of its user", body = Problem, content_type = "application/problem+json"),
        UnavailableError,
    ),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    SessionClient(client, _): SessionClient,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .sessions
        .refresh(&body.refresh_token, None, &client)
        .await?;
    Ok(token_response(&tokens))
}

/// Exchange a refresh token of a user of this tenant.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/token/refresh", tag = "sessions",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenResponse),
        BodyErrors,
        (status = 401, description = "Any failure (`invalid_grant`), including another tenant's token", body = Problem, content_type = "application/problem+json"),
        UnavailableError,
    ),
)]
pub async fn refresh_in_tenant(
    state: web::Data<AppState>,
    SessionClient(client, _): SessionClient,
    tenant: web::Path<String>,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .sessions
        .refresh(&body.refresh_token, Some(&tenant), &client)
        .await?;
    Ok(token_response(&tokens))
}

/// End the session of the presented access token; other sessions go on.
#[utoipa::path(
    post, path = "/v1/logout", tag = "sessions",
    responses(
        (status = 204, description = "Logged out"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn logout(
    state: web::Data<AppState>,
    Authenticated(verified): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .logout(verified.record.user_id, verified.claims.sid)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the user and rotate their secret.
#[utoipa::path(
    post, path = "/v1/logout-all", tag = "sessions",
    responses(
        (status = 204, description = "Every session ended"),
        CallerErrors,
    ),
    security(("access_token" = [])),
)]
pub async fn logout_all(
    state: web::Data<AppState>,
    Authenticated(verified): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .logout_all(verified.record.user_id, verified.record.tenant_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An access token or a refresh token.
    token: String,
    /// RFC 7009 §2.1: a hint the server may ignore; refresh tokens are told
    /// apart by their prefix.
    #[serde(default, rename = "token_type_hint")]
    #[schema(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

/// Revoke a token's session (RFC 7009); 200 for unknown tokens too, and
/// (doing nothing) for another tenant's token with a tenant's credential.
#[utoipa::path(
    post, path = "/v1/revoke", tag = "tokens",
    request_body(
        content((RevokeRequest = "application/x-www-form-urlencoded"), (RevokeRequest = "application/json")),
    ),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        BodyErrors,
        CallerErrors,
        ScopeErrors,
    ),
    security(("service_key" = ["revoke"])),
)]
pub async fn revoke(
    Service(caller, _): Service<scope::Revoke>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = form_or_json(&req, &body)?;
    state
        .sessions
        .revoke(&request.token, caller.actor.tenant())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
