//! `GET /v1/tenants/{tenant}/audit-events` and the root-level
//! `GET /v1/audit-events` (changes to credentials with no tenant).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::page::PageQuery;
use crate::domain::audit::AuditEvent;
use crate::domain::page::Page;
use crate::http::body::Query;
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, CallerErrors, Problem};
use crate::http::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Actor {
    /// `service` (a root key), `credential` (a stored service credential),
    /// `user`, `operator` or `system`.
    kind: String,
    /// A root key's id, a credential id, a user id, `cli` or `tenant-jwt`.
    id: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventResponse {
    id: Uuid,
    #[schema(example = "secret_rotated")]
    action: String,
    actor: Actor,
    target_user_id: Option<Uuid>,
    details: serde_json::Value,
    request_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            action: e.action,
            actor: Actor {
                kind: e.actor_kind,
                id: e.actor_id,
            },
            target_user_id: e.target_user_id.map(|u| u.as_uuid()),
            details: e.details,
            request_id: e.request_id,
            created_at: e.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventPage {
    events: Vec<AuditEventResponse>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<Uuid>,
}

/// The tenant's audit log, oldest first.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/audit-events", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant's slug"), PageQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["audit:read"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): AdminCaller<scope::AuditRead>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .audit_events(&ctx, Some(&tenant), query.after, query.limit)
        .await?;
    Ok(events(page))
}

/// The root-level audit log (credentials with no tenant created and
/// revoked), oldest first. For root-level callers only: a tenant's caller
/// gets 403.
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "credentials",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        (status = 403, description = "A tenant's caller, or no `audit:read` (`insufficient_scope`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("service_key" = ["audit:read"])),
)]
pub async fn list_root(
    AdminCaller(ctx, _): AdminCaller<scope::AuditRead>,
    state: web::Data<AppState>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .audit_events(&ctx, None, query.after, query.limit)
        .await?;
    Ok(events(page))
}

fn events(page: Page<AuditEvent>) -> HttpResponse {
    HttpResponse::Ok().json(AuditEventPage {
        events: page
            .items
            .into_iter()
            .map(AuditEventResponse::from)
            .collect(),
        next_after: page.next_after,
    })
}
