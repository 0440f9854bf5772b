//! Sessions and refresh tokens: short access tokens, rotating refresh tokens
//! with reuse detection, logout, logout everywhere and RFC 7009 revocation.
//!
//! Each login starts a session (a refresh-token family); its access tokens
//! carry the session id as `sid`. A refresh token is spent when exchanged; a
//! spent one presented again is a theft signal, answered by revoking every
//! session of the user and rotating their secret, which kills every access
//! token too. A revoked session stays in the user's cached key record until
//! its last access token expires, so verification remains one lookup and a
//! flushed cache reloads the revocation from Postgres.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::db::sessions::{NewRefresh, SessionUse, Sessions as Which};
use crate::db::users::Lock;
use crate::db::{self, Db};
use crate::domain::audit::{self, Actor, AuditContext};
use crate::domain::error::{DomainError, RefreshFailure};
use crate::domain::keys::secrets::MasterKey;
use crate::domain::tokens::claims::{IssuedToken, Issuer};
use crate::domain::tokens::key_records::{KeyRecord, KeyRecords};
use crate::domain::tokens::metrics::TokenMetrics;
use crate::domain::tokens::rotation::rotate_locked;
use crate::domain::tokens::verify::Verifier;
use crate::metrics::Metrics;
use crate::types::ids::{SessionId, TenantId, UserId};

const REFRESH_PREFIX: &str = "tjr_";
/// Longest user agent recorded, in characters.
const USER_AGENT_CHARS: usize = 256;
/// Most sessions a listing shows (the most recently used).
pub const MAX_LISTED_SESSIONS: i64 = 100;

/// The client a session is used from, as its user's list of sessions shows
/// it: recorded at login and at every refresh.
#[derive(Debug, Clone, Default)]
pub struct Client {
    user_agent: Option<String>,
    ip: Option<String>,
}

impl Client {
    /// The user agent is cut to 256 characters.
    pub fn new(user_agent: Option<&str>, ip: Option<std::net::IpAddr>) -> Self {
        Self {
            user_agent: user_agent.map(|ua| ua.chars().take(USER_AGENT_CHARS).collect()),
            ip: ip.map(|ip| ip.to_string()),
        }
    }

    pub(crate) fn as_use(&self) -> SessionUse<'_> {
        SessionUse {
            user_agent: self.user_agent.as_deref(),
            ip: self.ip.as_deref(),
        }
    }
}

/// A live session, as its user (or an admin) sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The session of the token that asked.
    pub current: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// An opaque refresh token: 256 random bits. Stored only as its SHA-256.
pub struct RefreshToken(Zeroizing<String>);

impl RefreshToken {
    fn generate() -> Result<Self, DomainError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut())
            .map_err(DomainError::internal)?;
        Ok(Self(Zeroizing::new(format!(
            "{REFRESH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes.as_ref())
        ))))
    }

    fn hash_of(presented: &str) -> [u8; 32] {
        Sha256::digest(presented.as_bytes()).into()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// What a login or a refresh hands out.
#[derive(Debug)]
pub struct TokenPair {
    pub access: IssuedToken,
    pub refresh_token: RefreshToken,
    pub refresh_expires_in: u64,
}

/// A pair about to be handed out, with what Postgres must record of it.
struct Minted {
    pair: TokenPair,
    refresh_hash: [u8; 32],
    refresh_expires_at: DateTime<Utc>,
    /// The access token's expiry: the session must be remembered until then.
    access_until: DateTime<Utc>,
}

impl Minted {
    fn refresh_row(&self, session: SessionId, user: UserId) -> NewRefresh<'_> {
        NewRefresh {
            token_hash: &self.refresh_hash,
            session,
            user,
            expires_at: self.refresh_expires_at,
        }
    }
}

#[derive(Clone)]
pub struct Sessions {
    db: Db,
    key_records: KeyRecords,
    issuer: Issuer,
    verifier: Verifier,
    master_key: Arc<MasterKey>,
    refresh_ttl: Duration,
    metrics: Arc<TokenMetrics>,
}

