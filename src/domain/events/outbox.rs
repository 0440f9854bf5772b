//! Messages written with the change they report: `audit::record` hands
//! every tenant event here, inside the change's transaction, and one message
//! per event type is written for each enabled endpoint subscribed to it. So
//! a change that commits has its messages, and one that rolls back has none;
//! the delivery worker sends them after the commit.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::types::{self as events, EventType, Subject};
use crate::db;
use crate::db::audit::AuditRow;
use crate::db::webhooks::NewMessage;
use crate::types::ids::MessageId;

/// Writes the messages `event` reports, in the caller's transaction.
pub async fn enqueue(conn: &mut AsyncPgConnection, event: &AuditRow) -> QueryResult<()> {
    let Some(tenant) = event.tenant_id else {
        return Ok(());
    };
    let types = EventType::for_action(&event.action, &event.details);
    if types.is_empty() {
        return Ok(());
    }
    let endpoints = db::webhooks::subscribers(conn, tenant).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let subject = Subject {
        tenant_id: tenant.as_uuid(),
        user_id: event.target_user_id.map(|u| u.as_uuid()),
        actor_kind: &event.actor_kind,
        actor_id: &event.actor_id,
        request_id: event.request_id.as_deref(),
        details: &event.details,
    };
    let mut messages = Vec::new();
    for event_type in types {
        let body = events::body(event_type, event.created_at, &subject);
        for (endpoint, subscribed) in &endpoints {
            let wants = subscribed
                .iter()
                .any(|t| t == events::EVERY_TYPE || t == event_type.as_str());
            if wants {
                messages.push(NewMessage {
                    id: MessageId::generate(),
                    tenant_id: tenant,
                    endpoint_id: *endpoint,
                    event_type: event_type.as_str().to_owned(),
                    body: body.clone(),
                });
            }
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    db::webhooks::insert_messages(conn, &messages).await
}
