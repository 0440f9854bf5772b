//! `GET /v1/tenants/{tenant}/audit-events`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::page::PageQuery;
use crate::domain::audit::AuditEvent;
use crate::http::extract::AdminCaller;
use crate::http::problem::{AdminErrors, ApiError, CallerErrors, Problem};
use crate::http::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Actor {
    /// `service`, `user`, `operator` or `system`.
    kind: String,
    /// A service key's id, a user id, `cli` or `tenant-jwt`.
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
    security(("service_key" = []), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx): AdminCaller,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .admin
        .audit_events(&ctx, &tenant, query.after, query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(AuditEventPage {
        events: page
            .items
            .into_iter()
            .map(AuditEventResponse::from)
            .collect(),
        next_after: page.next_after,
    }))
}
