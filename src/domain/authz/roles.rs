//! A tenant's roles and who holds them, administered by its admins (and
//! services). Every write takes the tenant's next `authz_version` first,
//! which locks the tenant's row: a tenant's changes take turns, so the limits
//! and `If-Match` are checked against what is really there, and the version
//! orders them. Each write is audited in its own transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::effective::Effective;
use super::grammar::{Pattern, RoleName};
use crate::db::users::Lock;
use crate::db::{self, Db};
use crate::domain::admin::{Admin, in_tenant};
use crate::domain::audit::{self, AuditContext};
use crate::domain::error::{Conflict, DomainError, is_unique_violation};
use crate::domain::page;
use crate::types::ids::{InvalidInput, RoleId, TenantId, UserId};

/// Roles a tenant may define.
pub const MAX_ROLES_PER_TENANT: i64 = 500;
/// Patterns one role may grant.
pub const MAX_PATTERNS_PER_ROLE: usize = 200;
/// Roles one user may hold.
pub const MAX_ROLES_PER_USER: usize = 50;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A role as the domain hands it out.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    pub permissions: Vec<Pattern>,
    /// Grows with each change: the ETag.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a change answers besides its result: the tenant's new version.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub authz_version: i64,
}

/// A user's roles, their effective patterns, and the version they were read at.
#[derive(Debug, Clone)]
pub struct UserRoles {
    pub roles: Vec<RoleName>,
    pub permissions: Vec<Pattern>,
    pub authz_version: i64,
}

/// A new role, its input parsed.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: RoleName,
    pub description: String,
    pub permissions: Vec<Pattern>,
}

/// What a `PATCH` changes; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub description: Option<String>,
    pub permissions: Option<Vec<Pattern>>,
}

