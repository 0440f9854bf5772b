//! The `users` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{tenants, users};

#[declare_sql_function]
extern "SQL" {
    /// Postgres `lower(text)`; matches the `users_tenant_username_key` index.
    fn lower(value: Text) -> Text;
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub record_version: i64,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// The user a login names: by tenant slug and username, ignoring case.
pub async fn find_by_login(
    conn: &mut AsyncPgConnection,
    tenant_slug: &str,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .inner_join(tenants::table)
        .filter(tenants::slug.eq(tenant_slug))
        .filter(lower(users::username).eq(username.to_ascii_lowercase()))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user with their tenant's slug: what a key record is built from.
pub async fn find_with_tenant_slug(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Option<(UserRow, String)>> {
    users::table
        .inner_join(tenants::table)
        .filter(users::id.eq(user_id))
        .select((UserRow::as_select(), tenants::slug))
        .first(conn)
        .await
        .optional()
}

/// A user of a tenant.
pub async fn find_in_tenant(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(user_id))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks a user's row until the transaction ends, serialising every change
/// to that user (rotations included).
pub async fn lock(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(user_id))
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// A page of a tenant's users in id (creation) order, after `after`.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<UserRow>> {
    let mut query = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after));
    }
    query.load(conn).await
}

/// Enabled admins of a tenant, other than `except`.
pub async fn count_other_active_admins(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    except: Uuid,
) -> QueryResult<i64> {
    users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.ne(except))
        .filter(users::role.eq("admin"))
        .filter(users::disabled_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// The changes a PATCH may make; `None` leaves a column as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub role: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    changes: UserChanges<'_>,
) -> QueryResult<UserRow> {
    diesel::update(users::table.find(user_id))
        .set((changes, users::record_version.eq(users::record_version + 1)))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

/// Bumps the record version (the cached key record changes) and returns it.
pub async fn bump_version(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    diesel::update(users::table.find(user_id))
        .set(users::record_version.eq(users::record_version + 1))
        .returning(users::record_version)
        .get_result(conn)
        .await
}

/// Deletes a user (and, by cascade, their secrets); returns the version a
/// cache tombstone must carry to outrank any cached record.
pub async fn delete(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    diesel::delete(users::table.find(user_id))
        .returning(users::record_version + 1)
        .get_result(conn)
        .await
}

/// Locks a user's row by id alone (the tenant is not known yet).
pub async fn lock_by_id(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Option<UserRow>> {
    users::table
        .find(user_id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}
