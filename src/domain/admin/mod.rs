//! Tenant administration: tenants, users (`users`), secret rotation
//! (`rotations`), users' sessions (`sessions`), service credentials
//! (`credentials`) and the audit log.
//!
//! Callers are the SaaS backend's services (any tenant), a tenant's own admins
//! (their tenant only: any other tenant answers NotFound, exactly as a made-up
//! one), and operators at the CLI. Every change writes its audit event in the
//! same transaction, and every change to what verification sees (rotation,
//! role, disable, delete) is published to the cache before returning; if the
//! cache cannot be updated the call fails rather than report success while a
//! stale entry could still accept old tokens.

pub mod credentials;
mod rotations;
mod sessions;
mod users;

use std::sync::Arc;

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::users::UserRow;
use crate::db::{self, Db};
use crate::domain::accounts::hashing::PasswordHasher;
use crate::domain::accounts::sessions::Sessions;
use crate::domain::accounts::users::Tenant;
use crate::domain::audit::{AuditContext, AuditEvent};
use crate::domain::credentials::Credentials;
use crate::domain::error::{Conflict, DomainError, is_unique_violation};
use crate::domain::keys::secrets::MasterKey;
use crate::domain::page::{self, Page};
use crate::domain::tokens::key_records::KeyRecords;
use crate::domain::tokens::metrics::TokenMetrics;
use crate::metrics::Metrics;
use crate::types::ids::{TenantId, TenantName, TenantSlug, UserId, Username};

#[derive(Clone)]
pub struct Admin {
    db: Db,
    hasher: PasswordHasher,
    master_key: Arc<MasterKey>,
    key_records: KeyRecords,
    sessions: Sessions,
    credentials: Credentials,
    metrics: Arc<TokenMetrics>,
}

impl Admin {
    pub fn new(
        db: Db,
        hasher: PasswordHasher,
        master_key: Arc<MasterKey>,
        key_records: KeyRecords,
        sessions: Sessions,
        credentials: Credentials,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            hasher,
            master_key,
            key_records,
            sessions,
            credentials,
            metrics: metrics.area(),
        }
    }

    pub async fn create_tenant(
        &self,
        slug: TenantSlug,
        name: TenantName,
    ) -> Result<Tenant, DomainError> {
        create_tenant(&self.db, slug, name).await
    }

    /// The tenant `slug`, if the actor may manage it; NotFound otherwise, so
    /// another tenant looks exactly like one that does not exist.
    pub async fn tenant(&self, ctx: &AuditContext, slug: &str) -> Result<Tenant, DomainError> {
        let not_found = DomainError::NotFound("tenant");
        let Ok(slug) = TenantSlug::parse(slug) else {
            return Err(not_found);
        };
        self.db
            .query(async |conn| db::tenants::find_by_slug(conn, &slug).await)
            .await?
            .filter(|tenant| ctx.actor.may_manage(tenant.id))
            .ok_or(not_found)
    }

    /// A page of `tenant`'s audit log (`None`: the root-level log, which
    /// only root-level callers read).
    pub async fn audit_events(
        &self,
        ctx: &AuditContext,
        tenant: Option<&str>,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<AuditEvent>, DomainError> {
        let asked = page::request(after, limit)?;
        let tenant = match tenant {
            Some(slug) => Some(self.tenant(ctx, slug).await?.id),
            None if ctx.actor.tenant().is_some() => {
                return Err(DomainError::Forbidden("tenant_caller_reading_root_audit"));
            }
            None => None,
        };
        let rows = self
            .db
            .query(async |conn| db::audit::page(conn, tenant, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |row| row.id))
    }

    /// A page of `slug`'s audit log, newest first (`before`: an event id
    /// from the previous page), as `filter` narrows it.
    pub async fn recent_audit_events(
        &self,
        ctx: &AuditContext,
        slug: &str,
        filter: &db::audit::AuditFilter,
        before: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<AuditEvent>, DomainError> {
        let asked = page::request(before, limit)?;
        let tenant = self.tenant(ctx, slug).await?.id;
        let rows = self
            .db
            .query(async |conn| db::audit::newest(conn, tenant, filter, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |row| row.id))
    }

    /// The usernames of those of `ids` who are users of `slug` (deleted
    /// users have none), for listings that name them.
    pub async fn usernames(
        &self,
        ctx: &AuditContext,
        slug: &str,
        ids: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, Username>, DomainError> {
        let tenant = self.tenant(ctx, slug).await?.id;
        let rows = self
            .db
            .query(async |conn| db::users::usernames(conn, tenant, ids).await)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The id of `username` in `slug`, for the CLI.
    pub async fn find_user_id(
        &self,
        ctx: &AuditContext,
        slug: &str,
        username: &str,
    ) -> Result<UserId, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let username = Username::parse(username)?;
        self.db
            .query(async |conn| db::users::find_by_login(conn, &tenant.slug, &username).await)
            .await?
            .map(|row| row.id)
            .ok_or(DomainError::NotFound("user"))
    }
}

/// Creates a tenant. Needs Postgres only (no cache, no master key), so the
/// CLI can call it on a database that has nothing else yet.
pub async fn create_tenant(
    db: &Db,
    slug: TenantSlug,
    name: TenantName,
) -> Result<Tenant, DomainError> {
    let new = db::tenants::NewTenant {
        id: TenantId::generate(),
        slug: &slug,
        name: &name,
    };
    let tenant = db
        .run(async |conn| {
            db::tenants::insert(conn, new)
                .await
                .map_err(|e| conflict_if_unique(e, Conflict::TenantSlug))
        })
        .await?;
    tracing::info!(tenant = %tenant.slug, tenant_id = %tenant.id, "tenant created");
    Ok(tenant)
}

/// The row if it is a user of `tenant`; a user of another tenant is not
/// found, exactly as one that does not exist.
pub(crate) fn in_tenant(row: Option<UserRow>, tenant: TenantId) -> Result<UserRow, DomainError> {
    row.filter(|row| row.tenant_id == tenant)
        .ok_or(DomainError::NotFound("user"))
}

pub(super) fn conflict_if_unique(e: diesel::result::Error, conflict: Conflict) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::Conflict(conflict)
    } else {
        e.into()
    }
}

/// Refuses to leave a tenant without an enabled admin. The caller holds the
/// tenant's row lock, so two admins cannot demote each other at once.
pub(super) async fn ensure_other_admin(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<(), DomainError> {
    if db::users::count_other_active_admins(conn, tenant, user).await? == 0 {
        return Err(DomainError::Conflict(Conflict::LastAdmin));
    }
    Ok(())
}
