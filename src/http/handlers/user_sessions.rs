//! `/v1/tenants/{tenant}/users/{user_id}/sessions…`: an admin's view of a
//! user's sessions.

use actix_web::{HttpResponse, web};

use super::account::{SessionList, session_id};
use super::users::user_id;
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, CallerErrors};
use crate::http::state::AppState;

/// A user's live sessions, most recently used first (at most 100).
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/users/{user_id}/sessions", tag = "users",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("user_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The sessions", body = SessionList),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["users:read"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): AdminCaller<scope::UsersRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let sessions = state
        .admin
        .user_sessions(&ctx, &tenant, user_id(&user)?)
        .await?;
    Ok(HttpResponse::Ok().json(SessionList::from(sessions)))
}

/// End one of a user's sessions (audited as `session_revoked`).
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/users/{user_id}/sessions/{session_id}", tag = "users",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("user_id" = uuid::Uuid, Path),
        ("session_id" = uuid::Uuid, Path),
    ),
    responses(
        (status = 204, description = "Ended"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["users:write"]), ("access_token" = [])),
)]
pub async fn end(
    AdminCaller(ctx, _): AdminCaller<scope::UsersWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user, session) = path.into_inner();
    state
        .admin
        .end_user_session(&ctx, &tenant, user_id(&user)?, session_id(&session)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
