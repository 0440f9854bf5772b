//! Tenant administration: tenants, users, secret rotation and the audit log.
//!
//! Callers are the SaaS backend's services (any tenant), a tenant's own admins
//! (their tenant only: any other tenant answers NotFound, exactly as a made-up
//! one), and operators at the CLI. Every change writes its audit event in the
//! same transaction, and every change to what verification sees (rotation,
//! role, disable, delete) is published to the cache before returning; if the
//! cache cannot be updated the call fails rather than report success while a
//! stale entry could still accept old tokens.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::audit::{self, AuditContext, AuditEvent};
use super::error::{Conflict, DomainError, is_unique_violation};
use super::key_records::KeyRecords;
use super::page::{self, Page};
use super::password::PasswordHasher;
use super::rotation::{MAX_GRACE, Rotation, rotate_locked};
use super::secrets::{MasterKey, UserSecret};
use super::users::{NewUser, Tenant, UpdatePlan, User, UserPatch};
use crate::db::users::{Lock, UserRow};
use crate::db::{self, Db};
use crate::metrics::Metrics;
use crate::types::ids::{Generation, TenantId, TenantName, TenantSlug, UserId, Username};

/// Users rotated per transaction by a tenant-wide rotation.
const ROTATION_BATCH: i64 = 100;

#[derive(Clone)]
pub struct Admin {
    db: Db,
    hasher: PasswordHasher,
    master_key: Arc<MasterKey>,
    key_records: KeyRecords,
    metrics: Metrics,
}