/// A role's patterns: at most 200 listed, each parsed, kept once, sorted.
pub fn patterns<S: AsRef<str>>(raw: &[S]) -> Result<Vec<Pattern>, InvalidInput> {
    if raw.len() > MAX_PATTERNS_PER_ROLE {
        return Err(InvalidInput::new(
            "permissions",
            "a role grants at most 200 patterns",
        ));
    }
    let mut patterns = raw
        .iter()
        .map(|p| Pattern::parse(p.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    patterns.sort_by_key(ToString::to_string);
    patterns.dedup();
    Ok(patterns)
}

pub fn description(raw: Option<String>) -> Result<String, InvalidInput> {
    let raw = raw.unwrap_or_default();
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(InvalidInput::new("description", "at most 500 characters"));
    }
    Ok(raw)
}

/// The roles a user is to hold: at most 50 listed, each a role name, kept once.
pub fn role_names<S: AsRef<str>>(raw: &[S]) -> Result<Vec<RoleName>, InvalidInput> {
    if raw.len() > MAX_ROLES_PER_USER {
        return Err(InvalidInput::new("roles", "a user holds at most 50 roles"));
    }
    let mut names = raw
        .iter()
        .map(|n| {
            RoleName::parse(n.as_ref())
                .map_err(|_| InvalidInput::new("roles", "each must be a role name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    Ok(names)
}

/// `If-Match`: a change made against a revision that is no longer the
/// role's is refused, so two admins cannot silently undo each other.
/// `None`: no condition (no header, or `*`).
pub fn precondition(if_match: Option<&[i64]>, current: i64) -> Result<(), DomainError> {
    match if_match {
        Some(revisions) if !revisions.contains(&current) => Err(DomainError::Stale),
        _ => Ok(()),
    }
}

/// A page of a tenant's roles, by name.
#[derive(Debug, Clone)]
pub struct RolePage {
    pub roles: Vec<Role>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<RoleName>,
}

fn stored(patterns: &[Pattern]) -> Vec<String> {
    patterns.iter().map(ToString::to_string).collect()
}

impl TryFrom<db::roles::RoleRow> for Role {
    type Error = DomainError;

    /// Stored rows were checked on their way in; one that no longer parses
    /// is a broken invariant.
    fn try_from(row: db::roles::RoleRow) -> Result<Self, DomainError> {
        let broken =
            |what: &str| DomainError::internal(format!("stored role {}: bad {what}", row.id));
        Ok(Self {
            name: RoleName::parse(&row.name).map_err(|_| broken("name"))?,
            permissions: patterns(&row.permissions).map_err(|_| broken("permissions"))?,
            description: row.description,
            revision: row.revision,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Roles and assignments; tenant access as for the rest of administration.
#[derive(Clone)]
pub struct Roles {
    db: Db,
    admin: Admin,
}

impl Roles {
    pub fn new(db: Db, admin: Admin) -> Self {
        Self { db, admin }
    }

    async fn tenant(&self, ctx: &AuditContext, slug: &str) -> Result<TenantId, DomainError> {
        Ok(self.admin.tenant(ctx, slug).await?.id)
    }

    pub async fn create(
        &self,
        ctx: &AuditContext,
        slug: &str,
        new: NewRole,
    ) -> Result<Versioned<Role>, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                let authz_version = db::roles::next_version(conn, tenant).await?;
                if db::roles::count(conn, tenant).await? >= MAX_ROLES_PER_TENANT {
                    return Err(DomainError::Conflict(Conflict::RoleLimit));
                }
                let permissions = stored(&new.permissions);
                let row = db::roles::insert(
                    conn,
                    db::roles::NewRole {
                        id: RoleId::generate(),
                        tenant_id: tenant,
                        name: new.name.as_str(),
                        description: &new.description,
                        permissions: &permissions,
                    },
                )
                .await
                .map_err(|e| match is_unique_violation(&e) {
                    true => DomainError::Conflict(Conflict::RoleName),
                    false => e.into(),
                })?;
                let details = json!({ "name": new.name, "permissions": permissions });
                audit::record(conn, ctx, tenant, "role_created", None, details).await?;
                Ok(Versioned {
                    value: Role::try_from(row)?,
                    authz_version,
                })
            })
            .await
    }

    pub async fn list(
        &self,
        ctx: &AuditContext,
        slug: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<RolePage, DomainError> {
        let limit = page::request(None, limit)?.limit;
        let tenant = self.tenant(ctx, slug).await?;
        let rows = self
            .db
            .query(async |conn| db::roles::page(conn, tenant, after, limit).await)
            .await?;
        let full = i64::try_from(rows.len()).is_ok_and(|n| n == limit);
        let roles = rows
            .into_iter()
            .map(Role::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = roles.last().filter(|_| full).map(|role| role.name.clone());
        Ok(RolePage { roles, next_after })
    }

    pub async fn get(
        &self,
        ctx: &AuditContext,
        slug: &str,
        name: &str,
    ) -> Result<Role, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        let row = self
            .db
            .query(async |conn| db::roles::find(conn, tenant, name).await)
            .await?;
        Role::try_from(row.ok_or(DomainError::NotFound("role"))?)
    }

    /// Applies `patch` if the role is still at revision `if_match` (when given).
    pub async fn update(
        &self,
        ctx: &AuditContext,
        slug: &str,
        name: &str,
        patch: RolePatch,
        if_match: Option<&[i64]>,
    ) -> Result<Versioned<Role>, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                let authz_version = db::roles::next_version(conn, tenant).await?;
                let current = db::roles::find(conn, tenant, name)
                    .await?
                    .ok_or(DomainError::NotFound("role"))?;
                precondition(if_match, current.revision)?;
                let before = Role::try_from(current.clone())?;
                let description = patch.description.unwrap_or(before.description);
                let permissions = patch.permissions.unwrap_or(before.permissions.clone());
                let row = db::roles::update(conn, current.id, &description, &stored(&permissions))
                    .await?;
                let (added, removed): (Vec<_>, Vec<_>) = (
                    permissions
                        .iter()
                        .filter(|p| !before.permissions.contains(p))
                        .collect(),
                    before
                        .permissions
                        .iter()
                        .filter(|p| !permissions.contains(p))
                        .collect(),
                );
                let details = json!({ "name": name, "added": added, "removed": removed });
                audit::record(conn, ctx, tenant, "role_updated", None, details).await?;
                Ok(Versioned {
                    value: Role::try_from(row)?,
                    authz_version,
                })
            })
            .await
    }

    /// Deletes a role; it leaves every user that held it.
    pub async fn delete(
        &self,
        ctx: &AuditContext,
        slug: &str,
        name: &str,
        if_match: Option<&[i64]>,
    ) -> Result<i64, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                let authz_version = db::roles::next_version(conn, tenant).await?;
                let current = db::roles::find(conn, tenant, name)
                    .await?
                    .ok_or(DomainError::NotFound("role"))?;
                precondition(if_match, current.revision)?;
                db::roles::delete(conn, current.id).await?;
                let details = json!({ "name": name, "permissions": current.permissions });
                audit::record(conn, ctx, tenant, "role_deleted", None, details).await?;
                Ok(authz_version)
            })
            .await
    }

    /// Replaces the roles `user` holds; an unknown name changes nothing.
    pub async fn set_user_roles(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
        names: Vec<RoleName>,
    ) -> Result<UserRoles, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                let authz_version = db::roles::next_version(conn, tenant).await?;
                user_in(conn, user, tenant).await?;
                let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                let found = db::roles::named(conn, tenant, &wanted).await?;
                if found.len() != wanted.len() {
                    return Err(DomainError::UnknownRole);
                }
                let before: Vec<String> = db::roles::of_user(conn, user)
                    .await?
                    .into_iter()
                    .map(|row| row.name)
                    .collect();
                let ids: Vec<RoleId> = found.iter().map(|row| row.id).collect();
                db::roles::set_of_user(conn, user, &ids).await?;
                let details = json!({ "before": before, "after": wanted });
                audit::record(conn, ctx, tenant, "user_roles_changed", Some(user), details).await?;
                user_roles(found, authz_version)
            })
            .await
    }

    pub async fn user_roles(
        &self,
        ctx: &AuditContext,
        slug: &str,
        user: UserId,
    ) -> Result<UserRoles, DomainError> {
        let tenant = self.tenant(ctx, slug).await?;
        self.db
            .transaction(async |conn| {
                user_in(conn, user, tenant).await?;
                let rows = db::roles::of_user(conn, user).await?;
                let version = db::roles::version(conn, tenant).await?;
                user_roles(rows, version)
            })
            .await
    }
}

