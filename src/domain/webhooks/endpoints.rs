//! A tenant's webhook endpoints, administered by its admins (scope
//! `webhooks:write`): created with a fresh secret shown once, changed,
//! rotated (both secrets sign for 24 hours), deleted; every change audited
//! in its own transaction. Also what each endpoint was sent.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use zeroize::Zeroizing;

use super::guard;
use super::signing::WebhookSecret;
use crate::db::webhooks::{EndpointChanges, EndpointRow};
use crate::db::{self, Db};
use crate::domain::admin::Admin;
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::DomainError;
use crate::domain::events::types as events;
use crate::domain::keys::secrets::MasterKey;
use crate::domain::page::{self, Page};
use crate::types::ids::{InvalidInput, MessageId, TenantId, WebhookId};

/// How long the secret before a rotation still signs.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

/// An endpoint as the domain hands it out (never its secret).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<EndpointRow> for Endpoint {
    fn from(row: EndpointRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            description: row.description,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A new endpoint, or a change of one, its input as sent.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
}

/// A message as listed: its attempts with it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: db::webhooks::MessageRow,
    pub attempts: Vec<db::webhooks::AttemptRow>,
}

/// The statuses a message can have.
pub const STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    admin: Admin,
    master_key: Arc<MasterKey>,
    allow_private: bool,
}

impl Webhooks {
    pub fn new(db: Db, admin: Admin, master_key: Arc<MasterKey>, allow_private: bool) -> Self {
        Self {
            db,
            admin,
            master_key,
            allow_private,
        }
    }

    async fn tenant(&self, ctx: &AuditContext, slug: &str) -> Result<TenantId, DomainError> {
        Ok(self.admin.tenant(ctx, slug).await?.id)
    }

    /// The URL, checked by the SSRF guard (its host resolved now), unless
    /// private addresses are allowed.
    async fn url(&self, raw: &str) -> Result<String, DomainError> {
        let url = guard::parse_url(raw, self.allow_private)?;
        if !self.allow_private {
            guard::resolve(&url, false).await?;
        }
        Ok(url.to_string())
    }

    fn description(raw: Option<String>) -> Result<Option<String>, InvalidInput> {
        match raw {
            Some(d) if d.chars().count() > 500 => {
                Err(InvalidInput::new("description", "at most 500 characters"))
            }
            other => Ok(other),
        }
    }

    /// Creates an endpoint; the answer holds its secret, the only time
    /// besides a rotation that it is shown.
    pub async fn create(
        &self,
        ctx: &AuditContext,
        slug: &str,
        input: EndpointInput,
    ) -> Result<(Endpoint, Zeroizing<String>), DomainError> {
        let events = events::subscription(&input.events.unwrap_or_default())?;
        let description = Self::description(input.description)?.unwrap_or_default();
        let tenant = self.tenant(ctx, slug).await?;
        let url = self.url(input.url.as_deref().unwrap_or_default()).await?;
        let id = WebhookId::generate();
        let secret = WebhookSecret::generate()?;
        let now = Utc::now();
        let row = EndpointRow {
            id,
            tenant_id: tenant,
            url,
            events,
            description,
            disabled: input.disabled.unwrap_or(false),
            secret: secret.seal(&self.master_key, id)?,
            previous_secret: None,
            previous_until: None,
            created_at: now,
            updated_at: now,
        };
        self.db
            .transaction(async |conn| {
                db::webhooks::insert_endpoint(conn, &row).await?;
                let details = json!({ "webhook_id": id, "url": row.url, "events": row.events });
                audit::record(conn, ctx, tenant, "webhook_created", None, details).await
            })
            .await?;
        Ok((row.into(), secret.to_wire()))
    }

    pub async fn list(
        &self,
        ctx: &AuditContext,
        slug: &str,
        after: Option<uuid::Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<Endpoint>, DomainError> {
        let asked = page::request(after, limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::webhooks::endpoints(conn, tenant, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |row| row.id.as_uuid()))
    }

    pub async fn get(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
    ) -> Result<Endpoint, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .query(async |conn| db::webhooks::endpoint(conn, tenant, id, false).await)
            .await?
            .map(Endpoint::from)
            .ok_or(DomainError::NotFound("webhook"))
    }

