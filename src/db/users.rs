//! The `users` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::page::{Keyset, keyset};
use super::schema::{tenants, users};
use crate::types::ids::{Role, TenantId, TenantSlug, UserId, Username};

#[declare_sql_function]
extern "SQL" {
    /// Postgres `lower(text)`; matches the `users_tenant_username_key` index.
    fn lower(value: Text) -> Text;
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub record_version: i64,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// An admin who can still act: the kind a tenant must keep one of.
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && self.disabled_at.is_none()
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub username: &'a Username,
    pub password_hash: &'a str,
    pub role: Role,
}

/// Whether a read takes the row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    No,
    /// `FOR UPDATE`: held until the transaction ends, serialising every
    /// change to that user (rotations included).
    ForUpdate,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// A user by id, of whichever tenant (callers that act within a tenant check
/// `tenant_id` themselves).
pub async fn find(
    conn: &mut AsyncPgConnection,
    user: UserId,
    lock: Lock,
) -> QueryResult<Option<UserRow>> {
    let query = users::table.find(user).select(UserRow::as_select());
    match lock {
        Lock::No => query.first(conn).await.optional(),
        Lock::ForUpdate => query.for_update().first(conn).await.optional(),
    }
}

/// The user a login names: by tenant slug and username, ignoring case.
pub async fn find_by_login(
    conn: &mut AsyncPgConnection,
    tenant: &TenantSlug,
    username: &Username,
) -> QueryResult<Option<UserRow>> {
    users::table
        .inner_join(tenants::table)
        .filter(tenants::slug.eq(tenant))
        .filter(lower(users::username).eq(username.as_str().to_ascii_lowercase()))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user with their tenant's slug: what a key record is built from.
pub async fn find_with_tenant_slug(
    conn: &mut &AsyncPgConnection,
    user: UserId,
) -> QueryResult<Option<(UserRow, TenantSlug)>> {
    users::table
        .inner_join(tenants::table)
        .filter(users::id.eq(user))
        .select((UserRow::as_select(), tenants::slug))
        .first(conn)
        .await
        .optional()
}

/// A page of a tenant's users in id (creation) order; with `prefix`, only
/// those whose username starts with it, ignoring case.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    prefix: Option<&Username>,
    page: Keyset,
) -> QueryResult<Vec<UserRow>> {
    let mut query = users::table
        .filter(users::tenant_id.eq(tenant))
        .select(UserRow::as_select())
        .into_boxed();
    if let Some(prefix) = prefix {
        // `_` is the one LIKE wildcard a username may hold (`%` and `\` it cannot).
        let pattern = format!("{}%", prefix.as_str().replace('_', "\\_"));
        query = query.filter(users::username.ilike(pattern));
    }
    keyset!(query, users::id, page).load(conn).await
}

/// The usernames of those of `ids` who are `tenant`'s users.
pub async fn usernames(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    ids: &[UserId],
) -> QueryResult<Vec<(UserId, Username)>> {
    users::table
        .filter(users::tenant_id.eq(tenant))
        .filter(users::id.eq_any(ids))
        .select((users::id, users::username))
        .load(conn)
        .await
}

/// Enabled admins of a tenant, other than `except`.
pub async fn count_other_active_admins(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    except: UserId,
) -> QueryResult<i64> {
    users::table
        .filter(users::tenant_id.eq(tenant))
        .filter(users::id.ne(except))
        .filter(users::role.eq(Role::Admin))
        .filter(users::disabled_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// The changes a PATCH may make; `None` leaves a column as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub role: Option<Role>,
    pub password_hash: Option<&'a str>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    user: UserId,
    changes: UserChanges<'_>,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user))
        .set((changes, users::record_version.eq(users::record_version + 1)))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Bumps the record version (the cached key record changes) and returns it.
pub async fn bump_version(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<i64> {
    diesel::update(users::table.find(user))
        .set(users::record_version.eq(users::record_version + 1))
        .returning(users::record_version)
        .get_result(conn)
        .await
}

/// Deletes a user (and, by cascade, their secrets); returns the version a
/// cache tombstone must carry to outrank any cached record.
pub async fn delete(conn: &mut AsyncPgConnection, user: UserId) -> QueryResult<i64> {
    diesel::delete(users::table.find(user))
        .returning(users::record_version + 1)
        .get_result(conn)
        .await
}
