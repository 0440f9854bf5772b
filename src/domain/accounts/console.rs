//! Console sessions: how the admin console keeps an admin signed in.
//!
//! The console signs in through the same login as the API (`Purpose::Console`:
//! admins only) and holds an ordinary session, so it shows in the admin's
//! list of sessions and dies with logout-all, a rotation of their secret or
//! a revocation, exactly like any other. What the browser keeps is the
//! session's access token; the refresh token is never handed to it (its
//! lifetime is capped at `MAX_AGE`, so the session leaves the list with it).
//!
//! On each request the token is verified as on the API. Every `RENEW_AFTER`
//! the console mints the same session a new access token (one short
//! transaction), which is where the console's own limits are enforced:
//! `IDLE` since the session was last used, `MAX_AGE` since it started. A
//! token that expired while the admin was idle is still renewed if it
//! expired within `IDLE` and everything else about it holds now (signature
//! under a generation still usable, same user and role, session not revoked).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::db::{self, Db};
use crate::domain::accounts::sessions::{Client, Sessions};
use crate::domain::error::{DomainError, Rejection};
use crate::domain::tokens::claims::{IssuedToken, Issuer};
use crate::domain::tokens::key_records::KeyRecords;
use crate::domain::tokens::verify::{TokenRules, Unverified, Verified, Verifier};
use crate::types::ids::{Role, SessionId, UserId};

/// A console session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No console session lasts longer.
pub const MAX_AGE: Duration = Duration::from_secs(8 * 60 * 60);
/// The console renews a token this old (and records the session's use).
pub const RENEW_AFTER: Duration = Duration::from_secs(60);

/// Why a console session ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Idle,
    TooOld,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Idle => "console_idle",
            Ended::TooOld => "console_expired",
        }
    }
}

