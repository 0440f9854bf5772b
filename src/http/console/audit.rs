//! The tenant's audit log, newest first, narrowed by action and by the user
//! an event is about.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::session::ConsoleAdmin;
use super::{Chrome, ConsoleError, html, when};
use crate::db::audit::AuditFilter;
use crate::domain::DomainError;
use crate::domain::audit::AuditEvent;
use crate::http::state::AppState;
use crate::types::ids::{UserId, Username};

/// Events a page shows.
const PAGE: u32 = 50;

struct EventLine {
    at: String,
    actor: String,
    action: String,
    /// The user the event is about: id, and name while they exist.
    user: Option<(String, String)>,
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
            let named = named(&state, &admin, &page.items).await?;
            let name = |id: UserId| named.get(&id).map(|n| n.as_str().to_owned());
            let events = page
                .items
                .into_iter()
                .map(|e| EventLine {
                    at: when(e.created_at),
                    actor: match UserId::parse(&e.actor_id).ok().and_then(name) {
                        Some(username) => format!("{} {username}", e.actor_kind),
                        None => format!("{} {}", e.actor_kind, e.actor_id),
                    },
                    action: e.action,
                    user: e
                        .target_user_id
                        .map(|id| (id.to_string(), name(id).unwrap_or_else(|| id.to_string()))),
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

/// The usernames of the users `events` are about or were made by.
async fn named(
    state: &AppState,
    admin: &ConsoleAdmin,
    events: &[AuditEvent],
) -> Result<HashMap<UserId, Username>, DomainError> {
    let mut ids: Vec<UserId> = events
        .iter()
        .flat_map(|e| [e.target_user_id, UserId::parse(&e.actor_id).ok()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    state.admin.usernames(&admin.ctx, &admin.tenant, &ids).await
}
