//! Passwords as their users use them: login, the one way a session starts,
//! and changing one's own password.

use std::sync::Arc;
use std::time::Duration;

use crate::db::sessions::Sessions as Which;
use crate::db::users::Lock;
use crate::db::{self, Db};
use crate::domain::accounts::hashing::PasswordHasher;
use crate::domain::accounts::password::Password;
use crate::domain::accounts::sessions::{Client, Sessions, TokenPair};
use crate::domain::audit::{self, Actor, AuditContext};
use crate::domain::error::{DomainError, LoginFailure};
use crate::domain::keys::secrets::MasterKey;
use crate::domain::tokens::key_records::KeyRecords;
use crate::domain::tokens::metrics::TokenMetrics;
use crate::domain::tokens::rotation::rotate_locked;
use crate::metrics::{Area, Metrics};
use crate::types::ids::{InvalidInput, Role, TenantId, TenantSlug, UserId, Username};

/// Login attempts by outcome.
pub struct LoginMetrics {
    logins: prometheus::IntCounterVec,
}

impl Area for LoginMetrics {
    fn register(metrics: &Metrics) -> Self {
        Self {
            logins: metrics.counter_vec("logins_total", "Login attempts by outcome", &["outcome"]),
        }
    }
}

/// What a sign-in is for: the API (any role, sessions of the configured
/// refresh lifetime) or the admin console (admins only, and a session that
/// ends with the console's, `console::MAX_AGE` at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Api,
    Console,
}

/// Password login and password changes, and the sessions they start.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    hasher: PasswordHasher,
    master_key: Arc<MasterKey>,
    key_records: KeyRecords,
    sessions: Sessions,
    metrics: Arc<TokenMetrics>,
    logins: prometheus::IntCounterVec,
}

impl Accounts {
    pub fn new(
        db: Db,
        hasher: PasswordHasher,
        master_key: Arc<MasterKey>,
        key_records: KeyRecords,
        sessions: Sessions,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            hasher,
            master_key,
            key_records,
            sessions,
            metrics: metrics.area(),
            logins: metrics.area::<LoginMetrics>().logins.clone(),
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
        client: &Client,
        purpose: Purpose,
    ) -> Result<TokenPair, DomainError> {
        let refuse = |reason: LoginFailure, user: Option<UserId>| {
            tracing::info!(
                tenant,
                user_id = user.map(tracing::field::display),
                reason = reason.as_str(),
                "login refused"
            );
            self.logins.with_label_values(&[reason.as_str()]).inc();
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
        let lifetime = match purpose {
            Purpose::Api => None,
            Purpose::Console if record.role != Role::Admin => {
                return refuse(LoginFailure::NotAdmin, Some(user));
            }
            Purpose::Console => Some(super::console::MAX_AGE),
        };
        let tokens = self.sessions.start(&record, client, lifetime).await?;
        self.logins.with_label_values(&["success"]).inc();
        tracing::info!(tenant, user_id = %user, sid = %tokens.access.claims.sid, "login succeeded");
        Ok(tokens)
    }

    /// A signed-in user changes their own password, proving the current one.
    /// As when an admin sets it, the secret rotates and every session ends,
    /// so every earlier token of the user dies on every instance; the answer
    /// is a new session's pair. A wrong current password is
    /// `InvalidCredentials`, like a failed login.
    pub async fn change_password(
        &self,
        user: UserId,
        tenant: TenantId,
        current: Password,
        new: String,
        client: &Client,
    ) -> Result<TokenPair, DomainError> {
        let new =
            Password::parse_new(new).map_err(|e| InvalidInput::new("new_password", e.reason))?;
        let row = self
            .db
            .query(async |conn| db::users::find(conn, user, Lock::No).await)
            .await?
            .filter(|row| row.tenant_id == tenant);
        let matches = self
            .hasher
            .verify(current, row.as_ref().map(|row| row.password_hash.clone()))
            .await?;
        if !matches || row.is_none() {
            tracing::info!(user_id = %user, reason = LoginFailure::WrongPassword.as_str(), "password change refused");
            return Err(DomainError::InvalidCredentials(LoginFailure::WrongPassword));
        }
        let password_hash = self.hasher.hash(new).await?;
        let ctx = AuditContext {
            actor: Actor::User { user, tenant },
            request_id: None,
        };
        self.db
            .transaction(async |conn| {
                db::users::find(conn, user, Lock::ForUpdate)
                    .await?
                    .ok_or(DomainError::NotFound("user"))?;
                let changes = db::users::UserChanges {
                    password_hash: Some(&password_hash),
                    ..Default::default()
                };
                db::users::update(conn, user, changes).await?;
                let rotation = rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                let ended =
                    db::sessions::revoke(conn, Which::AllOf(user), "password_changed").await?;
                let details = serde_json::json!({
                    "generation": rotation.generation,
                    "sessions_ended": ended,
                });
                audit::record(conn, &ctx, tenant, "password_changed", Some(user), details).await
            })
            .await?;
        self.key_records.publish(user).await?;
        self.metrics.rotations("password_changed", 1);
        let record = self
            .key_records
            .load(user)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        let tokens = self.sessions.start(&record, client, None).await?;
        tracing::info!(user_id = %user, sid = %tokens.access.claims.sid, "password changed");
        Ok(tokens)
    }
}
