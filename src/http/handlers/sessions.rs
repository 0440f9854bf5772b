//! Login, refresh, logout and revocation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::password::Password;
use crate::domain::sessions::TokenPair;
use crate::http::extract::{Authenticated, ServiceCaller};
use crate::http::problem::ApiError;
use crate::http::{AppState, no_store_json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// RFC 6749 §5.1 token response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    refresh_expires_in: u64,
}

fn token_response(tokens: &TokenPair) -> HttpResponse {
    no_store_json(TokenResponse {
        access_token: &tokens.access.access_token,
        token_type: "Bearer",
        expires_in: tokens.access.expires_in,
        refresh_token: tokens.refresh_token.expose(),
        refresh_expires_in: tokens.refresh_expires_in,
    })
}

/// `POST /v1/tenants/{tenant}/login`.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    tenant: web::Path<String>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    // Before any hashing: an attempt over a limit costs nothing.
    let ip = state.limits.client_ip(&req);
    state.limits.check_login(ip, &tenant, &username)?;
    let tokens = state
        .accounts
        .login(&tenant, &username, Password::new(password))
        .await?;
    Ok(token_response(&tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /v1/token/refresh`.
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.sessions.refresh(&body.refresh_token, None).await?;
    Ok(token_response(&tokens))
}

/// `POST /v1/tenants/{tenant}/token/refresh`: only for users of that tenant.
pub async fn refresh_in_tenant(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .sessions
        .refresh(&body.refresh_token, Some(&tenant))
        .await?;
    Ok(token_response(&tokens))
}

/// `POST /v1/logout`: ends the session of the presented access token.
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

/// `POST /v1/logout-all`: ends every session of the user and rotates their secret.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    token: String,
    /// RFC 7009 §2.1: a hint the server may ignore; refresh tokens are told
    /// apart by their prefix.
    #[serde(default, rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

/// `POST /v1/revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(
    _caller: ServiceCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = super::form_or_json(&req, &body)?;
    state.sessions.revoke(&request.token).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
