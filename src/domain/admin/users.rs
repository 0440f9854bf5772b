//! A tenant's users: listing, reading, creating, changing and deleting them.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Admin, conflict_if_unique, ensure_other_admin, in_tenant};
use crate::db;
use crate::db::users::Lock;
use crate::domain::accounts::users::{NewUser, UpdatePlan, User, UserPatch};
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::{Conflict, DomainError};
use crate::domain::keys::secrets::UserSecret;
use crate::domain::page::{self, Page};
use crate::domain::tokens::rotation::rotate_locked;
use crate::types::ids::{Generation, UserId, Username};

impl Admin {
    /// A page of the tenant's users; with `prefix`, those whose username
    /// starts with it (ignoring case).
    pub async fn list_users(
        &self,
        ctx: &AuditContext,
        slug: &str,
        prefix: Option<&Username>,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<User>, DomainError> {
        let asked = page::request(after, limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::users::page(conn, tenant.id, prefix, asked).await)
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
}
