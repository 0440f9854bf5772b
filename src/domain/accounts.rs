//! Password login: the one way a session starts.

use super::error::{DomainError, LoginFailure};
use super::key_records::KeyRecords;
use super::password::{Password, PasswordHasher};
use super::sessions::{Sessions, TokenPair};
use crate::db::{self, Db};
use crate::metrics::Metrics;
use crate::types::ids::{TenantSlug, UserId, Username};

/// Password login, and the sessions it starts.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    hasher: PasswordHasher,
    key_records: KeyRecords,
    sessions: Sessions,
    metrics: Metrics,
}

impl Accounts {
    pub fn new(
        db: Db,
        hasher: PasswordHasher,
        key_records: KeyRecords,
        sessions: Sessions,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            hasher,
            key_records,
            sessions,
            metrics,
        }
    }

    /// Password login. Every failure is `InvalidCredentials`, and every attempt
    /// with a password of acceptable length costs exactly one argon2id
    /// evaluation, whether or not the tenant and user exist.
    pub async fn login(
        &self,
        tenant: &str,
        username: &str,
        password: Password,
    ) -> Result<TokenPair, DomainError> {
        let refuse = |reason: LoginFailure, user: Option<UserId>| {
            tracing::info!(
                tenant,
                user_id = user.map(tracing::field::display),
                reason = reason.as_str(),
                "login refused"
            );
            self.metrics.login(reason.as_str());
            Err(DomainError::InvalidCredentials(reason))
        };
        // Over the public length limits: refused before any work is done.
        if password.is_over_limit()
            || username.len() > Username::MAX_LEN
            || tenant.len() > TenantSlug::MAX_LEN
        {
            return refuse(LoginFailure::InputTooLong, None);
        }
        let names = TenantSlug::parse(tenant)
            .ok()
            .zip(Username::parse(username).ok());
        let candidate = match &names {
            Some((tenant, username)) => {
                self.db
                    .query(async |conn| db::users::find_by_login(conn, tenant, username).await)
                    .await?
            }
            None => None,
        };
        let password_matches = self
            .hasher
            .verify(
                password,
                candidate.as_ref().map(|user| user.password_hash.clone()),
            )
            .await?;
        let user = match candidate {
            None if names.is_none() => return refuse(LoginFailure::MalformedInput, None),
            None => return refuse(LoginFailure::UnknownUser, None),
            Some(user) if !password_matches => {
                return refuse(LoginFailure::WrongPassword, Some(user.id));
            }
            Some(user) if user.disabled_at.is_some() => {
                return refuse(LoginFailure::Disabled, Some(user.id));
            }
            Some(user) => user.id,
        };
        let Some(record) = self.key_records.load(user).await? else {
            // Deleted between the password check and now.
            return refuse(LoginFailure::UnknownUser, Some(user));
        };
        if record.disabled {
            return refuse(LoginFailure::Disabled, Some(user));
        }
        let tokens = self.sessions.start(&record).await?;
        self.metrics.login("success");
        tracing::info!(tenant, user_id = %user, sid = %tokens.access.claims.sid, "login succeeded");
        Ok(tokens)
    }
}
