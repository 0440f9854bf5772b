//! Tenant administration: users, roles, secret rotation and the audit log.
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

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::accounts::{NewUser, Tenant, User};
use super::error::{Conflict, DomainError, is_unique_violation};
use super::ids::{Generation, Role, TenantId, TenantName, TenantSlug, UserId, Username};
use super::key_records::KeyRecords;
use super::password::{Password, PasswordHasher};
use super::secrets::{MasterKey, UserSecret};
use super::service_keys::ServiceKeyId;
use crate::db::{self, Db};
use crate::metrics::Metrics;

/// Longest grace period a rotation may give the previous generation.
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);
/// Largest page of a listing.
pub const MAX_PAGE: u32 = 200;
/// Users rotated per transaction by a tenant-wide rotation.
const ROTATION_BATCH: i64 = 100;

/// Who is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Service(ServiceKeyId),
    Admin {
        user: UserId,
        tenant: TenantId,
    },
    Operator,
    /// The service acting on its own, e.g. on refresh-token reuse.
    System,
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::Service(_) => "service",
            Actor::Admin { .. } => "user",
            Actor::Operator => "operator",
            Actor::System => "system",
        }
    }

    fn id(&self) -> String {
        match self {
            Actor::Service(key) => key.to_string(),
            Actor::Admin { user, .. } => user.to_string(),
            Actor::Operator => "cli".to_owned(),
            Actor::System => "tenant-jwt".to_owned(),
        }
    }

    fn may_manage(&self, tenant: TenantId) -> bool {
        match self {
            Actor::Service(_) | Actor::Operator | Actor::System => true,
            Actor::Admin { tenant: own, .. } => *own == tenant,
        }
    }
}

/// The actor and the request an action belongs to, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub request_id: Option<String>,
}

/// What a PATCH may change; `None` leaves it as it is.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<Password>,
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub user_id: UserId,
    pub generation: Generation,
    pub previous_generation_valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: Uuid,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target_user_id: Option<UserId>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A page of a keyset-paginated listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<Uuid>,
}

fn user_from_row(row: db::users::UserRow) -> Result<User, DomainError> {
    let corrupt =
        |e: super::ids::InvalidInput| DomainError::Internal(format!("stored user {}: {e}", row.id));
    Ok(User {
        id: row.id.into(),
        tenant_id: row.tenant_id.into(),
        username: Username::parse(&row.username).map_err(corrupt)?,
        role: Role::parse(&row.role).map_err(corrupt)?,
        disabled: row.disabled_at.is_some(),
        created_at: row.created_at,
    })
}

impl<T> Page<T> {
    /// A page from at most `limit` rows read in key order: a full page may
    /// have a successor, a short one is the last.
    fn from_rows<R>(
        rows: Vec<R>,
        limit: i64,
        key: impl Fn(&R) -> Uuid,
        item: impl FnMut(R) -> Result<T, DomainError>,
    ) -> Result<Self, DomainError> {
        let full = i64::try_from(rows.len()).is_ok_and(|n| n == limit);
        let next_after = rows.last().filter(|_| full).map(key);
        Ok(Page {
            items: rows.into_iter().map(item).collect::<Result<_, _>>()?,
            next_after,
        })
    }
}