impl Admin {
    pub fn new(
        db: Db,
        hasher: PasswordHasher,
        master_key: Arc<MasterKey>,
        key_records: KeyRecords,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            hasher,
            master_key,
            key_records,
            metrics,
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

    pub async fn list_users(
        &self,
        ctx: &AuditContext,
        slug: &str,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<User>, DomainError> {
        let asked = page::request(after, limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::users::page(conn, tenant.id, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |row| row.id.as_uuid()))
    }

    pub async fn user(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<User, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let row = self
            .db
            .query(async |conn| db::users::find(conn, user, Lock::No).await)
            .await?;
        Ok(in_tenant(row, tenant.id)?.into())
    }

    /// Creates a user with a fresh random secret (generation 1).
    pub async fn create_user(
        &self,
        ctx: &AuditContext,
        slug: &str,
        new: NewUser,
    ) -> Result<User, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        // Hash before taking a connection for the transaction: hashing is slow.
        let password_hash = self.hasher.hash(new.password).await?;
        let user_id = UserId::generate();
        let sealed = self
            .master_key
            .seal(user_id, Generation::FIRST, &UserSecret::generate()?)?;
        let row = self
            .db
            .transaction(async |conn| {
                let row = db::users::insert(
                    conn,
                    db::users::NewUser {
                        id: user_id,
                        tenant_id: tenant.id,
                        username: &new.username,
                        password_hash: &password_hash,
                        role: new.role,
                    },
                )
                .await
                .map_err(|e| conflict_if_unique(e, Conflict::Username))?;
                db::secrets::insert(
                    conn,
                    db::secrets::NewSecret {
                        user_id,
                        generation: Generation::FIRST,
                        ciphertext: &sealed,
                    },
                )
                .await?;
                let details = serde_json::json!({ "username": new.username, "role": new.role });
                audit::record(conn, ctx, tenant.id, "user_created", Some(user_id), details).await?;
                Ok::<_, DomainError>(row)
            })
            .await?;
        tracing::info!(tenant = %tenant.slug, %user_id, role = %new.role, actor = %ctx.actor.id(), "user created");
        Ok(row.into())
    }

    /// Changes role, disabled state or password. Each of those is a security
    /// event: the user's secret is rotated, so every token they hold dies.
    pub async fn update_user(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
        patch: UserPatch,
    ) -> Result<User, DomainError> {
        if patch.is_empty() {
            return Err(
                crate::types::ids::InvalidInput::new("body", "names nothing to change").into(),
            );
        }
        let tenant = self.tenant(ctx, slug).await?;
        let password_hash = match patch.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let (row, plan) = self
            .db
            .transaction(async |conn| {
                db::tenants::lock(conn, tenant.id).await?;
                let current = db::users::find(conn, user, Lock::ForUpdate).await?;
                let current = in_tenant(current, tenant.id)?;
                let plan = UpdatePlan::new(
                    &current,
                    patch.role,
                    patch.disabled,
                    password_hash.is_some(),
                );
                if plan.removes_active_admin {
                    ensure_other_admin(conn, tenant.id, user).await?;
                }
                let changes = db::users::UserChanges {
                    role: plan.role,
                    password_hash: password_hash.as_deref(),
                    disabled_at: plan.disabled.map(|d| d.then(Utc::now)),
                };
                let row = db::users::update(conn, user, changes).await?;
                if plan.rotates_secret {
                    rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                }
                if plan.ends_sessions {
                    let all = db::sessions::Sessions::AllOf(user);
                    db::sessions::revoke(conn, all, "user_updated").await?;
                }
                let details = serde_json::json!({
                    "role": plan.role,
                    "disabled": plan.disabled,
                    "password_changed": plan.password,
                    "secret_rotated": plan.rotates_secret,
                    "sessions_ended": plan.ends_sessions,
                });
                audit::record(conn, ctx, tenant.id, "user_updated", Some(user), details).await?;
                Ok::<_, DomainError>((row, plan))
            })
            .await?;
        self.key_records.publish(user).await?;
        if plan.rotates_secret {
            self.metrics.rotations("security_event", 1);
        }
        tracing::info!(tenant = %tenant.slug, user_id = %user, actor = %ctx.actor.id(), "user updated");
        Ok(row.into())
    }

    /// Deletes a user and their secrets; their tokens die with them.
    pub async fn delete_user(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<(), DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let tombstone = self
            .db
            .transaction(async |conn| {
                db::tenants::lock(conn, tenant.id).await?;
                let current = db::users::find(conn, user, Lock::ForUpdate).await?;
                let current = in_tenant(current, tenant.id)?;
                if current.is_active_admin() {
                    ensure_other_admin(conn, tenant.id, user).await?;
                }
                let tombstone = db::users::delete(conn, user).await?;
                let details = serde_json::json!({ "username": current.username });
                audit::record(conn, ctx, tenant.id, "user_deleted", Some(user), details).await?;
                Ok::<_, DomainError>(tombstone)
            })
            .await?;
        self.key_records.publish_deleted(user, tombstone).await?;
        tracing::info!(tenant = %tenant.slug, user_id = %user, actor = %ctx.actor.id(), "user deleted");
        Ok(())
    }

    /// Gives the user a new random secret. The previous generation is rejected
    /// as soon as this returns, or after `grace` if one is given.
    pub async fn rotate_user_secret(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
        grace: Duration,
    ) -> Result<Rotation, DomainError> {
        if grace > MAX_GRACE {
            return Err(crate::types::ids::InvalidInput::new(
                "grace_seconds",
                "must be 0 to 86400",
            )
            .into());
        }
        let tenant = self.tenant(ctx, slug).await?;
        let rotation = self
            .db
            .transaction(async |conn| {
                let current = db::users::find(conn, user, Lock::ForUpdate).await?;
                in_tenant(current, tenant.id)?;
                let rotation = rotate_locked(conn, &self.master_key, user, grace).await?;
                // Without grace this is "log out everywhere": refresh tokens die
                // too. With grace it is a planned key rollover: sessions go on.
                if grace.is_zero() {
                    let all = db::sessions::Sessions::AllOf(user);
                    db::sessions::revoke(conn, all, "secret_rotated").await?;
                }
                let details = serde_json::json!({
                    "generation": rotation.generation,
                    "grace_seconds": grace.as_secs(),
                });
                audit::record(conn, ctx, tenant.id, "secret_rotated", Some(user), details).await?;
                Ok::<_, DomainError>(rotation)
            })
            .await?;
        self.key_records.publish(user).await?;
        self.metrics.rotations("admin", 1);
        tracing::info!(
            tenant = %tenant.slug, user_id = %user, generation = %rotation.generation,
            grace_seconds = grace.as_secs(), actor = %ctx.actor.id(), "secret rotated"
        );
        Ok(rotation)
    }

    /// Rotates every user of the tenant (incident response), one batch of
    /// users per transaction so no lock is held across the whole tenant.
    pub async fn rotate_tenant_secrets(
        &self,
        ctx: &AuditContext,
        slug: &str,
    ) -> Result<u64, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let mut rotated = 0u64;
        let mut batch_after = db::page::Keyset {
            after: None,
            limit: ROTATION_BATCH,
        };
        let mut unpublished = 0usize;
        loop {
            let batch: Vec<UserId> = self
                .db
                .query(async |conn| db::users::page(conn, tenant.id, batch_after).await)
                .await?
                .into_iter()
                .map(|row| row.id)
                .collect();
            let Some(last) = batch.last() else { break };
            batch_after.after = Some(last.as_uuid());
            let done: Vec<UserId> = self
                .db
                .transaction(async |conn| {
                    let mut done = Vec::with_capacity(batch.len());
                    for &user in &batch {
                        // Deleted since the page was read: nothing to rotate.
                        let current = db::users::find(conn, user, Lock::ForUpdate).await?;
                        if current.is_some_and(|row| row.tenant_id == tenant.id) {
                            rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                            let all = db::sessions::Sessions::AllOf(user);
                            db::sessions::revoke(conn, all, "tenant_secrets_rotated").await?;
                            done.push(user);
                        }
                    }
                    let details = serde_json::json!({ "users": done.len() });
                    let action = "tenant_secrets_rotated";
                    audit::record(conn, ctx, tenant.id, action, None, details).await?;
                    Ok::<_, DomainError>(done)
                })
                .await?;
            for &user in &done {
                if let Err(e) = self.key_records.publish(user).await {
                    tracing::error!(user_id = %user, error = %e, "rotated secret not published to the cache");
                    unpublished += 1;
                }
            }
            rotated += done.len() as u64;
            self.metrics.rotations("tenant", done.len() as u64);
        }
        tracing::info!(tenant = %tenant.slug, rotated, actor = %ctx.actor.id(), "tenant secrets rotated");
        if unpublished > 0 {
            return Err(DomainError::unavailable(format!(
                "{unpublished} rotated users could not be updated in the cache; retry"
            )));
        }
        Ok(rotated)
    }

    pub async fn audit_events(
        &self,
        ctx: &AuditContext,
        slug: &str,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<AuditEvent>, DomainError> {
        let asked = page::request(after, limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::audit::page(conn, tenant.id, asked).await)
            .await?;
        Ok(Page::from_rows(rows, asked, |row| row.id))
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
fn in_tenant(row: Option<UserRow>, tenant: TenantId) -> Result<UserRow, DomainError> {
    row.filter(|row| row.tenant_id == tenant)
        .ok_or(DomainError::NotFound("user"))
}

fn conflict_if_unique(e: diesel::result::Error, conflict: Conflict) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::Conflict(conflict)
    } else {
        e.into()
    }
}

/// Refuses to leave a tenant without an enabled admin. The caller holds the
/// tenant's row lock, so two admins cannot demote each other at once.
async fn ensure_other_admin(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<(), DomainError> {
    if db::users::count_other_active_admins(conn, tenant, user).await? == 0 {
        return Err(DomainError::Conflict(Conflict::LastAdmin));
    }
    Ok(())
}
