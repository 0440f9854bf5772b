//! Who acted, and the audit log every change writes in its own transaction
//! (with the webhook messages the change reports, see `events::outbox`).

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db;
use crate::domain::error::DomainError;
use crate::domain::events;
use crate::types::ids::{CredentialId, TenantId, UserId};
use crate::types::scopes::Scopes;
use crate::types::service_keys::ServiceKeyId;

/// Who is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A root key from `TENANT_JWT_SERVICE_KEYS`: every scope, every tenant.
    Service(ServiceKeyId),
    /// A stored service credential: its scopes, its tenant only if it has
    /// one, until it expires (if it does).
    Credential {
        id: CredentialId,
        tenant: Option<TenantId>,
        scopes: Scopes,
        expires_at: Option<DateTime<Utc>>,
    },
    /// A tenant admin, by access token.
    Admin {
        user: UserId,
        tenant: TenantId,
    },
    /// A signed-in user acting on their own account (e.g. logout everywhere).
    User {
        user: UserId,
        tenant: TenantId,
    },
    Operator,
    /// The service acting on its own, e.g. on refresh-token reuse.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Service(_) => "service",
            Actor::Credential { .. } => "credential",
            Actor::Admin { .. } | Actor::User { .. } => "user",
            Actor::Operator => "operator",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> String {
        match self {
            Actor::Service(key) => key.to_string(),
            Actor::Credential { id, .. } => id.to_string(),
            Actor::Admin { user, .. } | Actor::User { user, .. } => user.to_string(),
            Actor::Operator => "cli".to_owned(),
            Actor::System => "tenant-jwt".to_owned(),
        }
    }

    /// Whether the actor may administer `tenant`.
    pub fn may_manage(&self, tenant: TenantId) -> bool {
        match self {
            Actor::User { .. } => false,
            _ => self.tenant().is_none_or(|own| own == tenant),
        }
    }

    /// The one tenant the actor is bound to; `None` for the root level.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Actor::Service(_) | Actor::Operator | Actor::System => None,
            Actor::Credential { tenant, .. } => *tenant,
            Actor::Admin { tenant, .. } | Actor::User { tenant, .. } => Some(*tenant),
        }
    }

    /// What the actor may do: every scope at the root level, every tenant
    /// scope for a tenant admin, a credential's own scopes.
    pub fn scopes(&self) -> Scopes {
        match self {
            Actor::Service(_) | Actor::Operator | Actor::System => Scopes::ALL,
            Actor::Credential {
                scopes,
                tenant: None,
                ..
            } => *scopes,
            // Whatever was stored, a tenant's credential holds tenant scopes only.
            Actor::Credential {
                scopes,
                tenant: Some(_),
                ..
            } => scopes.and(Scopes::TENANT),
            Actor::Admin { .. } => Scopes::TENANT,
            Actor::User { .. } => Scopes::NONE,
        }
    }
}

/// The actor and the request an action belongs to, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The service acting on its own, outside any request.
    pub const SYSTEM: AuditContext = AuditContext {
        actor: Actor::System,
        request_id: None,
    };
    /// An operator at the command line.
    pub const OPERATOR: AuditContext = AuditContext {
        actor: Actor::Operator,
        request_id: None,
    };
}

/// An audit event, as stored.
pub type AuditEvent = db::audit::AuditRow;

/// Writes one audit event, inside the caller's transaction, in `tenant`'s
/// log (`None`: the root-level log).
pub async fn record(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    tenant: impl Into<Option<TenantId>>,
    action: &str,
    target: Option<UserId>,
    details: serde_json::Value,
) -> Result<(), DomainError> {
    let row = db::audit::AuditRow {
        id: Uuid::now_v7(),
        tenant_id: tenant.into(),
        actor_kind: ctx.actor.kind().to_owned(),
        actor_id: ctx.actor.id(),
        action: action.to_owned(),
        target_user_id: target,
        details,
        request_id: ctx.request_id.clone(),
        created_at: Utc::now(),
    };
    db::audit::insert(conn, &row).await?;
    Ok(events::outbox::enqueue(conn, &row).await?)
}
