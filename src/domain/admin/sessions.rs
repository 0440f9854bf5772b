//! A user's sessions, seen and ended by an admin of their tenant.

use super::Admin;
use crate::db;
use crate::domain::accounts::sessions::SessionInfo;
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::DomainError;
use crate::types::ids::{SessionId, TenantId, UserId};

impl Admin {
    /// The user's live sessions, most recently used first.
    pub async fn user_sessions(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<Vec<SessionInfo>, DomainError> {
        self.user_of(ctx, slug, user).await?;
        self.sessions.list(user, None).await
    }

    /// Ends one of the user's sessions (audited as `session_revoked`).
    pub async fn end_user_session(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
        session: SessionId,
    ) -> Result<(), DomainError> {
        let tenant = self.user_of(ctx, slug, user).await?;
        let audited = Some((ctx, tenant));
        self.sessions
            .end(user, session, "session_revoked", audited)
            .await?;
        tracing::info!(tenant = %slug, user_id = %user, sid = %session, actor = %ctx.actor.id(), "session ended by an admin");
        Ok(())
    }

    /// Ends every session of the user (audited as `sessions_revoked`): their
    /// tokens die everywhere; the secret stays as it is.
    pub async fn end_user_sessions(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<usize, DomainError> {
        let tenant = self.user_of(ctx, slug, user).await?;
        let ended = self
            .db
            .transaction(async |conn| {
                let all = db::sessions::Sessions::AllOf(user);
                let ended = db::sessions::revoke(conn, all, "sessions_revoked").await?;
                db::users::bump_version(conn, user).await?;
                let details = serde_json::json!({ "sessions_revoked": ended });
                audit::record(conn, ctx, tenant, "sessions_revoked", Some(user), details).await?;
                Ok::<_, DomainError>(ended)
            })
            .await?;
        self.key_records.publish(user).await?;
        tracing::info!(tenant = %slug, user_id = %user, sessions = ended, actor = %ctx.actor.id(), "sessions ended by an admin");
        Ok(ended)
    }

    /// The tenant of `user`, if the actor may manage it and the user is in it.
    async fn user_of(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<TenantId, DomainError> {
        Ok(self.user(ctx, slug, user).await?.tenant_id)
    }
}
