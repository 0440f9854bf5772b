//! `POST /v1/introspect` (RFC 7662) for the SaaS backend's services. The body
//! is `token=…` form-encoded as the RFC says; JSON `{"token": …}` is accepted too.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::domain::authz::grammar::RoleName;
use crate::domain::authz::view::TenantView;
use crate::http::body::{Bytes, form_or_json, no_store_json};
use crate::http::extract::{Service, scope};
use crate::http::handlers::grammar_schemas::{PatternItem, RoleNameItem};
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
    /// Answer `roles` and `permissions` from a view at least this recent (an
    /// `authz_version` a write returned): read-your-writes on any instance.
    #[serde(default, deserialize_with = "crate::http::body::some_version")]
    #[schema(value_type = Option<i64>, nullable = false, minimum = 0)]
    min_version: Option<i64>,
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
    /// The user's roles now (sorted); with `permissions` and
    /// `authz_version`, absent only while the tenant's roles cannot be read
    /// (Postgres unreachable): grant nothing then.
    #[schema(value_type = Option<Vec<RoleNameItem>>, nullable = false)]
    roles: Option<Vec<String>>,
    /// The user's effective permission patterns now: their roles' patterns,
    /// sorted, each once.
    #[schema(value_type = Option<Vec<PatternItem>>, nullable = false)]
    permissions: Option<Vec<String>>,
    /// The tenant's authorization version `roles` and `permissions` are from.
    #[schema(nullable = false)]
    authz_version: Option<i64>,
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
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    held: Option<Held<'a>>,
}

/// A user's roles and permissions from a tenant's view (introspection and
/// `/v1/me`).
#[derive(Serialize)]
pub struct Held<'a> {
    roles: Vec<&'a RoleName>,
    permissions: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authz_version: Option<i64>,
}

impl<'a> Held<'a> {
    pub fn of(view: &'a TenantView, user: UserId) -> Self {
        let holder = view.holder(user);
        Held {
            roles: holder.role_names(),
            permissions: holder.permissions(),
            authz_version: Some(view.version),
        }
    }

    /// Without the version (`/v1/me`).
    pub fn unversioned(self) -> Self {
        Held {
            authz_version: None,
            ..self
        }
    }
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
    let view = match request.min_version {
        Some(least) => Some(state.authz.view(claims.tid, Some(least)).await?),
        None => state.authz.current(claims.tid).await,
    };
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
            held: view.as_deref().map(|view| Held::of(view, claims.sub)),
        }),
    }))
}
