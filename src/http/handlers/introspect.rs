//! `POST /v1/introspect` (RFC 7662) for the SaaS backend's services. The body
//! is `token=…` form-encoded as the RFC says; JSON `{"token": …}` is accepted too.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::http::body::{Bytes, form_or_json, no_store_json};
use crate::http::extract::{Service, scope};
use crate::http::problem::{ApiError, BodyErrors, CallerErrors, ScopeErrors};
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

/// RFC 7662 §2.2. An inactive token has `active: false` and nothing else;
/// an active one has every other member too.
#[derive(Serialize, ToSchema)]
#[schema(as = Introspection)]
pub struct Introspection<'a> {
    active: bool,
    #[serde(flatten)]
    #[schema(inline, value_type = Option<ActiveTokenMembers>)]
    token: Option<ActiveToken<'a>>,
}

/// The members of an active token's introspection (documentation only: the
/// answer is `Introspection`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActiveTokenMembers {
    #[schema(nullable = false)]
    sub: Option<uuid::Uuid>,
    #[schema(nullable = false)]
    tid: Option<uuid::Uuid>,
    #[schema(value_type = Option<Role>, nullable = false)]
    role: Option<String>,
    #[schema(example = "alice", nullable = false)]
    username: Option<String>,
    #[schema(nullable = false)]
    exp: Option<i64>,
    #[schema(nullable = false)]
    iat: Option<i64>,
    #[schema(nullable = false)]
    jti: Option<uuid::Uuid>,
    #[schema(nullable = false)]
    iss: Option<String>,
    #[schema(nullable = false)]
    aud: Option<String>,
}

#[derive(Serialize)]
pub struct ActiveToken<'a> {
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

/// Whether a token is active, and whose (RFC 7662).
#[utoipa::path(
    post, path = "/v1/introspect", tag = "tokens",
    request_body(
        content((IntrospectRequest = "application/x-www-form-urlencoded"), (IntrospectRequest = "application/json")),
    ),
    responses(
        (status = 200, description = "Active or not", body = Introspection),
        BodyErrors,
        CallerErrors,
        ScopeErrors,
    ),
    security(("service_key" = ["introspect"])),
)]
pub async fn introspect(
    Service(caller, _): Service<scope::Introspect>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_introspection(caller.key)?;
    let request: IntrospectRequest = form_or_json(&req, &body)?;
    let inactive = || {
        no_store_json(Introspection {
            active: false,
            token: None,
        })
    };
    let verified = match state.verifier.verify(&request.token).await {
        Ok(verified) => verified,
        Err(DomainError::InvalidToken(_)) => return Ok(inactive()),
        Err(other) => return Err(other.into()),
    };
    // A tenant's credential sees nothing of other tenants.
    if caller
        .actor
        .tenant()
        .is_some_and(|own| own != verified.claims.tid)
    {
        tracing::info!(actor = %caller.actor.id(), "introspection of another tenant's token: inactive");
        return Ok(inactive());
    }
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
