//! `POST /v1/tenants/{tenant}/login`: password login, RFC 6749-style token response.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::accounts;
use crate::domain::password::Password;
use crate::http::problem::ApiError;
use crate::http::{AppState, no_store_json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub async fn login(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let token = accounts::login(
        &state.db,
        &state.hasher,
        &state.key_records,
        &state.issuer,
        &tenant,
        &username,
        Password::new(password),
    )
    .await?;
    Ok(no_store_json(TokenResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    }))
}
