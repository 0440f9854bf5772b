//! `POST /v1/authz/check`: may this token's user do these things? Answered
//! from the tenant's current roles (`domain::authz::checks`), never from the
//! token; for the SaaS backend's services, like introspection.

use actix_web::HttpResponse;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::domain::authz::effective::Require;
use crate::domain::authz::grammar::Permission;
use crate::http::body::{Json, no_store_json};
use crate::http::extract::{Service, scope};
use crate::http::handlers::grammar_schemas::PermissionItem;
use crate::http::problem::{ApiError, BodyErrors, CallerErrors, ScopeErrors};
use crate::http::state::AppState;
use crate::types::ids::InvalidInput;

/// Permissions asked about at most in one check.
const MAX_ASKED: usize = 50;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The user's access token.
    token: String,
    /// 1 to 50 permissions (never patterns).
    #[schema(value_type = Vec<PermissionItem>, min_items = 1, max_items = 50, example = json!(["invoices:approve"]))]
    permissions: Vec<String>,
    /// `all` (default): every one is needed; `any`: one is enough.
    #[serde(default, deserialize_with = "crate::http::body::non_null")]
    #[schema(nullable = false)]
    require: Option<Require>,
    /// Answer from a view at least this recent (an `authz_version` a write
    /// returned): read-your-writes on any instance.
    #[serde(default, deserialize_with = "crate::http::body::some_version")]
    #[schema(value_type = Option<i64>, nullable = false, minimum = 0)]
    min_version: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckAnswer {
    /// Whether the token is active; an inactive one is allowed nothing.
    active: bool,
    allowed: bool,
    /// The permissions asked about that the user does not hold, as asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, nullable = false)]
    missing: Option<Vec<String>>,
    /// The tenant's authorization version the answer was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    authz_version: Option<i64>,
}

const INACTIVE: CheckAnswer = CheckAnswer {
    active: false,
    allowed: false,
    missing: None,
    authz_version: None,
};

fn asked(raw: &[String]) -> Result<Vec<Permission>, InvalidInput> {
    if raw.is_empty() || raw.len() > MAX_ASKED {
        return Err(InvalidInput::new("permissions", "1 to 50 permissions"));
    }
    raw.iter().map(|p| Permission::parse(p)).collect()
}

/// Whether a token's user holds these permissions now.
#[utoipa::path(
    post, path = "/v1/authz/check", tag = "tokens",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The decision; an inactive token is `{active: false, allowed: false}`", body = CheckAnswer),
        BodyErrors,
        CallerErrors,
        ScopeErrors,
    ),
    security(("service_key" = ["introspect"])),
)]
pub async fn check(
    Service(caller, _): Service<scope::Introspect>,
    state: web::Data<AppState>,
    body: Json<CheckRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limits.check_introspection(caller.key)?;
    let request = body.into_inner();
    let asked = asked(&request.permissions)?;
    let verified = match state.verifier.verify(&request.token).await {
        Ok(verified) => verified,
        Err(DomainError::InvalidToken(_)) => return Ok(no_store_json(INACTIVE)),
        Err(other) => return Err(other.into()),
    };
    // A tenant's credential sees nothing of other tenants.
    if caller
        .actor
        .tenant()
        .is_some_and(|own| own != verified.claims.tid)
    {
        return Ok(no_store_json(INACTIVE));
    }
    let view = state
        .authz
        .view(verified.claims.tid, request.min_version)
        .await?;
    let decision = view
        .holder(verified.claims.sub)
        .decide(&asked, request.require.unwrap_or_default());
    Ok(no_store_json(CheckAnswer {
        active: true,
        allowed: decision.allowed,
        missing: Some(decision.missing.iter().map(|p| p.to_string()).collect()),
        authz_version: Some(view.version),
    }))
}
