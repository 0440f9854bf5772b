//! Secret rotation by an admin: one user, or every user of a tenant.

use std::time::Duration;

use super::{Admin, in_tenant};
use crate::db;
use crate::db::users::Lock;
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::DomainError;
use crate::domain::tokens::rotation::{MAX_GRACE, Rotation, rotate_locked};
use crate::types::ids::UserId;

/// Users rotated per transaction by a tenant-wide rotation.
const ROTATION_BATCH: i64 = 100;

impl Admin {
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
                .query(async |conn| db::users::page(conn, tenant.id, None, batch_after).await)
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
}
