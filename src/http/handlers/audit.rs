//! `GET /v1/tenants/{tenant}/audit-events`.

use actix_web::{HttpResponse, web};

use crate::http::AppState;
use crate::http::extract::AdminCaller;
use crate::http::handlers::users::PageQuery;
use crate::http::problem::ApiError;

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
    let events: Vec<_> = page
        .items
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "action": e.action,
                "actor": { "kind": e.actor_kind, "id": e.actor_id },
                "target_user_id": e.target_user_id,
                "details": e.details,
                "request_id": e.request_id,
                "created_at": e.created_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "events": events, "next_after": page.next_after })))
}