/// Whether a session started at `created` and last used at `last_used` may
/// go on at `now`.
pub fn judge(
    created: DateTime<Utc>,
    last_used: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Ended> {
    let since = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
    if since(created) >= MAX_AGE {
        return Err(Ended::TooOld);
    }
    if since(last_used) >= IDLE {
        return Err(Ended::Idle);
    }
    Ok(())
}

/// A console request's admin, and the token to set instead of the one
/// presented, when it was renewed.
pub struct Resumed {
    pub verified: Verified,
    pub renewed: Option<IssuedToken>,
}

#[derive(Clone)]
pub struct ConsoleSessions {
    db: Db,
    verifier: Verifier,
    rules: TokenRules,
    key_records: KeyRecords,
    issuer: Issuer,
    sessions: Sessions,
}

impl ConsoleSessions {
    pub fn new(
        db: Db,
        verifier: Verifier,
        rules: TokenRules,
        key_records: KeyRecords,
        issuer: Issuer,
        sessions: Sessions,
    ) -> Self {
        Self {
            db,
            verifier,
            rules,
            key_records,
            issuer,
            sessions,
        }
    }

    /// The admin a console request comes from, renewing their token when it
    /// is `RENEW_AFTER` old or expired. Any refusal is `InvalidToken`.
    pub async fn resume(&self, token: &str, client: &Client) -> Result<Resumed, DomainError> {
        let (verified, expired) = match self.verifier.verify(token).await {
            Ok(verified) => (verified, false),
            Err(DomainError::InvalidToken(Rejection::Expired)) => {
                (self.expired_within_idle(token).await?, true)
            }
            Err(e) => return Err(e),
        };
        if verified.record.role != Role::Admin {
            return Err(Rejection::ClaimsMismatch.into());
        }
        let age = Utc::now().timestamp() - verified.claims.iat;
        if !expired && age < RENEW_AFTER.as_secs() as i64 {
            return Ok(Resumed {
                verified,
                renewed: None,
            });
        }
        let renewed = self.renew(&verified, client).await?;
        Ok(Resumed {
            verified,
            renewed: Some(renewed),
        })
    }

    /// Ends the console session (sign-out): its tokens die everywhere.
    pub async fn sign_out(&self, user: UserId, sid: SessionId) -> Result<(), DomainError> {
        self.sessions.logout(user, sid).await
    }

    /// A token refused only for having expired, no longer than `IDLE` ago:
    /// checked as at its expiry, against the user's record as it is now, with
    /// its generation still usable now (a rotation since ends it).
    async fn expired_within_idle(&self, token: &str) -> Result<Verified, DomainError> {
        let unverified = Unverified::read(token)?;
        let exp = expiry(token).ok_or(Rejection::Malformed)?;
        let now = Utc::now();
        if now.timestamp().saturating_sub(exp) > IDLE.as_secs() as i64 {
            return Err(Rejection::Expired.into());
        }
        let record = self
            .key_records
            .load(unverified.user_id)
            .await?
            .ok_or(Rejection::UnknownUser)?;
        record
            .usable(unverified.generation, now)
            .ok_or(Rejection::RetiredGeneration)?;
        let at = DateTime::from_timestamp(exp, 0).ok_or(Rejection::Malformed)?;
        let claims = self
            .rules
            .check(token, unverified.generation, &record, at)?;
        Ok(Verified { claims, record })
    }

    /// A new access token for the same session, if the session may go on;
    /// one that may not is ended (and the token refused).
    async fn renew(
        &self,
        verified: &Verified,
        client: &Client,
    ) -> Result<IssuedToken, DomainError> {
        let (user, sid) = (verified.record.user_id, verified.claims.sid);
        let issued = self.issuer.issue(&verified.record, sid)?;
        let until = DateTime::from_timestamp(issued.claims.exp, 0).unwrap_or_else(Utc::now);
        let outcome = self
            .db
            .transaction(async |conn| {
                let session = db::sessions::lock_session(conn, sid).await?;
                let Some(session) = session.filter(|s| s.revoked_at.is_none() && s.user_id == user)
                else {
                    return Ok(Err(None));
                };
                let last_used = session.last_used_at.unwrap_or(session.created_at);
                if let Err(ended) = judge(session.created_at, last_used, Utc::now()) {
                    return Ok(Err(Some(ended)));
                }
                db::sessions::extend_session(conn, sid, until, client.as_use()).await?;
                Ok::<_, DomainError>(Ok(()))
            })
            .await?;
        match outcome {
            Ok(()) => Ok(issued),
            Err(None) => Err(Rejection::RevokedSession.into()),
            Err(Some(ended)) => {
                tracing::info!(user_id = %user, %sid, reason = ended.as_str(), "console session ended");
                self.sessions.end(user, sid, ended.as_str(), None).await?;
                Err(Rejection::RevokedSession.into())
            }
        }
    }
}

/// The `exp` claim of a token whose shape `Unverified::read` accepted; not
/// trusted until `TokenRules::check` has verified the signature over it.
fn expiry(token: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: i64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Exp>(&bytes).ok().map(|e| e.exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    #[test]
    fn a_session_ends_idle_after_thirty_minutes_and_old_after_eight_hours() {
        assert_eq!(judge(at(0), at(0), at(29)), Ok(()));
        assert_eq!(judge(at(0), at(0), at(30)), Err(Ended::Idle));
        assert_eq!(judge(at(0), at(470), at(479)), Ok(()));
        assert_eq!(judge(at(0), at(479), at(480)), Err(Ended::TooOld));
        // Age is judged first: an old and idle session is too old.
        assert_eq!(judge(at(0), at(0), at(600)), Err(Ended::TooOld));
    }

    #[test]
    fn expiry_reads_exp_and_nothing_else() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","exp":1800000123}"#);
        assert_eq!(expiry(&format!("h.{payload}.s")), Some(1_800_000_123));
        assert_eq!(expiry("h.!!.s"), None);
        assert_eq!(expiry("h"), None);
    }
}
