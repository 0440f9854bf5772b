//! The `roles` and `user_roles` tables, and the tenant's `authz_version`
//! that every change of them moves in its own transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{roles, tenants, user_roles};
use crate::types::ids::{RoleId, TenantId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = roles, check_for_backend(diesel::pg::Pg))]
pub struct RoleRow {
    pub id: RoleId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = roles)]
pub struct NewRole<'a> {
    pub id: RoleId,
    pub tenant_id: TenantId,
    pub name: &'a str,
    pub description: &'a str,
    pub permissions: &'a [String],
}

/// Moves the tenant's authorization version on by one, locking its row until
/// the transaction ends (so a tenant's changes take turns), and returns it.
pub async fn next_version(conn: &mut AsyncPgConnection, tenant: TenantId) -> QueryResult<i64> {
    diesel::update(tenants::table.find(tenant))
        .set(tenants::authz_version.eq(tenants::authz_version + 1))
        .returning(tenants::authz_version)
        .get_result(conn)
        .await
}

pub async fn version(conn: &mut AsyncPgConnection, tenant: TenantId) -> QueryResult<i64> {
    tenants::table
        .find(tenant)
        .select(tenants::authz_version)
        .first(conn)
        .await
}

pub async fn count(conn: &mut AsyncPgConnection, tenant: TenantId) -> QueryResult<i64> {
    roles::table
        .filter(roles::tenant_id.eq(tenant))
        .count()
        .get_result(conn)
        .await
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewRole<'_>) -> QueryResult<RoleRow> {
    diesel::insert_into(roles::table)
        .values(new)
        .returning(RoleRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    name: &str,
) -> QueryResult<Option<RoleRow>> {
    roles::table
        .filter(roles::tenant_id.eq(tenant))
        .filter(roles::name.eq(name))
        .select(RoleRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Up to `limit` of the tenant's roles after the name `after`, by name.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RoleRow>> {
    let mut query = roles::table
        .filter(roles::tenant_id.eq(tenant))
        .order(roles::name.asc())
        .limit(limit)
        .select(RoleRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(roles::name.gt(after.to_owned()));
    }
    query.load(conn).await
}

/// Replaces a role's description and patterns; its revision moves on.
pub async fn update(
    conn: &mut AsyncPgConnection,
    role: RoleId,
    description: &str,
    permissions: &[String],
) -> QueryResult<RoleRow> {
    diesel::update(roles::table.find(role))
        .set((
            roles::description.eq(description),
            roles::permissions.eq(permissions),
            roles::revision.eq(roles::revision + 1),
            roles::updated_at.eq(diesel::dsl::now),
        ))
        .returning(RoleRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes a role; its assignments go with it (`ON DELETE CASCADE`).
pub async fn delete(conn: &mut AsyncPgConnection, role: RoleId) -> QueryResult<usize> {
    diesel::delete(roles::table.find(role)).execute(conn).await
}

/// The tenant's roles of these names (those that exist).
pub async fn named(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    names: &[String],
) -> QueryResult<Vec<RoleRow>> {
    roles::table
        .filter(roles::tenant_id.eq(tenant))
        .filter(roles::name.eq_any(names))
        .select(RoleRow::as_select())
        .load(conn)
        .await
}

/// A user's roles, by name.
pub async fn of_user(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<Vec<RoleRow>> {
    user_roles::table
        .inner_join(roles::table)
        .filter(user_roles::user_id.eq(user))
        .order(roles::name.asc())
        .select(RoleRow::as_select())
        .load(conn)
        .await
}

/// Replaces a user's roles.
pub async fn set_of_user(
    conn: &mut AsyncPgConnection,
    user: UserId,
    roles: &[RoleId],
) -> QueryResult<()> {
    diesel::delete(user_roles::table.filter(user_roles::user_id.eq(user)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = roles
        .iter()
        .map(|role| (user_roles::user_id.eq(user), user_roles::role_id.eq(*role)))
        .collect();
    diesel::insert_into(user_roles::table)
        .values(rows)
        .execute(conn)
        .await
        .map(drop)
}

/// Every role of the tenant.
pub async fn all(conn: &mut AsyncPgConnection, tenant: TenantId) -> QueryResult<Vec<RoleRow>> {
    roles::table
        .filter(roles::tenant_id.eq(tenant))
        .select(RoleRow::as_select())
        .load(conn)
        .await
}

/// Every assignment of the tenant's roles.
pub async fn assignments(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
) -> QueryResult<Vec<(UserId, RoleId)>> {
    user_roles::table
        .inner_join(roles::table)
        .filter(roles::tenant_id.eq(tenant))
        .select((user_roles::user_id, user_roles::role_id))
        .load(conn)
        .await
}

/// The authorization versions of these tenants.
pub async fn versions(
    conn: &mut AsyncPgConnection,
    of: &[TenantId],
) -> QueryResult<Vec<(TenantId, i64)>> {
    tenants::table
        .filter(tenants::id.eq_any(of))
        .select((tenants::id, tenants::authz_version))
        .load(conn)
        .await
}