/// NotFound unless `user` is a user of `tenant` (as administration says).
async fn user_in(
    conn: &mut diesel_async::AsyncPgConnection,
    user: UserId,
    tenant: TenantId,
) -> Result<(), DomainError> {
    in_tenant(db::users::find(conn, user, Lock::No).await?, tenant).map(drop)
}

fn user_roles(rows: Vec<db::roles::RoleRow>, authz_version: i64) -> Result<UserRoles, DomainError> {
    let mut roles = rows
        .into_iter()
        .map(Role::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let effective = Effective::of(roles.iter().flat_map(|role| &role.permissions));
    Ok(UserRoles {
        roles: roles.into_iter().map(|role| role.name).collect(),
        permissions: effective.patterns(),
        authz_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_sorted_unique_and_bounded() {
        let parsed = patterns(&["b:*", "a", "b:*", "*"]).unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["*", "a", "b:*"]);
        let many: Vec<String> = (0..201).map(|n| format!("p{n}")).collect();
        assert_eq!(patterns(&many).unwrap_err().field, "permissions");
        assert!(patterns(&many[..200]).is_ok());
        assert!(patterns(&["Bad"]).is_err());
    }

    #[test]
    fn role_lists_and_descriptions_are_bounded() {
        let many: Vec<String> = (0..51).map(|n| format!("r{n}")).collect();
        assert_eq!(role_names(&many).unwrap_err().field, "roles");
        assert!(role_names(&many[..50]).is_ok());
        assert_eq!(role_names(&["a", "a"]).unwrap().len(), 1);
        assert_eq!(role_names(&["A"]).unwrap_err().field, "roles");
        assert!(description(Some("é".repeat(500))).is_ok());
        assert_eq!(
            description(Some("x".repeat(501))).unwrap_err().field,
            "description"
        );
    }

    #[test]
    fn a_stale_if_match_is_refused() {
        assert!(precondition(None, 7).is_ok());
        assert!(precondition(Some(&[7]), 7).is_ok());
        assert!(precondition(Some(&[6, 7]), 7).is_ok());
        assert!(matches!(
            precondition(Some(&[6]), 7),
            Err(DomainError::Stale)
        ));
        assert!(matches!(
            precondition(Some(&[]), 7),
            Err(DomainError::Stale)
        ));
    }
}
