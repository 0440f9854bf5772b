//! Tenants, users and login. Every entry point here is shared by the HTTP
//! handlers and the CLI.

use super::error::{Conflict, DomainError, LoginFailure, is_unique_violation};
use super::ids::{Role, TenantId, TenantName, TenantSlug, UserId, Username};
use super::key_records::KeyRecords;
use super::password::{Password, PasswordHasher};
use super::sessions::{Sessions, TokenPair};
use crate::db::{self, Db};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: TenantName,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

pub async fn create_tenant(
    db: &Db,
    slug: TenantSlug,
    name: TenantName,
) -> Result<Tenant, DomainError> {
    let new = db::tenants::NewTenant {
        id: TenantId::generate().as_uuid(),
        slug: slug.as_str(),
        name: name.as_str(),
    };
    let row = db
        .run(async |conn| {
            db::tenants::insert(conn, new).await.map_err(|e| {
                if is_unique_violation(&e) {
                    DomainError::Conflict(Conflict::TenantSlug)
                } else {
                    e.into()
                }
            })
        })
        .await?;
    tracing::info!(tenant = %slug, tenant_id = %row.id, "tenant created");
    Ok(Tenant {
        id: row.id.into(),
        slug,
        name,
        created_at: row.created_at,
    })
}

/// What it takes to create a user.
pub struct NewUser {
    pub username: Username,
    pub password: Password,
    pub role: Role,
}

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
                    .query(async |conn| {
                        db::users::find_by_login(conn, tenant.as_str(), username.as_str()).await
                    })
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
                return refuse(LoginFailure::WrongPassword, Some(user.id.into()));
            }
            Some(user) if user.disabled_at.is_some() => {
                return refuse(LoginFailure::Disabled, Some(user.id.into()));
            }
            Some(user) => UserId::from(user.id),
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
