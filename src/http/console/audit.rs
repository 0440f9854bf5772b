//! The tenant's audit log, newest first, narrowed by action and by the user
//! an event is about.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::session::ConsoleAdmin;
use super::{Chrome, ConsoleError, html, when};
use crate::db::audit::AuditFilter;
use crate::domain::DomainError;
use crate::http::state::AppState;

/// Events a page shows.
const PAGE: u32 = 50;

struct EventLine {
    at: String,
    actor: String,
    action: String,
    user: Option<String>,
    details: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    action: String,
    username: String,
    events: Vec<EventLine>,
    next: Option<Uuid>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    /// The username of the user the events are about.
    #[serde(default)]
    user: String,
    before: Option<Uuid>,
}

pub async fn page(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (ctx, tenant) = (&admin.ctx, admin.tenant.as_str());
    let (action, username) = (query.action.trim(), query.user.trim());
    let user = match username {
        "" => None,
        name => match state.admin.find_user_id(ctx, tenant, name).await {
            Ok(id) => Some(Some(id)),
            // No such user (or not a username at all): no events about them.
            Err(DomainError::NotFound(_) | DomainError::Invalid(_)) => Some(None),
            Err(e) => return Err(e.into()),
        },
    };
    let (events, next) = match user {
        Some(None) => (Vec::new(), None),
        user => {
            let filter = AuditFilter {
                action: (!action.is_empty()).then(|| action.to_owned()),
                user: user.flatten(),
            };
            let page = state
                .admin
                .recent_audit_events(ctx, tenant, &filter, query.before, Some(PAGE))
                .await?;
            let events = page
                .items
                .into_iter()
                .map(|e| EventLine {
                    at: when(e.created_at),
                    actor: format!("{} {}", e.actor_kind, e.actor_id),
                    action: e.action,
                    user: e.target_user_id.map(|id| id.to_string()),
                    details: e.details.to_string(),
                    request_id: e.request_id.unwrap_or_default(),
                })
                .collect();
            (events, page.next_after)
        }
    };
    html(&AuditPage {
        chrome: Chrome::new("audit", &admin),
        action: action.to_owned(),
        username: username.to_owned(),
        events,
        next,
    })
}
