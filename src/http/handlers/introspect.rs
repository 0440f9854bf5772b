//! `POST /v1/introspect` (RFC 7662) for the SaaS backend's services. The body
//! is `token=…` form-encoded as the RFC says; JSON `{"token": …}` is accepted too.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::ids::{Role, TenantId, TokenId, UserId, Username};
use crate::http::extract::ServiceCaller;
use crate::http::problem::ApiError;
use crate::http::{AppState, no_store_json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    token: String,
    /// RFC 7662 §2.1: a hint the server may ignore; only access tokens exist here.
    #[serde(default, rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    sub: UserId,
    tid: TenantId,
    role: Role,
    username: &'a Username,
    exp: i64,
    iat: i64,
    jti: TokenId,
    iss: &'a str,
    aud: &'a str,
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<IntrospectRequest, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}"))),
        Some("application/json") => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}"))),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

pub async fn introspect(
    _caller: ServiceCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse_body(&req, &body)?;
    match state.verifier.verify(&request.token).await {
        Ok(verified) => {
            let (claims, record) = (&verified.claims, &verified.record);
            Ok(no_store_json(Active {
                active: true,
                sub: claims.sub,
                tid: claims.tid,
                role: record.role,
                username: &record.username,
                exp: claims.exp,
                iat: claims.iat,
                jti: claims.jti,
                iss: &claims.iss,
                aud: &claims.aud,
            }))
        }
        Err(DomainError::InvalidToken(_)) => {
            Ok(no_store_json(serde_json::json!({ "active": false })))
        }
        Err(other) => Err(other.into()),
    }
}
