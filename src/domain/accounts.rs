//! Tenants, users and login. Every entry point here is shared by the HTTP
//! handlers and the CLI.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;

use super::error::{Conflict, DomainError, LoginFailure, is_unique_violation};
use super::ids::{Generation, Role, TenantId, TenantName, TenantSlug, UserId, Username};
use super::key_records::KeyRecords;
use super::password::{Password, PasswordHasher};
use super::secrets::{MasterKey, UserSecret};
use super::tokens::{IssuedToken, Issuer};
use crate::db::{self, DbPool};

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
    pool: &DbPool,
    slug: TenantSlug,
    name: TenantName,
) -> Result<Tenant, DomainError> {
    let mut conn = db::connection(pool).await?;
    let new = db::tenants::NewTenant {
        id: TenantId::generate().as_uuid(),
        slug: slug.as_str(),
        name: name.as_str(),
    };
    let row = db::tenants::insert(&mut conn, new).await.map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::Conflict(Conflict::TenantSlug)
        } else {
            e.into()
        }
    })?;
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

/// Creates a user with a fresh random secret (generation 1), in one transaction.
pub async fn create_user(
    pool: &DbPool,
    hasher: &PasswordHasher,
    master_key: &MasterKey,
    tenant: &TenantSlug,
    new: NewUser,
) -> Result<User, DomainError> {
    let tenant_row = {
        let mut conn = db::connection(pool).await?;
        db::tenants::find_by_slug(&mut conn, tenant.as_str())
            .await?
            .ok_or(DomainError::NotFound("tenant"))?
    };
    // Hash before taking a connection for the transaction: hashing is slow.
    let password_hash = hasher.hash(new.password).await?;
    let user_id = UserId::generate();
    let sealed = master_key.seal(user_id, Generation::FIRST, &UserSecret::generate()?)?;

    let mut conn = db::connection(pool).await?;
    let row = conn
        .transaction(async |conn| {
            let row = db::users::insert(
                conn,
                db::users::NewUser {
                    id: user_id.as_uuid(),
                    tenant_id: tenant_row.id,
                    username: new.username.as_str(),
                    password_hash: &password_hash,
                    role: new.role.as_str(),
                },
            )
            .await?;
            db::secrets::insert(
                conn,
                db::secrets::NewSecret {
                    user_id: user_id.as_uuid(),
                    generation: Generation::FIRST.get(),
                    ciphertext: &sealed,
                },
            )
            .await?;
            Ok::<_, diesel::result::Error>(row)
        })
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                DomainError::Conflict(Conflict::Username)
            } else {
                e.into()
            }
        })?;
    tracing::info!(tenant = %tenant, %user_id, role = %new.role, "user created");
    Ok(User {
        id: user_id,
        tenant_id: row.tenant_id.into(),
        username: new.username,
        role: new.role,
        disabled: row.disabled_at.is_some(),
        created_at: row.created_at,
    })
}

/// Password login. Every failure is `InvalidCredentials`, and every attempt
/// with a password of acceptable length costs exactly one argon2id
/// evaluation, whether or not the tenant and user exist.
pub async fn login(
    pool: &DbPool,
    hasher: &PasswordHasher,
    key_records: &KeyRecords,
    issuer: &Issuer,
    tenant: &str,
    username: &str,
    password: Password,
) -> Result<IssuedToken, DomainError> {
    let refuse = |reason: LoginFailure, user: Option<UserId>| {
        tracing::info!(
            tenant,
            user_id = user.map(tracing::field::display),
            reason = reason.as_str(),
            "login refused"
        );
        Err(DomainError::InvalidCredentials(reason))
    };
    if password.is_over_limit() {
        return refuse(LoginFailure::PasswordTooLong, None);
    }
    let names = TenantSlug::parse(tenant)
        .ok()
        .zip(Username::parse(username).ok());
    let candidate = match &names {
        Some((tenant, username)) => {
            let mut conn = db::connection(pool).await?;
            db::users::find_by_login(&mut conn, tenant.as_str(), username.as_str()).await?
        }
        None => None,
    };
    let password_matches = hasher
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
    let Some(record) = key_records.load(user).await? else {
        // Deleted between the password check and now.
        return refuse(LoginFailure::UnknownUser, Some(user));
    };
    if record.disabled {
        return refuse(LoginFailure::Disabled, Some(user));
    }
    let token = issuer.issue(&record)?;
    tracing::info!(tenant, user_id = %user, jti = %token.claims.jti, "login succeeded");
    Ok(token)
}
