//! `POST /v1/introspect` (RFC 7662) for the SaaS backend's services. The body
//! is `token=…` form-encoded as the RFC says; JSON `{"token": …}` is accepted too.

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

pub async fn introspect(
    ServiceCaller(caller): ServiceCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_introspection(caller)?;
    let request: IntrospectRequest = super::form_or_json(&req, &body)?;
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
