//! `POST /v1/introspect` (RFC 7662) for the SaaS backend's services. The body
//! is `token=…` form-encoded as the RFC says; JSON `{"token": …}` is accepted too.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::http::body::{form_or_json, no_store_json};
use crate::http::extract::ServiceCaller;
use crate::http::problem::{ApiError, Problem};
use crate::http::state::AppState;
use crate::types::ids::{Role, TenantId, TokenId, UserId, Username};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The access token to look at.
    token: String,
    /// RFC 7662 §2.1: a hint the server may ignore; only access tokens exist here.
    #[serde(default, rename = "token_type_hint")]
    #[schema(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

/// RFC 7662 §2.2. An inactive token has `active: false` and nothing else.
#[derive(Serialize, ToSchema)]
pub struct Introspection<'a> {
    active: bool,
    #[serde(flatten)]
    #[schema(inline)]
    token: Option<ActiveToken<'a>>,
}

#[derive(Serialize, ToSchema)]
pub struct ActiveToken<'a> {
    #[schema(value_type = uuid::Uuid)]
    sub: UserId,
    #[schema(value_type = uuid::Uuid)]
    tid: TenantId,
    #[schema(value_type = String, example = "member")]
    role: Role,
    #[schema(value_type = String, example = "alice")]
    username: &'a Username,
    exp: i64,
    iat: i64,
    #[schema(value_type = uuid::Uuid)]
    jti: TokenId,
    iss: &'a str,
    aud: &'a str,
}

/// Whether a token is active, and whose (RFC 7662).
#[utoipa::path(
    post, path = "/v1/introspect", tag = "tokens",
    request_body(
        content((IntrospectRequest = "application/x-www-form-urlencoded"), (IntrospectRequest = "application/json")),
    ),
    responses(
        (status = 200, description = "Active or not", body = Introspection),
        (status = 400, description = "No token", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong service key", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither form nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over this service key's limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = [])),
)]
pub async fn introspect(
    ServiceCaller(caller): ServiceCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_introspection(caller)?;
    let request: IntrospectRequest = form_or_json(&req, &body)?;
    let verified = match state.verifier.verify(&request.token).await {
        Ok(verified) => verified,
        Err(DomainError::InvalidToken(_)) => {
            return Ok(no_store_json(Introspection {
                active: false,
                token: None,
            }));
        }
        Err(other) => return Err(other.into()),
    };
    let (claims, record) = (&verified.claims, &verified.record);
    Ok(no_store_json(Introspection {
        active: true,
        token: Some(ActiveToken {
            sub: claims.sub,
            tid: claims.tid,
            role: record.role,
            username: &record.username,
            exp: claims.exp,
            iat: claims.iat,
            jti: claims.jti,
            iss: &claims.iss,
            aud: &claims.aud,
        }),
    }))
}