fn page_limit(limit: Option<u32>) -> Result<i64, DomainError> {
    match limit {
        None => Ok(50),
        Some(0) => Err(super::ids::InvalidInput::new("limit", "must be at least 1").into()),
        Some(n) => Ok(i64::from(n.min(MAX_PAGE))),
    }
}

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

    /// The tenant `slug`, if the actor may manage it; NotFound otherwise, so
    /// another tenant looks exactly like one that does not exist.
    pub async fn tenant(&self, ctx: &AuditContext, slug: &str) -> Result<Tenant, DomainError> {
        let not_found = DomainError::NotFound("tenant");
        let Ok(slug) = TenantSlug::parse(slug) else {
            return Err(not_found);
        };
        let row = self
            .db
            .query(async |conn| db::tenants::find_by_slug(conn, slug.as_str()).await)
            .await?
            .filter(|row| ctx.actor.may_manage(row.id.into()))
            .ok_or(not_found)?;
        Ok(Tenant {
            id: row.id.into(),
            slug,
            name: TenantName::parse(&row.name)?,
            created_at: row.created_at,
        })
    }

    pub async fn list_users(
        &self,
        ctx: &AuditContext,
        slug: &str,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Page<User>, DomainError> {
        let limit = page_limit(limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::users::page(conn, tenant.id.as_uuid(), after, limit).await)
            .await?;
        Page::from_rows(rows, limit, |row| row.id, user_from_row)
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
            .query(async |conn| {
                db::users::find_in_tenant(conn, tenant.id.as_uuid(), user.as_uuid()).await
            })
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        user_from_row(row)
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
                        id: user_id.as_uuid(),
                        tenant_id: tenant.id.as_uuid(),
                        username: new.username.as_str(),
                        password_hash: &password_hash,
                        role: new.role.as_str(),
                    },
                )
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        DomainError::Conflict(Conflict::Username)
                    } else {
                        e.into()
                    }
                })?;
                db::secrets::insert(
                    conn,
                    db::secrets::NewSecret {
                        user_id: user_id.as_uuid(),
                        generation: Generation::FIRST.get(),
                        ciphertext: &sealed,
                    },
                )
                .await?;
                let details = serde_json::json!({ "username": new.username, "role": new.role });
                audit(conn, ctx, tenant.id, "user_created", Some(user_id), details).await?;
                Ok::<_, DomainError>(row)
            })
            .await?;
        tracing::info!(tenant = %tenant.slug, %user_id, role = %new.role, actor = %ctx.actor.id(), "user created");
        user_from_row(row)
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
        if patch.role.is_none() && patch.disabled.is_none() && patch.password.is_none() {
            return Err(super::ids::InvalidInput::new("body", "names nothing to change").into());
        }
        let tenant = self.tenant(ctx, slug).await?;
        let password_hash = match patch.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let (row, rotated) = self
            .db
            .transaction(async |conn| {
                db::tenants::lock(conn, tenant.id.as_uuid()).await?;
                let current = db::users::lock(conn, tenant.id.as_uuid(), user.as_uuid())
                    .await?
                    .ok_or(DomainError::NotFound("user"))?;
                let was_active_admin = current.role == "admin" && current.disabled_at.is_none();
                let role_change = patch.role.filter(|role| role.as_str() != current.role);
                let disabled_change = patch
                    .disabled
                    .filter(|&d| d != current.disabled_at.is_some());
                let stays_active_admin = role_change
                    .map_or(current.role == "admin", |r| r == Role::Admin)
                    && !disabled_change.unwrap_or(current.disabled_at.is_some());
                if was_active_admin && !stays_active_admin {
                    ensure_other_admin(conn, tenant.id, user).await?;
                }
                let changes = db::users::UserChanges {
                    role: role_change.map(Role::as_str),
                    password_hash: password_hash.as_deref(),
                    disabled_at: disabled_change.map(|d| d.then(Utc::now)),
                };
                let row = db::users::update(conn, user.as_uuid(), changes).await?;
                let security_event = role_change.is_some()
                    || password_hash.is_some()
                    || disabled_change == Some(true);
                if security_event {
                    rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                }
                // A new password or a disabled account also ends every session:
                // no refresh token may outlive it. A role change keeps them;
                // new access tokens carry the new role.
                let sessions_ended = password_hash.is_some() || disabled_change == Some(true);
                if sessions_ended {
                    db::sessions::revoke_all_for_user(conn, user.as_uuid(), "user_updated").await?;
                }
                let details = serde_json::json!({
                    "role": role_change,
                    "disabled": disabled_change,
                    "password_changed": password_hash.is_some(),
                    "secret_rotated": security_event,
                    "sessions_ended": sessions_ended,
                });
                audit(conn, ctx, tenant.id, "user_updated", Some(user), details).await?;
                Ok::<_, DomainError>((row, security_event))
            })
            .await?;
        self.key_records.publish(user).await?;
        if rotated {
            self.metrics.rotations("security_event", 1);
        }
        tracing::info!(tenant = %tenant.slug, user_id = %user, actor = %ctx.actor.id(), "user updated");
        user_from_row(row)
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
                db::tenants::lock(conn, tenant.id.as_uuid()).await?;
                let current = db::users::lock(conn, tenant.id.as_uuid(), user.as_uuid())
                    .await?
                    .ok_or(DomainError::NotFound("user"))?;
                if current.role == "admin" && current.disabled_at.is_none() {
                    ensure_other_admin(conn, tenant.id, user).await?;
                }
                let tombstone = db::users::delete(conn, user.as_uuid()).await?;
                let details = serde_json::json!({ "username": current.username });
                audit(conn, ctx, tenant.id, "user_deleted", Some(user), details).await?;
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
            return Err(
                super::ids::InvalidInput::new("grace_seconds", "must be 0 to 86400").into(),
            );
        }
        let tenant = self.tenant(ctx, slug).await?;
        let rotation = self
            .db
            .transaction(async |conn| {
                db::users::lock(conn, tenant.id.as_uuid(), user.as_uuid())
                    .await?
                    .ok_or(DomainError::NotFound("user"))?;
                let rotation = rotate_locked(conn, &self.master_key, user, grace).await?;
                // Without grace this is "log out everywhere": refresh tokens die
                // too. With grace it is a planned key rollover: sessions go on.
                if grace.is_zero() {
                    db::sessions::revoke_all_for_user(conn, user.as_uuid(), "secret_rotated")
                        .await?;
                }
                let details = serde_json::json!({
                    "generation": rotation.generation,
                    "grace_seconds": grace.as_secs(),
                });
                audit(conn, ctx, tenant.id, "secret_rotated", Some(user), details).await?;
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
        let mut after = None;
        let mut unpublished = 0usize;
        loop {
            let batch: Vec<UserId> = self
                .db
                .query(async |conn| {
                    db::users::page(conn, tenant.id.as_uuid(), after, ROTATION_BATCH).await
                })
                .await?
                .into_iter()
                .map(|row| UserId::from(row.id))
                .collect();
            let Some(last) = batch.last() else { break };
            after = Some(last.as_uuid());
            let done: Vec<UserId> = self
                .db
                .transaction(async |conn| {
                    let mut done = Vec::with_capacity(batch.len());
                    for &user in &batch {
                        // Deleted since the page was read: nothing to rotate.
                        if db::users::lock(conn, tenant.id.as_uuid(), user.as_uuid())
                            .await?
                            .is_some()
                        {
                            rotate_locked(conn, &self.master_key, user, Duration::ZERO).await?;
                            db::sessions::revoke_all_for_user(
                                conn,
                                user.as_uuid(),
                                "tenant_secrets_rotated",
                            )
                            .await?;
                            done.push(user);
                        }
                    }
                    let details = serde_json::json!({ "users": done.len() });
                    audit(
                        conn,
                        ctx,
                        tenant.id,
                        "tenant_secrets_rotated",
                        None,
                        details,
                    )
                    .await?;
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
            return Err(DomainError::Unavailable(format!(
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
        let limit = page_limit(limit)?;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::audit::page(conn, tenant.id.as_uuid(), after, limit).await)
            .await?;
        Page::from_rows(
            rows,
            limit,
            |row| row.id,
            |row| {
                Ok(AuditEvent {
                    id: row.id,
                    actor_kind: row.actor_kind,
                    actor_id: row.actor_id,
                    action: row.action,
                    target_user_id: row.target_user_id.map(UserId::from),
                    details: row.details,
                    request_id: row.request_id,
                    created_at: row.created_at,
                })
            },
        )
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
            .query(async |conn| {
                db::users::find_by_login(conn, tenant.slug.as_str(), username.as_str()).await
            })
            .await?
            .map(|row| UserId::from(row.id))
            .ok_or(DomainError::NotFound("user"))
    }
}

/// Retires the current generation (valid until now + grace) and makes a new
/// random one current. The caller holds the user's row lock.
pub(super) async fn rotate_locked(
    conn: &mut AsyncPgConnection,
    master_key: &MasterKey,
    user: UserId,
    grace: Duration,
) -> Result<Rotation, DomainError> {
    let current = db::secrets::current_generation(conn, user.as_uuid()).await?;
    let valid_until = Utc::now()
        + chrono::Duration::from_std(grace).map_err(|e| DomainError::Internal(e.to_string()))?;
    db::secrets::retire(conn, user.as_uuid(), current, valid_until).await?;
    let next = Generation::from_db(current).next();
    let sealed = master_key.seal(user, next, &UserSecret::generate()?)?;
    db::secrets::insert(
        conn,
        db::secrets::NewSecret {
            user_id: user.as_uuid(),
            generation: next.get(),
            ciphertext: &sealed,
        },
    )
    .await?;
    db::users::bump_version(conn, user.as_uuid()).await?;
    Ok(Rotation {
        user_id: user,
        generation: next,
        previous_generation_valid_until: valid_until,
    })
}

/// Refuses to leave a tenant without an enabled admin. The caller holds the
/// tenant's row lock, so two admins cannot demote each other at once.
async fn ensure_other_admin(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<(), DomainError> {
    if db::users::count_other_active_admins(conn, tenant.as_uuid(), user.as_uuid()).await? == 0 {
        return Err(DomainError::Conflict(Conflict::LastAdmin));
    }
    Ok(())
}

pub(super) async fn audit(
    conn: &mut AsyncPgConnection,
    ctx: &AuditContext,
    tenant: TenantId,
    action: &str,
    target: Option<UserId>,
    details: serde_json::Value,
) -> Result<(), DomainError> {
    let row = db::audit::AuditRow {
        id: Uuid::now_v7(),
        tenant_id: tenant.as_uuid(),
        actor_kind: ctx.actor.kind().to_owned(),
        actor_id: ctx.actor.id(),
        action: action.to_owned(),
        target_user_id: target.map(|u| u.as_uuid()),
        details,
        request_id: ctx.request_id.clone(),
        created_at: Utc::now(),
    };
    Ok(db::audit::insert(conn, &row).await?)
}