    pub async fn update(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
        input: EndpointInput,
    ) -> Result<Endpoint, DomainError> {
        let events = input
            .events
            .as_deref()
            .map(events::subscription)
            .transpose()?;
        let description = Self::description(input.description)?;
        let tenant = self.tenant(ctx, slug).await?;
        let url = match input.url.as_deref() {
            Some(raw) => Some(self.url(raw).await?),
            None => None,
        };
        let changes = EndpointChanges {
            url: url.as_deref(),
            events: events.as_deref(),
            description: description.as_deref(),
            disabled: input.disabled,
        };
        let details = json!({
            "webhook_id": id,
            "url": url,
            "events": events,
            "description_changed": description.is_some(),
            "disabled": input.disabled,
        });
        self.db
            .transaction(async |conn| {
                db::webhooks::endpoint(conn, tenant, id, true)
                    .await?
                    .ok_or(DomainError::NotFound("webhook"))?;
                let row = db::webhooks::update_endpoint(conn, id, changes).await?;
                audit::record(conn, ctx, tenant, "webhook_updated", None, details).await?;
                Ok(row.into())
            })
            .await
    }

    pub async fn delete(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
    ) -> Result<(), DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                db::webhooks::endpoint(conn, tenant, id, true)
                    .await?
                    .ok_or(DomainError::NotFound("webhook"))?;
                db::webhooks::delete_endpoint(conn, id).await?;
                let details = json!({ "webhook_id": id });
                audit::record(conn, ctx, tenant, "webhook_deleted", None, details).await
            })
            .await
    }

    /// A new secret; the current one keeps signing for 24 hours beside it
    /// (one rotated before that is dropped).
    pub async fn rotate_secret(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
    ) -> Result<Zeroizing<String>, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let secret = WebhookSecret::generate()?;
        let sealed = secret.seal(&self.master_key, id)?;
        let until = Utc::now() + ROTATION_OVERLAP;
        self.db
            .transaction(async |conn| {
                let row = db::webhooks::endpoint(conn, tenant, id, true)
                    .await?
                    .ok_or(DomainError::NotFound("webhook"))?;
                db::webhooks::rotate_secret(conn, id, &sealed, &row.secret, until).await?;
                let details = json!({ "webhook_id": id, "previous_valid_until": until });
                audit::record(conn, ctx, tenant, "webhook_secret_rotated", None, details).await
            })
            .await?;
        Ok(secret.to_wire())
    }

    /// A page of what endpoint `id` was sent, each message with its attempts.
    pub async fn deliveries(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
        status: Option<&str>,
        after: Option<uuid::Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<Delivery>, DomainError> {
        if status.is_some_and(|s| !STATUSES.contains(&s)) {
            return Err(InvalidInput::new("status", "one of pending, delivered, failed").into());
        }
        let asked = page::request(after, limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let (messages, mut attempts) = self
            .db
            .run(async |conn| {
                db::webhooks::endpoint(conn, tenant, id, false)
                    .await?
                    .ok_or(DomainError::NotFound("webhook"))?;
                let messages = db::webhooks::messages(conn, id, status, asked).await?;
                let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
                let attempts = db::webhooks::attempts(conn, &ids).await?;
                Ok::<_, DomainError>((messages, attempts))
            })
            .await?;
        let page = Page::from_rows(messages, asked, |m| m.id.as_uuid());
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|message: db::webhooks::MessageRow| {
                    let (mine, rest) = attempts.drain(..).partition(|a| a.message_id == message.id);
                    attempts = rest;
                    Delivery {
                        message,
                        attempts: mine,
                    }
                })
                .collect(),
            next_after: page.next_after,
        })
    }

    /// Sends a message again, from the start of the schedule, with the same
    /// `webhook-id`.
    pub async fn retry(
        &self,
        ctx: &AuditContext,
        slug: &str,
        id: WebhookId,
        message: MessageId,
    ) -> Result<(), DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                db::webhooks::endpoint(conn, tenant, id, false)
                    .await?
                    .ok_or(DomainError::NotFound("webhook"))?;
                if !db::webhooks::retry(conn, id, message).await? {
                    return Err(DomainError::NotFound("message"));
                }
                let details = json!({ "webhook_id": id, "message_id": message_id(message) });
                audit::record(conn, ctx, tenant, "webhook_message_retried", None, details).await
            })
            .await
    }
}

/// A message's id on the wire: `msg_` and 32 hex digits.
pub fn message_id(id: MessageId) -> String {
    format!("msg_{}", id.as_uuid().simple())
}

/// The message id in `raw` (`msg_…`); anything else names no message.
pub fn parse_message_id(raw: &str) -> Option<MessageId> {
    let hex = raw.strip_prefix("msg_")?;
    (hex.len() == 32)
        .then(|| uuid::Uuid::try_parse(hex).ok())
        .flatten()
        .map(MessageId::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip() {
        let id = MessageId::generate();
        let wire = message_id(id);
        assert!(wire.starts_with("msg_") && wire.len() == 36);
        assert_eq!(parse_message_id(&wire), Some(id));
        assert_eq!(parse_message_id(&id.to_string()), None);
        assert_eq!(parse_message_id("msg_xyz"), None);
    }
}