impl Sessions {
    pub fn new(
        db: Db,
        key_records: KeyRecords,
        issuer: Issuer,
        verifier: Verifier,
        master_key: Arc<MasterKey>,
        refresh_ttl: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            key_records,
            issuer,
            verifier,
            master_key,
            refresh_ttl,
            metrics: metrics.area(),
        }
    }

    /// A new pair for `user`'s session `sid`, and what Postgres must record of it.
    fn mint(
        &self,
        record: &KeyRecord,
        sid: SessionId,
        ttl: Duration,
    ) -> Result<Minted, DomainError> {
        let access = self.issuer.issue(record, sid)?;
        let refresh_token = RefreshToken::generate()?;
        let life = chrono::Duration::from_std(ttl).map_err(DomainError::internal)?;
        Ok(Minted {
            refresh_hash: RefreshToken::hash_of(refresh_token.expose()),
            refresh_expires_at: Utc::now() + life,
            access_until: DateTime::from_timestamp(access.claims.exp, 0).unwrap_or_else(Utc::now),
            pair: TokenPair {
                access,
                refresh_token,
                refresh_expires_in: ttl.as_secs(),
            },
        })
    }

    /// Starts a session for a user who just proved their password (refresh ≤ `lifetime`).
    pub async fn start(
        &self,
        record: &KeyRecord,
        client: &Client,
        lifetime: Option<Duration>,
    ) -> Result<TokenPair, DomainError> {
        let (sid, ttl) = (SessionId::generate(), self.refresh_ttl);
        let minted = self.mint(record, sid, lifetime.map_or(ttl, |l| l.min(ttl)))?;
        let user = record.user_id;
        self.db
            .transaction(async |conn| {
                let used = client.as_use();
                db::sessions::insert_session(conn, sid, user, minted.access_until, used).await?;
                db::sessions::insert_refresh(conn, minted.refresh_row(sid, user)).await?;
                Ok::<_, DomainError>(())
            })
            .await?;
        Ok(minted.pair)
    }

    /// Exchanges a refresh token for a new pair in the same session. With
    /// `tenant`, the token must belong to a user of that tenant.
    pub async fn refresh(
        &self,
        presented: &str,
        tenant: Option<&str>,
        client: &Client,
    ) -> Result<TokenPair, DomainError> {
        let hash = RefreshToken::hash_of(presented);
        let found = {
            self.db
                .query(async |conn| db::sessions::find_refresh(conn, &hash).await)
                .await?
        };
        let Some(found) = found else {
            return refuse(RefreshFailure::Unknown, None);
        };
        let user = found.user_id;
        if found.spent_at.is_some() {
            self.reuse_detected(user).await?;
            return refuse(RefreshFailure::Reused, Some(user));
        }
        if found.revoked_at.is_some() {
            return refuse(RefreshFailure::Revoked, Some(user));
        }
        if found.expires_at <= Utc::now() {
            return refuse(RefreshFailure::Expired, Some(user));
        }
        let Some(record) = self.key_records.load(user).await? else {
            return refuse(RefreshFailure::UnknownUser, Some(user));
        };
        if tenant.is_some_and(|slug| slug != record.tenant_slug.as_str()) {
            return refuse(RefreshFailure::WrongTenant, Some(user));
        }
        if record.disabled {
            return refuse(RefreshFailure::Disabled, Some(user));
        }

        let sid = found.session_id;
        let minted = self.mint(&record, sid, self.refresh_ttl)?;
        let outcome = self
            .db
            .transaction(async |conn| {
                // The one atomic step: of two requests with the same token, one
                // gets the row and the other finds it spent.
                if db::sessions::spend_refresh(conn, &hash).await?.is_none() {
                    return Ok(Err(RefreshFailure::Reused));
                }
                match db::sessions::lock_session(conn, sid).await? {
                    Some(session) if session.revoked_at.is_none() => {}
                    _ => return Ok(Err(RefreshFailure::Revoked)),
                }
                db::sessions::extend_session(conn, sid, minted.access_until, client.as_use())
                    .await?;
                db::sessions::insert_refresh(conn, minted.refresh_row(sid, user)).await?;
                Ok::<_, DomainError>(Ok(()))
            })
            .await?;
        match outcome {
            Ok(()) => Ok(minted.pair),
            Err(RefreshFailure::Reused) => {
                self.reuse_detected(user).await?;
                refuse(RefreshFailure::Reused, Some(user))
            }
            Err(reason) => refuse(reason, Some(user)),
        }
    }

    /// A spent refresh token came back: revoke every session of the user and
    /// rotate their secret, so every token they hold dies.
    async fn reuse_detected(&self, user: UserId) -> Result<(), DomainError> {
        tracing::warn!(user_id = %user, "refresh token reuse detected: revoking every session and rotating the secret");
        self.kill_everything(&AuditContext::SYSTEM, user, "refresh_token_reused")
            .await
    }

    /// Ends the session of this access token; the user's other sessions go on.
    pub async fn logout(&self, user: UserId, sid: SessionId) -> Result<(), DomainError> {
        self.end(user, sid, "logout", None).await
    }

    /// Ends every session of the user and rotates their secret.
    pub async fn logout_all(&self, user: UserId, tenant: TenantId) -> Result<(), DomainError> {
        let ctx = AuditContext {
            actor: Actor::User { user, tenant },
            request_id: None,
        };
        self.kill_everything(&ctx, user, "logout_all").await
    }

    /// RFC 7009: revokes the session of an access token or refresh token.
    /// Unknown and invalid tokens are not an error, nor is a token of
    /// another tenant than `only` (left alone, for a tenant's credential).
    pub async fn revoke(&self, token: &str, only: Option<TenantId>) -> Result<(), DomainError> {
        let (user, sid) = if token.starts_with(REFRESH_PREFIX) {
            let hash = RefreshToken::hash_of(token);
            let found = self
                .db
                .query(async |conn| db::sessions::find_refresh(conn, &hash).await)
                .await?;
            match found {
                Some(found) => (found.user_id, found.session_id),
                None => return Ok(()),
            }
        } else {
            match self.verifier.verify(token).await {
                Ok(verified) => (verified.record.user_id, verified.claims.sid),
                Err(DomainError::InvalidToken(_)) => return Ok(()),
                Err(other) => return Err(other),
            }
        };
        if let Some(tenant) = only {
            let record = self.key_records.load(user).await?;
            if record.is_none_or(|record| record.tenant_id != tenant) {
                tracing::info!(user_id = %user, "revocation of another tenant's token ignored");
                return Ok(());
            }
        }
        self.end(user, sid, "revoked", None).await
    }

    /// The user's live sessions, most recently used first (at most
    /// `MAX_LISTED_SESSIONS`); `current` marks the asking token's.
    pub async fn list(
        &self,
        user: UserId,
        current: Option<SessionId>,
    ) -> Result<Vec<SessionInfo>, DomainError> {
        let rows = self
            .db
            .query(async |conn| db::sessions::live(conn, user, MAX_LISTED_SESSIONS).await)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| SessionInfo {
                id: row.id,
                created_at: row.created_at,
                last_used_at: row.last_used_at.unwrap_or(row.created_at),
                current: Some(row.id) == current,
                user_agent: row.user_agent,
                ip: row.ip,
            })
            .collect())
    }

    /// Ends the user's session `sid` (NotFound if it is not theirs): its
    /// tokens die everywhere, as on logout; the user's other sessions go on.
    /// With `audit`, the event is recorded for that tenant and actor.
    pub async fn end(
        &self,
        user: UserId,
        sid: SessionId,
        reason: &str,
        audit: Option<(&AuditContext, TenantId)>,
    ) -> Result<(), DomainError> {
        self.db
            .transaction(async |conn| {
                db::sessions::find_session(conn, user, sid)
                    .await?
                    .ok_or(DomainError::NotFound("session"))?;
                db::sessions::revoke(conn, Which::One(sid), reason).await?;
                db::users::bump_version(conn, user).await?;
                if let Some((ctx, tenant)) = audit {
                    let details = serde_json::json!({ "session_id": sid });
                    audit::record(conn, ctx, tenant, reason, Some(user), details).await?;
                }
                Ok::<_, DomainError>(())
            })
            .await?;
        self.key_records.publish(user).await?;
        tracing::info!(user_id = %user, sid = %sid, reason, "session revoked");
        Ok(())
    }

    async fn kill_everything(
        &self,
        ctx: &AuditContext,
        user: UserId,
        action: &str,
    ) -> Result<(), DomainError> {
        self.db
            .transaction(async |conn| {
                let Some(row) = db::users::find(conn, user, Lock::ForUpdate).await? else {
                    return Ok(());
                };
                let sessions = db::sessions::revoke(conn, Which::AllOf(user), action).await?;
                let rotation = rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                let details = serde_json::json!({
                    "sessions_revoked": sessions,
                    "generation": rotation.generation,
                });
                audit::record(conn, ctx, row.tenant_id, action, Some(user), details).await
            })
            .await?;
        self.metrics.rotations(action, 1);
        self.key_records.publish(user).await
    }

    /// Deletes expired refresh tokens and sessions that no longer matter.
    pub async fn prune(&self) -> Result<(usize, usize), DomainError> {
        Ok(self
            .db
            .query(async |conn| db::sessions::prune(conn).await)
            .await?)
    }
}

fn refuse<T>(reason: RefreshFailure, user: Option<UserId>) -> Result<T, DomainError> {
    tracing::info!(
        user_id = user.map(tracing::field::display),
        reason = reason.as_str(),
        "refresh refused"
    );
    Err(DomainError::InvalidGrant(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_long_random_and_never_printed() {
        let (a, b) = (
            RefreshToken::generate().unwrap(),
            RefreshToken::generate().unwrap(),
        );
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(REFRESH_PREFIX));
        assert_eq!(
            a.expose().len(),
            REFRESH_PREFIX.len() + 43,
            "256 bits in base64url"
        );
        assert_eq!(format!("{a:?}"), "RefreshToken(<redacted>)");
        assert_ne!(
            RefreshToken::hash_of(a.expose()),
            RefreshToken::hash_of(b.expose())
        );
    }
}
